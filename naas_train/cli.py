"""``naas-train``: the LightningCLI entry point.

``naas-train fit|validate|search|finetune|export --config recipes/<name>.yaml`` run one step each;
``naas-train pipeline --config recipes/<name>.yaml`` runs them all: fit (the recipe's ``CoSearchCallback``
co-searches at the end of training) -> search (only when fit did not) -> fine-tune the chosen subnet -> export
the bundle, and prints its path.

Every rank of a multi-process launch (Lightning's own launcher with ``devices: N``, ``NODE_RANK`` launches,
torchrun, SLURM ``srun``) runs the same steps in one process group: the first step that starts a Trainer
launches the other local ranks (Lightning re-runs this command line), later steps reuse the group. Rank 0
alone writes shared files; the others wait for it (and fail with it). ``<default_root_dir>/pipeline.json`` records each
finished step (rank 0 writes it after the step); ``--resume`` skips the finished steps and continues the
unfinished one: fit from the newest checkpoint, the co-search from its saved state.

Every path of a run (logs, checkpoints, co-search, fine-tune, bundle) lies under ``trainer.default_root_dir``:
loggers without a ``save_dir`` and ``ModelCheckpoint`` callbacks without a ``dirpath`` are placed there, so
``--trainer.default_root_dir DIR`` moves a whole run.
"""

from __future__ import annotations

import argparse
import json
import pickle
import sys
import time
import warnings
from pathlib import Path
from typing import Any

from pytorch_lightning import LightningDataModule, LightningModule
from pytorch_lightning.cli import LightningArgumentParser, LightningCLI

from hwmodel.atomic import atomic_write_json
from naas_train.checkpoints import check_checkpoint_file, unreadable_checkpoint
from naas_train.cosearch_callback import CoSearchCallback
from naas_train.distributed import is_global_zero, on_rank_zero
from naas_train.trainer import NaasTrainer

#: Steps of ``naas-train pipeline``, in order.
STEPS = ("fit", "search", "finetune", "export")
#: The init argument that holds a logger's folder (Lightning's loggers and ours).
LOGGER_DIR_ARG = "save_dir"
#: Callbacks whose unset ``dirpath`` goes to ``<default_root_dir>/checkpoints`` (by class name).
CHECKPOINT_CLASS = "ModelCheckpoint"


def schedule_epochs(phases: list) -> int:
    """Epochs of all phases; at parse time jsonargparse passes each phase as a namespace with ``init_args``."""
    return sum(getattr(phase, "init_args", phase).epochs for phase in phases)


class NaasCLI(LightningCLI):
    """LightningCLI over any LightningModule / LightningDataModule given as ``class_path`` + ``init_args``.

    Links: the data module's ``resolutions`` feed the model's, and ``trainer.max_epochs`` is the sum of the model's
    phase epochs, so a recipe states each once.
    """

    def __init__(self, **kwargs) -> None:
        kwargs.setdefault("save_config_kwargs", {"overwrite": True})
        kwargs.setdefault("trainer_class", NaasTrainer)
        super().__init__(
            LightningModule,
            LightningDataModule,
            subclass_mode_model=True,
            subclass_mode_data=True,
            **kwargs,
        )

    @staticmethod
    def subcommands() -> dict[str, set[str]]:
        return {
            "fit": {"model", "train_dataloaders", "val_dataloaders", "datamodule"},
            "validate": {"model", "dataloaders", "datamodule"},
            "search": {"model", "datamodule"},
            "finetune": {"model", "datamodule"},
            "export": {"model", "datamodule"},
        }

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.link_arguments("data.init_args.resolutions", "model.init_args.resolutions")
        parser.link_arguments("model.init_args.phases", "trainer.max_epochs", compute_fn=schedule_epochs)

    def _parse_ckpt_path(self) -> None:
        """LightningCLI reads ``--ckpt_path``'s hyperparameters at parse time with a bare ``torch.load``: a file
        that does not load is a one-line ``ValueError`` naming it (:mod:`naas_train.checkpoints`)."""
        ckpt_path = self.config[self.config.subcommand].get("ckpt_path") if self.config.get("subcommand") else None
        if ckpt_path and Path(ckpt_path).exists():
            check_checkpoint_file(Path(ckpt_path))
        try:
            super()._parse_ckpt_path()
        except (RuntimeError, EOFError, pickle.UnpicklingError, AttributeError, KeyError, OSError) as exc:
            raise unreadable_checkpoint(Path(ckpt_path), exc) from None

    def instantiate_classes(self) -> None:
        """LightningCLI's, with the reason a model or data class refused its arguments as the error message
        (jsonargparse reports it as one line of a multi-line "Does not validate against any of the Union
        subtypes" dump)."""
        try:
            super().instantiate_classes()
        except ValueError as exc:
            raise ValueError(instantiation_error(exc)) from exc

    def before_instantiate_classes(self) -> None:
        """Place loggers without ``save_dir`` and checkpoints without ``dirpath`` under ``default_root_dir``."""
        config = self.config[self.subcommand] if self.subcommand else self.config
        place_run_paths(config.trainer)


