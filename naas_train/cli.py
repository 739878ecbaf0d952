"""``naas-train``: the LightningCLI entry point.

``naas-train fit|validate|search|finetune|export --config recipes/<name>.yaml`` run one step each;
``naas-train pipeline --config recipes/<name>.yaml`` runs them all: fit (the recipe's ``CoSearchCallback``
co-searches at the end of fit) -> fine-tune the chosen subnet -> export the bundle, and prints its path.
Wall time per step goes to ``<default_root_dir>/pipeline.json``. ``--resume`` continues a killed pipeline:
fit from the newest ``last.ckpt``, the co-search from its saved state; fine-tuning and export run again.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from pytorch_lightning import LightningDataModule, LightningModule
from pytorch_lightning.cli import LightningArgumentParser, LightningCLI

from hwmodel.report import write_json_atomic
from naas_train.trainer import NaasTrainer


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


def pipeline(args: list[str]) -> str:
    """fit -> (co-search at fit end) -> finetune -> export; returns the bundle path."""
    parser = argparse.ArgumentParser(
        prog="naas-train pipeline", add_help=False, formatter_class=argparse.RawDescriptionHelpFormatter,
        description="fit (co-search at fit end) -> finetune -> export.\nEvery other argument (--config, --trainer.*, "
                    "--model.*, --data.*) goes to\neach step as in `naas-train fit`.")
    parser.add_argument("--finetune_epochs", type=int, default=3, help="KD fine-tuning epochs (default 3)")
    parser.add_argument("--finetune_lr", type=float, default=0.01, help="fine-tuning learning rate (default 0.01)")
    parser.add_argument("--out", default=None, help="bundle folder (default <default_root_dir>/bundle)")
    parser.add_argument("--resume", action="store_true",
                        help="continue a killed run: fit from its last.ckpt, the co-search from its saved state")
    if "-h" in args or "--help" in args:
        print(parser.format_help())
        raise SystemExit(0)
    own, rest = parser.parse_known_args(args)
    clock = [time.perf_counter()]
    fit = NaasCLI(args=["fit", *rest, *(["--ckpt_path", "last"] if own.resume else [])])
    trainer = fit.trainer
    ckpt = trainer.checkpoint_callback.last_model_path if trainer.checkpoint_callback else ""
    ckpt = ckpt or (trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else "")
    root = Path(trainer.default_root_dir)
    result = root / "cosearch" / "result.json"
    if not ckpt or not result.exists():
        raise SystemExit("naas-train pipeline: the recipe needs a ModelCheckpoint (save_last: true) and a "
                         "naas_train.cosearch_callback.CoSearchCallback with run_at: [fit_end]")
    clock.append(time.perf_counter())
    NaasCLI(args=["finetune", *rest, "--ckpt_path", ckpt, "--result", str(result),
                  "--epochs", str(own.finetune_epochs), "--lr", str(own.finetune_lr)])
    clock.append(time.perf_counter())
    finetuned = root / "finetune" / "finetuned.ckpt"
    export = ["export", *rest, "--ckpt_path", ckpt, "--result", str(result), "--checkpoint", str(finetuned),
              "--overwrite", "true"]
    if own.out:
        export += ["--out", own.out]
    NaasCLI(args=export)
    clock.append(time.perf_counter())
    bundle = Path(own.out) if own.out else root / "bundle"
    if trainer.is_global_zero:
        seconds, searched = np.diff(clock), json.loads(result.read_text())
        write_json_atomic(root / "pipeline.json", {
            "args": args, "bundle": str(bundle), "resumed": own.resume,
            "seconds": {"total": float(sum(seconds)), "fit": float(seconds[0]), "finetune": float(seconds[1]),
                        "export": float(seconds[2]), "cosearch": searched.get("wall_s")}})
        print(summary(bundle, searched, seconds))
        print(f"naas-train pipeline: bundle written to {bundle}")
    return str(bundle)


def summary(bundle: Path, result: dict, seconds: Sequence[float]) -> str:
    """Wall time per step and the bundle's headline numbers."""
    fit, finetune, export = seconds
    metrics = json.loads((bundle / "metrics.json").read_text())
    largest = metrics["baselines"].get("largest_subnet_on_budget", {})
    lines = [f"naas-train pipeline: {sum(seconds):.0f} s (fit {fit:.0f} s incl. co-search "
             f"{result.get('wall_s', float('nan')):.0f} s, finetune {finetune:.0f} s, export {export:.0f} s)",
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
        sys.argv = sys.argv[:1]  # the steps get their arguments from `args` (LightningCLI warns about both)
        pipeline(args[1:])
        return
    NaasCLI(args=args)


if __name__ == "__main__":
    main()
