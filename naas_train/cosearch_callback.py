"""``CoSearchCallback``: runs the network-in-the-loop co-search inside a Lightning run.

It runs at the configured points (end of training — before Lightning tears the strategy down, so the
supernet is still on each rank's training device —, end of each progressive-shrinking phase, every k epochs,
or on demand from ``naas-train search``). Accuracy is measured on the data module's *search* split (held out
of the training set, identical on every rank; never the validation/test split, which only scores the exported
model) after exact BN recalibration, so results do not depend on the number of ranks; under DDP the measured
subnets and every accelerator population are split over the ranks and the slices are gathered. The search state is written
to ``<run>/cosearch/state-<tag>.json`` after every generation (and kept in checkpoints) with a fingerprint of
the supernet's weights and the search settings, so a killed run resumes mid-search, and a state left by other
weights or settings is ignored. Results go to the loggers (wandb: per-generation fitness, Pareto table and
plot, per-layer breakdown) and to ``<run>/cosearch/`` as JSON and PNG.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable, Sequence

import pytorch_lightning as pl
import torch
from pytorch_lightning.trainer.states import TrainerFn
from pytorch_lightning.utilities import rank_zero_info, rank_zero_warn

from hwmodel.atomic import atomic_write_json
from hwmodel.report import network_report, provenance
from naas_train.cosearch import CoSearchSettings, NetworkCoSearch
from naas_train.data import resize
from naas_train.module import bn_buffers, load_bn_buffers
from naas_train.plots import plot_breakdown, plot_pareto
from naas_train.result_file import RESULT_SCHEMA_VERSION
from supernet import profile, recalibrate_bn
from supernet.precision_space import MixedConfig, PrecisionSpace
from supernet.quant import calibrate, quantize_subnet

def search_fingerprint(net: torch.nn.Module, settings: CoSearchSettings) -> str:
    """SHA-256 of the supernet's parameters (names, shapes, bytes) and the search settings: a saved search
    state is resumed only by the search it came from."""
    digest = hashlib.sha256(json.dumps(asdict(settings), sort_keys=True, default=str).encode())
    for name, param in net.state_dict().items():
        if param.is_floating_point() and "running_" in name:
            continue  # BN statistics: recalibrated per subnet by the search itself
        digest.update(f"{name}:{tuple(param.shape)}".encode())
        digest.update(param.detach().cpu().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def ddp_map_fn(world_size: int, rank: int) -> Callable[[Callable[[Any], Any], Sequence[Any]], list]:
    """A ``map_fn`` that evaluates every ``world_size``-th item on this rank and all-gathers the results in
    item order (plain ``map`` on one rank)."""

    def ddp_map(fn: Callable[[Any], Any], items: Sequence[Any]) -> list:
        if world_size == 1:
            return [fn(x) for x in items]
        mine = [(i, fn(items[i])) for i in range(rank, len(items), world_size)]
        parts: list = [None] * world_size
        torch.distributed.all_gather_object(parts, mine)
        out: list = [None] * len(items)
        for part in parts:
            for i, r in part:
                out[i] = r
        return out

    return ddp_map


def search_space(net: torch.nn.Module, settings: CoSearchSettings) -> tuple[Any, Callable[[Any, int], list], Any]:
    """``(space, layer_fn, config_cls)`` of the co-search: the supernet's subnets, or with ``settings.bits`` its
    subnets x per-layer bits (:class:`supernet.precision_space.PrecisionSpace`; layers carry their bits)."""
    config_cls = type(net.space.max_config())
    if settings.bits is None:
        return net.space, net.layer_shapes, config_cls
    space = PrecisionSpace(net.space, lambda cfg: [layer.name for layer in net.layer_shapes(cfg)], config_cls,
                           settings.bits)

    def layer_fn(cfg: MixedConfig, resolution: int) -> list:
        policy = cfg.policy
        return [layer.with_bits(*policy[layer.name]) for layer in net.layer_shapes(cfg.subnet, resolution)]

    return space, layer_fn, space


def quantized_subnet(net: torch.nn.Module, cfg: MixedConfig, batches: Any, num_batches: int = 8) -> torch.nn.Module:
    """Subnet ``cfg.subnet`` of ``net`` (its BN statistics as they are now) fake-quantized with ``cfg``'s bits
    (:func:`supernet.quant.quantize_subnet`), input ranges calibrated on ``batches`` and frozen, in eval mode."""
    layers = net.layer_shapes(cfg.subnet, cfg.r)
    policy = cfg.policy
    model = quantize_subnet(net.extract(cfg.subnet).eval(), layers, {layer.name: policy[layer.name] for layer in layers})
    return calibrate(model, batches, num_batches=num_batches).eval()


class CoSearchCallback(pl.Callback):
    """Co-search accelerator, mapping and subnet of the trained supernet.

    Args:
        settings: :class:`naas_train.cosearch.CoSearchSettings` (budget preset, objective, population sizes,
            constraints, accuracy source, mapping budgets, seed).
        run_at: any of ``"fit_end"``, ``"phase_end"``, ``"every_n_epochs"``.
        every_n_epochs: period for ``"every_n_epochs"``.
        search_batches: batches of the search split used to measure a subnet's accuracy (``None``: all).
        out_dir: where ``cosearch/`` goes (default: the trainer's log dir or ``default_root_dir``).
    """

    def __init__(self, settings: CoSearchSettings | None = None, run_at: Sequence[str] = ("fit_end",),
                 every_n_epochs: int = 1, search_batches: int | None = None, out_dir: str | None = None) -> None:
        bad = set(run_at) - {"fit_end", "phase_end", "every_n_epochs"}
        if bad:
            raise ValueError(f"CoSearchCallback.run_at has unknown point(s) {sorted(bad)}; "
                             "use fit_end, phase_end or every_n_epochs")
        self.settings = settings or CoSearchSettings()
        self.run_at = tuple(run_at)
        self.every_n_epochs = every_n_epochs
        self.search_batches = search_batches
        self.out_dir = out_dir
        self.state: dict[str, Any] | None = None  # an unfinished search (resumable)
        self.results: list[dict[str, Any]] = []
        self.last_result: dict[str, Any] | None = None
        self._requested = False

    def request_search(self) -> None:
        """Run the search at the end of the next validation pass (``naas-train search``)."""
        self._requested = True

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._requested and not trainer.sanity_checking:
            self._requested = False
            self.run(trainer, pl_module, tag="final")

    # --- where and when ------------------------------------------------------------------------------
    def directory(self, trainer: pl.Trainer) -> Path:
        root = self.out_dir or trainer.default_root_dir
        return Path(root) / "cosearch"

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        epoch = trainer.current_epoch + 1
        if "every_n_epochs" in self.run_at and epoch % self.every_n_epochs == 0:
            self.run(trainer, pl_module, tag=f"epoch{epoch}")
        elif "phase_end" in self.run_at and hasattr(pl_module, "phases"):
            ends = [sum(p.epochs for p in pl_module.phases[: i + 1]) for i in range(len(pl_module.phases))]
            if epoch in ends[:-1]:
                self.run(trainer, pl_module, tag=f"phase{ends.index(epoch)}")

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """End of training, before teardown: the model is still on each rank's device, the process group up.
        ``last.ckpt`` is saved first (Lightning runs checkpoint callbacks after the others; theirs is then a
        no-op), so the result names it and a failure during the search loses no training."""
        if "fit_end" in self.run_at or "phase_end" in self.run_at:
            for checkpoint in trainer.checkpoint_callbacks:
                checkpoint.on_train_end(trainer, pl_module)
            self.run(trainer, pl_module, tag="final")

    # --- the search ----------------------------------------------------------------------------------
    def _accuracy_fn(self, trainer: pl.Trainer, net: torch.nn.Module,
                     train_format: torch.memory_format = torch.contiguous_format) -> Callable[[list[Any]], list[float]]:
        """The co-search's accuracy measurement: per config, BN recalibration on the BN images, then top-1 on the
        search split, in the training precision. It runs with ``net`` in the default (NCHW) memory format and puts
        it back in ``train_format`` after: on an H200, a channels_last supernet measured 4.8x (bf16) and 5.1x (fp32)
        slower here (BENCHMARKS.md, "GPU"), although channels_last speeds up bf16 training of the full network."""
        dm = trainer.datamodule
        if dm is None or not hasattr(dm, "search_dataloader"):
            raise ValueError("CoSearchCallback needs a SupernetData data module (bn_dataloader, search_dataloader)")
        device = trainer.strategy.root_device  # the training device: the search runs before teardown
        net.to(device)
        bn = [x.to(device) for x, _ in dm.bn_dataloader()]
        val = []
        for i, (x, y) in enumerate(dm.search_dataloader()):  # the whole search split, on every rank
            if self.search_batches is not None and i >= self.search_batches:
                break
            val.append((x.to(device), y.to(device)))
        if not val:
            raise ValueError("the search split is empty: set the data module's search_per_class > 0")

        @torch.no_grad()
        def measure(cfgs: list[Any]) -> list[float]:
            saved, was_training = bn_buffers(net), net.training
            out = []
            net.to(memory_format=torch.contiguous_format)
            try:
                with trainer.precision_plugin.forward_context():  # the training precision (e.g. bf16 autocast)
                    for cfg in cfgs:
                        subnet = cfg.subnet if isinstance(cfg, MixedConfig) else cfg
                        net.set_active(subnet)
                        recalibrate_bn(net, (resize(x, cfg.r) for x in bn))
                        net.eval()
                        model = net
                        if isinstance(cfg, MixedConfig):  # quantized accuracy: BN folded, fake quant calibrated
                            model = quantized_subnet(net, cfg, (resize(x, cfg.r) for x in bn))
                        correct = sum(int((model(resize(x, cfg.r)).argmax(-1) == y).sum()) for x, y in val)
                        out.append(correct / max(1, sum(len(y) for _, y in val)))
            finally:
                load_bn_buffers(net, saved)
                net.train(was_training)
                net.to(memory_format=train_format)
            return out

        return measure

    def run(self, trainer: pl.Trainer, pl_module: pl.LightningModule, tag: str = "final",
            progress: Callable[[int, int, float], None] | None = None) -> dict[str, Any]:
        """Run (or resume) the co-search on ``pl_module.net``; returns the result dict (``wall_s``: seconds this
        process spent on it)."""
        started = time.perf_counter()
        net = pl_module.net
        resolutions = self.settings.resolutions or tuple(getattr(pl_module, "val_resolutions", None) or (224,))
        space, layer_fn, config_cls = search_space(net, self.settings)
        measure = self._accuracy_fn(trainer, net, getattr(pl_module, "memory_format", torch.contiguous_format))
        search = NetworkCoSearch(space, layer_fn, measure, self.settings, config_cls,
                                 map_fn=ddp_map_fn(trainer.world_size, trainer.global_rank),
                                 default_resolution=max(resolutions))
        if self.settings.resolutions is None:
            search.resolutions = tuple(resolutions)
        out = self.directory(trainer)
        state_file = out / f"state-{tag}.json"
        key = search_fingerprint(net, self.settings)
        saved = self.state if self.state is not None and self.state.get("tag") == tag else None
        if saved is None and state_file.exists():
            saved = json.loads(state_file.read_text())
        if saved is not None and saved.get("fingerprint") == key:
            search.load_state_dict(saved["search"])
            rank_zero_info(f"CoSearchCallback: resuming the co-search '{tag}' after generation {search.es.generation}")
        elif saved is not None:
            rank_zero_warn(f"CoSearchCallback: {state_file} was left by other supernet weights or settings; "
                           "starting the co-search afresh")

        def after_generation(generation: int, generations: int, best: float) -> None:
            self.state = {"tag": tag, "fingerprint": key, "search": search.state_dict()}
            if trainer.is_global_zero:
                out.mkdir(parents=True, exist_ok=True)
                atomic_write_json(state_file, self.state)
                self._log_generation(trainer, tag, search.history[-1])
            if progress is not None:
                progress(generation, generations, best)

        search.run(after_generation)
        core = trainer.strategy.broadcast(search.finalize(), src=0)
        result = {**self._result(trainer, pl_module, core, tag), "wall_s": time.perf_counter() - started}
        if trainer.is_global_zero:
            self._write(trainer, result, core, out, tag)
        self.state = None
        self.results.append({"tag": tag, "subnet": result["subnet"], "metrics": result["metrics"]})
        self.last_result = result
        return result

    def _result(self, trainer: pl.Trainer, pl_module: pl.LightningModule, core: dict[str, Any], tag: str) -> dict[str, Any]:
        net = pl_module.net
        cfg = type(net.space.max_config()).from_dict(core["subnet"])
        prof = profile(net, cfg, resolution=cfg.r)
        from hwmodel.accelerator import Accelerator

        accel = Accelerator.from_dict(core["accelerator"])
        report = network_report(core["layers"], accel, [m for _, m in core["mappings"]], seed=self.settings.seed)
        # during fit: the checkpoint just saved (trainer.ckpt_path is the one a resumed fit started from);
        # search/validate: the checkpoint that was loaded
        ckpt = getattr(trainer, "ckpt_path", None)
        fitting = getattr(getattr(trainer, "state", None), "fn", None) == TrainerFn.FITTING
        if fitting and trainer.checkpoint_callback is not None:
            cb = trainer.checkpoint_callback
            ckpt = cb.last_model_path or cb.best_model_path or None
        return {
            "schema_version": RESULT_SCHEMA_VERSION,
            "provenance": provenance(accel, self.settings.seed),
            "supernet_checkpoint": None if ckpt is None else str(ckpt),
            "space": {"class": type(net).__name__, **{k: list(v) if isinstance(v, tuple) else v
                                                      for k, v in vars(net.space).items()}},
            "subnet": core["subnet"],
            "precision": core["precision"],
            "accuracy": core["accuracy"],
            "accuracy_split": "search",
            "data_splits": trainer.datamodule.split_info() if hasattr(trainer.datamodule, "split_info") else None,
            "constraint_met": core["constraint_met"],
            "accelerator": core["accelerator"],
            "mappings": report["layers"],
            "metrics": {"cycles": report["total"]["cycles"], "energy_pj": report["total"]["energy_pj"],
                        "edp": report["total"]["edp"], "macs": report["total"]["macs"], "params": prof["params"]},
            "baselines": core["baselines"],
            "baselines_skipped": core["baselines_skipped"],
            "pareto": core["pareto"],
            "history": core["history"],
            "predictor": core["predictor"],
            "settings": core["settings"],
            "tag": tag,
        }

    # --- outputs -------------------------------------------------------------------------------------
    def _log_generation(self, trainer: pl.Trainer, tag: str, h: dict[str, float]) -> None:
        for logger in trainer.loggers:
            logger.log_metrics({f"cosearch/{tag}/best_fitness": h["best"], f"cosearch/{tag}/mean_fitness": h["mean"],
                                "cosearch/generation": h["generation"]}, step=trainer.global_step)

    def _write(self, trainer: pl.Trainer, result: dict[str, Any], core: dict[str, Any], out: Path, tag: str) -> None:
        out.mkdir(parents=True, exist_ok=True)
        name = "result.json" if tag == "final" else f"result-{tag}.json"
        atomic_write_json(out / name, result)
        atomic_write_json(out / f"pareto-{tag}.json", result["pareto"])
        plot_pareto(result, out / f"pareto-{tag}.png")
        plot_breakdown(result, out / f"breakdown-{tag}.png")
        for logger in trainer.loggers:
            if isinstance(logger, pl.loggers.WandbLogger):
                cols = ["config", "accuracy", "cycles", "energy_pj", "edp", "accelerator"]
                logger.log_table(f"cosearch/{tag}/pareto", columns=cols,
                                 data=[[json.dumps(p["config"]), p["accuracy"], p["cycles"], p["energy_pj"], p["edp"],
                                        json.dumps(p["accelerator"])] for p in result["pareto"]])
                logger.log_table(f"cosearch/{tag}/layers", columns=["name", "count", "cycles", "energy_pj", "utilization"],
                                 data=[[m["name"], m["count"], m["cycles"], m["energy_pj"], m["utilization"]]
                                       for m in result["mappings"]])
                logger.log_image(f"cosearch/{tag}/pareto_plot", [str(out / f"pareto-{tag}.png")])
                logger.log_image(f"cosearch/{tag}/breakdown", [str(out / f"breakdown-{tag}.png")])
            predictor = result.get("predictor") or {}
            if predictor.get("heldout_spearman") is not None:  # the predictor's rank quality on held-out subnets
                logger.log_metrics({f"cosearch/{tag}/predictor_heldout_spearman": predictor["heldout_spearman"]},
                                   step=trainer.global_step)
            logger.log_metrics({f"cosearch/{tag}/accuracy": result["accuracy"], f"cosearch/{tag}/edp": result["metrics"]["edp"],
                                f"cosearch/{tag}/cycles": result["metrics"]["cycles"],
                                f"cosearch/{tag}/energy_pj": result["metrics"]["energy_pj"]}, step=trainer.global_step)

    def state_dict(self) -> dict[str, Any]:
        return {"state": self.state, "results": self.results}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.state = state_dict.get("state")
        self.results = list(state_dict.get("results", []))