def instantiation_error(exc: ValueError) -> str:
    """The message of a jsonargparse union error (``Subtypes: [...] Errors: - <reason> ...``) reduced to the
    reason a class gave, prefixed with ``model``/``data``; other messages unchanged."""
    text = str(exc)
    if not text.startswith("Does not validate against any of the Union subtypes"):
        return text
    reasons = [line.strip()[2:] for line in text.splitlines() if line.strip().startswith("- ")]
    reasons = [r for r in reasons if not r.startswith(("Expected a <class 'NoneType'>", "Does not validate"))]
    group = "data" if "LightningDataModule" in text.split("Errors:")[0] else \
        "model" if "LightningModule" in text.split("Errors:")[0] else None
    reason = reasons[0] if reasons else text.splitlines()[0]
    return f"{group}: {reason}" if group else reason


def place_run_paths(trainer: Any) -> None:
    """Fill the unset paths of the trainer config's loggers (``save_dir``) and ``ModelCheckpoint`` callbacks
    (``dirpath``) with ``default_root_dir`` and ``default_root_dir/checkpoints``; paths a recipe sets stay."""
    root = Path(trainer.default_root_dir or ".")
    loggers = trainer.logger if isinstance(trainer.logger, list) else [trainer.logger]
    for entry in loggers:
        args = getattr(entry, "init_args", None)
        if args is not None and LOGGER_DIR_ARG in args and args[LOGGER_DIR_ARG] is None:
            args[LOGGER_DIR_ARG] = str(root)
    for entry in trainer.callbacks or []:
        args = getattr(entry, "init_args", None)
        if str(getattr(entry, "class_path", "")).endswith(CHECKPOINT_CLASS) and args is not None \
                and args.get("dirpath") is None:
            args["dirpath"] = str(root / "checkpoints")


class _ConfigOnly(NaasCLI):
    """Parses a command line like ``naas-train fit`` would, instantiating nothing (to read the run folder)."""

    def instantiate_classes(self) -> None:
        """Nothing: only ``self.config`` is wanted."""


def run_folder(args: list[str]) -> Path:
    """``trainer.default_root_dir`` of a pipeline's arguments (the recipe's, or the command line's)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="LightningCLI's args parameter")
        return Path(_ConfigOnly(args=args, run=False).config.trainer.default_root_dir or ".")


def run_step(args: list[str]) -> NaasCLI:
    """One LightningCLI subcommand in this process (the command line stays as the user gave it, so a launcher
    that re-runs it starts the same pipeline on the other ranks)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="LightningCLI's args parameter")
        return NaasCLI(args=args)


class PipelineRecord:
    """``<root>/pipeline.json``: the finished steps (seconds and outputs), written by rank 0 after each."""

    def __init__(self, root: Path, args: list[str], resume: bool) -> None:
        self.path = root / "pipeline.json"
        self.data: dict[str, Any] = {"args": args, "resumed": resume, "steps": {}}
        if resume and self.path.is_file():
            try:
                self.data["steps"] = dict(json.loads(self.path.read_text()).get("steps", {}))
            except (OSError, json.JSONDecodeError, AttributeError):
                self.data["steps"] = {}  # unreadable: every step runs again (each resumes from its own state)

    def done(self, step: str) -> dict[str, Any] | None:
        """What a finished step recorded (announcing that it is skipped), or ``None``."""
        info = self.data["steps"].get(step)
        if info is not None and step != "export" and is_global_zero():
            print(f"naas-train pipeline: {step} finished before ({self.path}), skipped", flush=True)
        return info

    def finish(self, step: str, **info: Any) -> None:
        """Record ``step`` (rank 0 writes; every rank waits for it)."""
        self.data["steps"][step] = info
        on_rank_zero(atomic_write_json, self.path, self.data)


