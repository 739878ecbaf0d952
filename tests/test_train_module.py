"""SupernetModule pieces: phases, lr schedule, subnet sampling, optimizer-state permutation, a short fit."""

from __future__ import annotations

import copy

import pytest
import pytorch_lightning as pl
import torch
from timm.optim import create_optimizer_v2

import supernet
from naas_train.data import SyntheticData, resize
from naas_train.module import SupernetModule, mid_config, permute_optimizer_state
from naas_train.phases import Phase, phase_at, phase_scheduler
from supernet.sorting import apply_permutations
from torch_helpers import one_thread  # noqa: F401 (autouse fixture)

KERNEL = [3, 5, 7]


def tiny_net(dropout: float = 0.1) -> supernet.OFAMobileNetV3:
    return supernet.OFAMobileNetV3(width_mult=0.25, num_classes=4, dropout=dropout)


def tiny_phases() -> list[Phase]:
    return [
        Phase("full", epochs=1, lr=0.05),
        Phase("kernel", epochs=1, lr=0.02, ks_list=KERNEL),
        Phase("expand", epochs=1, lr=0.02, ks_list=KERNEL, depth_list=[2, 3, 4], expand_list=[3, 4, 6],
              subnets_per_step=2, sort_channels=0),
    ]


def test_phase_validation_and_lookup():
    with pytest.raises(ValueError, match="warmup_epochs"):
        Phase("p", epochs=2, lr=0.1, warmup_epochs=2)
    phases = tiny_phases()
    assert [phase_at(phases, e) for e in range(4)] == [(0, 0), (1, 1), (2, 2), (2, 2)]
    assert [p.elastic for p in phases] == [False, True, True]


def test_phase_schedule_warms_up_then_decays_per_iteration():
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    scheduler = phase_scheduler(optimizer, Phase("p", epochs=3, lr=0.1, warmup_epochs=1), steps_per_epoch=10, lr_scale=2)
    lrs = []
    for step in range(30):
        scheduler.step_update(step)
        lrs.append(optimizer.param_groups[0]["lr"])
    assert lrs[0] == 0.0 and lrs[5] == pytest.approx(0.1) and lrs[10] == pytest.approx(0.2)
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:])) and lrs[-1] < 0.01


def test_kd_without_a_teacher_is_rejected():
    with pytest.raises(ValueError, match="teacher"):
        SupernetModule(tiny_net(), [Phase("kernel", epochs=1, lr=0.1, ks_list=KERNEL)], kd_ratio=1.0)


def test_subnet_sampling_is_seeded_by_step_and_respects_open_choices():
    module = SupernetModule(tiny_net(), tiny_phases())
    space = module.net.space
    full, kernel, expand = module.phases
    assert module.sample_subnets(full, 3, 24) == [space.max_config(24)]
    first = module.sample_subnets(expand, 7, 24)
    assert first == module.sample_subnets(expand, 7, 24) and first != module.sample_subnets(expand, 8, 24)
    samples = [cfg for step in range(50) for cfg in module.sample_subnets(kernel, step, 24)]
    assert {k for cfg in samples for k in cfg.ks} == set(KERNEL)
    assert {e for cfg in samples for e in cfg.e} == {6} and {d for cfg in samples for d in cfg.d} == {4}


def test_mid_config_takes_the_middle_choice():
    cfg = mid_config(tiny_net().space, 20)
    assert set(cfg.ks) == {5} and set(cfg.e) == {4} and set(cfg.d) == {3} and cfg.r == 20


def test_sorting_permutes_momentum_with_the_weights():
    """The momentum buffers follow the channel permutations elementwise, and after sort + permuted momentum an SGD
    step equals the permuted step of the unsorted network."""
    torch.manual_seed(0)
    net = tiny_net(dropout=0.0)
    optimizer = create_optimizer_v2(net, opt="sgd", lr=0.1, momentum=0.9, weight_decay=1e-4)
    images, targets = torch.randn(8, 3, 32, 32), torch.randint(0, 4, (8,))

    def step(model, opt):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(images), targets).backward()
        opt.step()

    step(net, optimizer)
    reference = copy.deepcopy(net)
    reference_opt = create_optimizer_v2(reference, opt="sgd", lr=0.1, momentum=0.9, weight_decay=1e-4)
    reference_opt.load_state_dict(copy.deepcopy(optimizer.state_dict()))
    perms = net.sort_channels(0)
    assert any(not torch.equal(idx, torch.arange(len(idx))) for steps in perms.values() for _, idx in steps)
    params = dict(net.named_parameters())
    momentum = {name: optimizer.state[p]["momentum_buffer"].clone() for name, p in params.items() if p.grad is not None}
    assert any(name in momentum for name in perms)
    permute_optimizer_state(optimizer, net, perms)
    for name, before in momentum.items():
        expected = before
        for dim, index in perms.get(name, []):
            expected = expected.index_select(dim, index)
        assert torch.equal(optimizer.state[params[name]]["momentum_buffer"], expected), name
    assert any(not torch.equal(optimizer.state[params[name]]["momentum_buffer"], momentum[name]) for name in perms)
    step(net, optimizer)
    step(reference, reference_opt)
    apply_permutations(reference, perms)
    for (name, p), q in zip(net.named_parameters(), reference.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-5, msg=lambda m: f"{name}: {m}")


