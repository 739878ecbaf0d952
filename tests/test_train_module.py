"""SupernetModule pieces: phases, lr schedule, subnet sampling, optimizer-state permutation, a short fit."""

from __future__ import annotations

import copy

import pytest
import pytorch_lightning as pl
import torch
from timm.optim import create_optimizer_v2

import supernet
from naas_train.data import SyntheticData
from naas_train.module import SupernetModule, mid_config, permute_optimizer_state
from naas_train.phases import Phase, phase_at, phase_scheduler
from supernet.sorting import apply_permutations

KERNEL = [3, 5, 7]


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny tensors: one intra-op thread is faster here, and immune to OpenMP spin-waiting on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


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
    """After sort + permuted momentum, an SGD step equals the permuted step of the unsorted network."""
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
    permute_optimizer_state(optimizer, net, perms)
    step(net, optimizer)
    step(reference, reference_opt)
    apply_permutations(reference, perms)
    for (name, p), q in zip(net.named_parameters(), reference.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-5, msg=lambda m: f"{name}: {m}")


def test_short_fit_samples_every_open_choice_and_distils_from_the_full_network(tmp_path):
    pl.seed_everything(0)
    module = SupernetModule(tiny_net(), tiny_phases(), val_resolutions=[16])
    data = SyntheticData(resolutions=[16, 24], batch_size=8, train_size=64, val_size=16, bn_samples=16)
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
    for key in ("val/acc_min", "val/acc_mid", "val/acc_max"):
        assert 0.0 <= float(trainer.callback_metrics[key]) <= 1.0