def pipeline(args: list[str]) -> str:
    """fit -> (co-search at the end of training, else a search step) -> finetune -> export; returns the bundle
    path. Every rank runs this; see the module docstring."""
    parser = argparse.ArgumentParser(
        prog="naas-train pipeline", add_help=False, formatter_class=argparse.RawDescriptionHelpFormatter,
        description="fit (co-search at fit end) -> finetune -> export.\nEvery other argument (--config, --trainer.*, "
                    "--model.*, --data.*) goes to\neach step as in `naas-train fit`.")
    parser.add_argument("--finetune_epochs", type=int, default=3, help="KD fine-tuning epochs (default 3)")
    parser.add_argument("--finetune_lr", type=float, default=0.01,
                        help="fine-tuning learning rate per process (scaled by the world size; default 0.01)")
    parser.add_argument("--out", default=None, help="bundle folder (default <default_root_dir>/bundle)")
    parser.add_argument("--resume", action="store_true",
                        help="continue a killed run: skip finished steps, fit from the newest checkpoint, the "
                             "co-search from its saved state")
    if "-h" in args or "--help" in args:
        print(parser.format_help())
        raise SystemExit(0)
    own, rest = parser.parse_known_args(args)
    root = run_folder(rest)
    record = PipelineRecord(root, args, own.resume)
    result = root / "cosearch" / "result.json"

    fit = record.done("fit")
    if fit is None:
        started = time.perf_counter()
        cli = run_step(["fit", *rest, *(["--ckpt_path", "last"] if own.resume else [])])
        ckpt = _trained_checkpoint(cli.trainer)
        callback = next((c for c in cli.trainer.callbacks if isinstance(c, CoSearchCallback)), None)
        # every rank holds the broadcast result; rank 0 wrote result.json before setting it (checking the file
        # here would race with that write on the other ranks and send them into a search step alone)
        searched = callback is not None and (callback.last_result or {}).get("tag") == "final"
        record.finish("fit", seconds=time.perf_counter() - started, checkpoint=ckpt)
        if searched:
            record.finish("search", seconds=float(callback.last_result.get("wall_s", 0.0)), at="fit end",
                          result=str(result))
        fit = {"checkpoint": ckpt}
    ckpt = fit["checkpoint"]
    if record.done("search") is None:
        started = time.perf_counter()
        run_step(["search", *rest, "--ckpt_path", ckpt])
        record.finish("search", seconds=time.perf_counter() - started, at="search step", result=str(result))
    finetuned = root / "finetune" / "finetuned.ckpt"
    if record.done("finetune") is None:
        started = time.perf_counter()
        run_step(["finetune", *rest, "--ckpt_path", ckpt, "--result", str(result),
                  "--epochs", str(own.finetune_epochs), "--lr", str(own.finetune_lr)])
        record.finish("finetune", seconds=time.perf_counter() - started, checkpoint=str(finetuned))
    bundle = Path(own.out) if own.out else root / "bundle"
    started = time.perf_counter()
    run_step(["export", *rest, "--ckpt_path", ckpt, "--result", str(result), "--checkpoint", str(finetuned),
              "--overwrite", "true", *(["--out", own.out] if own.out else [])])
    record.finish("export", seconds=time.perf_counter() - started, bundle=str(bundle))
    if is_global_zero():
        steps = record.data["steps"]
        seconds = {step: float(steps[step]["seconds"]) for step in STEPS}
        record.data.update(bundle=str(bundle), seconds={
            "total": seconds["fit"] + seconds["finetune"] + seconds["export"]
            + (0.0 if steps["search"]["at"] == "fit end" else seconds["search"]),
            "fit": seconds["fit"], "cosearch": seconds["search"], "finetune": seconds["finetune"],
            "export": seconds["export"], "cosearch_in_fit": float(steps["search"]["at"] == "fit end")})
        atomic_write_json(record.path, record.data)
        print(summary(bundle, json.loads(result.read_text()), record.data["seconds"]))
        print(f"naas-train pipeline: bundle written to {bundle}")
    return str(bundle)


def _trained_checkpoint(trainer: NaasTrainer) -> str:
    """The checkpoint fit left (``last.ckpt``, else the best one)."""
    cb = trainer.checkpoint_callback
    ckpt = (cb.last_model_path or cb.best_model_path) if cb is not None else ""
    if not ckpt:
        raise SystemExit("naas-train pipeline: the recipe needs a ModelCheckpoint with save_last: true (and a "
                         "naas_train.cosearch_callback.CoSearchCallback with run_at: [fit_end] to search at fit end)")
    return ckpt


def summary(bundle: Path, result: dict, seconds: dict[str, float]) -> str:
    """Wall time per step and the bundle's headline numbers."""
    metrics = json.loads((bundle / "metrics.json").read_text())
    largest = metrics["baselines"].get("largest_subnet_on_budget", {})
    within = " of it" if seconds.get("cosearch_in_fit") else ""
    lines = [f"naas-train pipeline: {seconds['total']:.0f} s (fit {seconds['fit']:.0f} s, co-search "
             f"{seconds['cosearch']:.0f} s{within}, finetune {seconds['finetune']:.0f} s, export "
             f"{seconds['export']:.0f} s)",
             f"  accuracy {metrics['accuracy']:.4f} ({metrics['accuracy_detail']['runtime']}, "
             f"{metrics['accuracy_detail']['images']} validation images, {metrics['resolution']} px); "
             f"{metrics['macs']:,} MACs, {metrics['params']:,} params",
             f"  {metrics['cycles']:,.0f} cycles, {metrics['energy_pj'] / 1e6:,.2f} uJ, EDP {metrics['edp']:.3e} "
             f"(the largest subnet on the {result['settings']['budget']} preset: {largest.get('edp_ratio', float('nan')):.1f}x "
             f"this EDP at accuracy {largest.get('accuracy', float('nan')):.4f})"]
    return "\n".join(lines)


def main(args: list[str] | None = None) -> None:
    """Console script ``naas-train``."""
    args = list(sys.argv[1:] if args is None else args)
    if args and args[0] == "pipeline":
        pipeline(args[1:])
        return
    run_step(args)


if __name__ == "__main__":
    main()