def test_short_fit_samples_every_open_choice_and_distils_from_the_full_network(tmp_path):
    pl.seed_everything(0)
    module = SupernetModule(tiny_net(), tiny_phases(), val_resolutions=[16])
    data = SyntheticData(resolutions=[16, 24], batch_size=8, train_size=64, val_size=32, bn_samples=16)
    snapshots = {}

    class AtPhaseEnd(pl.Callback):
        def on_train_epoch_end(self, trainer, pl_module):
            snapshots[trainer.current_epoch] = copy.deepcopy(pl_module.net.state_dict())

    trainer = pl.Trainer(accelerator="cpu", max_epochs=3, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, callbacks=[AtPhaseEnd()], default_root_dir=tmp_path)
    trainer.fit(module, data)
    counts = module.choice_counts
    assert {c for c in counts["kernel"] if c.startswith("ks=")} == {"ks=3", "ks=5", "ks=7"}
    assert {c for c in counts["expand"] if c.startswith(("e=", "d="))} == {"e=3", "e=4", "e=6", "d=2", "d=3", "d=4"}
    assert {c for c in counts["full"]} == {"ks=7", "e=6", "d=4", "r=16", "r=24"}
    # the teacher's weights are a frozen copy of the full network after its phase (its BN runs on batch statistics)
    teacher = dict(module.teacher.named_parameters())
    assert all(torch.equal(p, snapshots[0][name]) for name, p in teacher.items())
    assert not any(torch.equal(p, module.net.state_dict()[name]) for name, p in teacher.items() if p.dim() > 1)
    # validation = each grid subnet extracted, BN recalibrated on the BN batches, top-1 on the validation split
    accuracies = {name: direct_accuracy(module.net, cfg, data) for name, cfg in module.val_grid()}
    for name, accuracy in accuracies.items():
        assert float(trainer.callback_metrics[f"val/acc_{name}"]) == pytest.approx(accuracy, abs=1e-6), name
    assert float(trainer.callback_metrics["val/acc"]) == pytest.approx(sum(accuracies.values()) / 3, abs=1e-6)


@torch.no_grad()
def direct_accuracy(net: supernet.OFAMobileNetV3, cfg, data: SyntheticData) -> float:
    """Top-1 of subnet ``cfg`` extracted from ``net`` (a copy) after BN recalibration on ``data``'s BN batches."""
    subnet = supernet.recalibrate_bn(net.extract(cfg), (resize(x, cfg.r) for x, _ in data.bn_dataloader())).eval()
    hits = [(subnet(resize(x, cfg.r)).argmax(-1) == y) for x, y in data.val_dataloader()]
    return float(torch.cat(hits).float().mean())


class StepLosses(pl.Callback):
    """Training loss of every step, the net's input formats and, at the end of fit, the parameters of the supernet
    (``net.*``) and the teacher (``teacher.*``)."""

    def __init__(self) -> None:
        self.losses: list[float] = []
        self.inputs_channels_last: list[bool] = []
        self.params: dict[str, torch.Tensor] = {}

    def setup(self, trainer, pl_module, stage):
        pl_module.net.register_forward_pre_hook(
            lambda _, args: self.inputs_channels_last.append(args[0].is_contiguous(memory_format=torch.channels_last)
                                                             and not args[0].is_contiguous()))

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.losses.append(float(outputs["loss"]))

    def on_fit_end(self, trainer, pl_module):
        self.params = dict(pl_module.named_parameters())


def fit_tiny(tmp_path, precision: str, epochs: int = 3, **module_args) -> tuple[StepLosses, pl.Trainer]:
    """Up to three phases (the last one sorts channels) of 4 steps on synthetic data, validation after each."""
    pl.seed_everything(0)
    module = SupernetModule(tiny_net(), tiny_phases(), val_resolutions=[16], **module_args)
    data = SyntheticData(resolutions=[16, 24], batch_size=8, train_size=32, val_size=16, bn_samples=16)
    record = StepLosses()
    trainer = pl.Trainer(accelerator="cpu", max_epochs=epochs, precision=precision, logger=False,
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                         num_sanity_val_steps=0, callbacks=[record], default_root_dir=tmp_path)
    trainer.fit(module, data)
    return record, trainer


def test_channels_last_trains_like_the_default_format_also_under_bf16(tmp_path):
    # float64: this tiny BN network amplifies rounding differences ~10x per step (float32 runs with 1 vs 2 threads
    # differ by 1% after 3 steps), float64 keeps both trajectories within 1e-6 over the 12 steps
    default, default_trainer = fit_tiny(tmp_path, "64-true")
    channels_last, channels_last_trainer = fit_tiny(tmp_path, "64-true", channels_last=True)
    assert len(channels_last.losses) == 12
    torch.testing.assert_close(channels_last.losses, default.losses, rtol=1e-5, atol=0)
    for key in ("val/acc_min", "val/acc_mid", "val/acc_max"):
        assert float(channels_last_trainer.callback_metrics[key]) == float(default_trainer.callback_metrics[key])
    assert not any(default.inputs_channels_last)
    assert channels_last.inputs_channels_last and all(channels_last.inputs_channels_last)  # train, BN, validation
    convs = {name: p for name, p in channels_last.params.items() if p.dim() == 4}
    assert {name.split(".")[0] for name in convs} == {"net", "teacher"}
    assert all(p.is_contiguous(memory_format=torch.channels_last) for p in convs.values())  # also after the sort
    for model in ("net", "teacher"):  # 3 input channels: not both formats at once
        assert not convs[f"{model}.first_conv.conv.weight"].is_contiguous()
    bf16, _ = fit_tiny(tmp_path, "bf16-mixed", epochs=1, channels_last=True)
    assert all(p.dtype == torch.float32 for p in bf16.params.values()) and all(bf16.inputs_channels_last)
    assert bf16.losses[0] == pytest.approx(default.losses[0], rel=2e-2)  # same weights, bf16 rounding
    assert all(torch.isfinite(torch.tensor(bf16.losses)))


class ParamsAtTrainStart(pl.Callback):
    """The supernet's state and the teacher's parameters when training starts (after any checkpoint restore)."""

    def on_train_start(self, trainer, pl_module):
        self.net = copy.deepcopy(pl_module.net.state_dict())
        self.teacher = teacher_params(pl_module)


def teacher_params(module: SupernetModule) -> dict[str, torch.Tensor]:
    """The teacher's parameters (its BN running statistics move: it runs in train mode)."""
    return {name: p.detach().clone() for name, p in module.teacher.named_parameters()}


def test_init_ckpt_initialises_the_supernet_and_a_resumed_checkpoint_wins(tmp_path):
    torch.manual_seed(1)
    source = tiny_net()
    torch.save(source.state_dict(), tmp_path / "init.pt")
    data = SyntheticData(resolutions=[16], batch_size=8, train_size=16, val_size=8, bn_samples=8)

    def fit(init_ckpt, ckpt_path=None, epochs=1) -> tuple[SupernetModule, ParamsAtTrainStart, pl.Trainer]:
        torch.manual_seed(2)
        # elastic from the start: with init_ckpt (no teacher_ckpt) the teacher is the initial network
        module = SupernetModule(tiny_net(), [Phase("kernel", epochs=2, lr=0.05, ks_list=KERNEL)], val_resolutions=[16],
                                init_ckpt=str(init_ckpt))
        at_start = ParamsAtTrainStart()
        trainer = pl.Trainer(accelerator="cpu", max_epochs=epochs, limit_val_batches=0, logger=False,
                             enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                             callbacks=[at_start], default_root_dir=tmp_path)
        trainer.fit(module, data, ckpt_path=ckpt_path)
        return module, at_start, trainer

    def equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
        return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)

    source_params = dict(source.named_parameters())

    assert not equal(tiny_net().state_dict(), source.state_dict())
    module, at_start, trainer = fit(tmp_path / "init.pt")
    assert equal(at_start.net, source.state_dict())
    assert equal(teacher_params(module), source_params)
    assert not equal(module.net.state_dict(), source.state_dict())  # trained
    trainer.save_checkpoint(tmp_path / "run.ckpt")
    saved = copy.deepcopy(module.net.state_dict())
    # init_ckpt initialises a module once: validating the trained module keeps its weights
    pl.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False,
               default_root_dir=tmp_path).validate(module, data, verbose=False)
    assert equal(module.net.state_dict(), saved)
    # resuming: the run's checkpoint, restored after setup, replaces the init_ckpt weights
    _, resumed, _ = fit(tmp_path / "init.pt", ckpt_path=tmp_path / "run.ckpt", epochs=2)
    assert equal(resumed.net, saved) and equal(resumed.teacher, source_params)
    # a Lightning checkpoint as init_ckpt: its supernet weights, and a new run whose teacher they become
    module, from_lightning, _ = fit(tmp_path / "run.ckpt")
    assert equal(from_lightning.net, saved)
    assert equal(teacher_params(module), {name: saved[name] for name in source_params})


def test_init_ckpt_reads_ofa_published_format(tmp_path):
    """The reference ``ofa`` package's key layout under ``state_dict`` (its published ``.pth`` files)."""
    networks = pytest.importorskip("ofa.imagenet_classification.elastic_nn.networks")
    reference = networks.OFAMobileNetV3(n_classes=4, width_mult=0.25, ks_list=KERNEL, expand_ratio_list=[3, 4, 6],
                                        depth_list=[2, 3, 4])
    torch.save({"state_dict": reference.state_dict()}, tmp_path / "ofa.pth")
    expected = tiny_net()
    expected.load_ofa_state_dict(reference.state_dict())
    module = SupernetModule(tiny_net(), [Phase("kernel", epochs=1, lr=0.05, ks_list=KERNEL)],
                            init_ckpt=str(tmp_path / "ofa.pth"))
    module.setup("fit")
    for name, value in expected.state_dict().items():
        assert torch.equal(module.net.state_dict()[name], value), name
