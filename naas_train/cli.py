"""``naas-train``: the LightningCLI entry point.

``naas-train fit|validate|search|finetune|export --config recipes/<name>.yaml`` run one step each;
``naas-train pipeline --config recipes/<name>.yaml`` runs them all: fit (the recipe's ``CoSearchCallback``
co-searches at the end of fit) -> fine-tune the chosen subnet -> export the bundle, and prints its path.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pytorch_lightning import LightningDataModule, LightningModule
from pytorch_lightning.cli import LightningArgumentParser, LightningCLI

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
    parser = argparse.ArgumentParser(prog="naas-train pipeline", add_help=False)
    parser.add_argument("--finetune_epochs", type=int, default=3)
    parser.add_argument("--finetune_lr", type=float, default=0.01)
    parser.add_argument("--out", default=None, help="bundle folder (default <default_root_dir>/bundle)")
    own, rest = parser.parse_known_args(args)
    fit = NaasCLI(args=["fit", *rest])
    trainer = fit.trainer
    ckpt = trainer.checkpoint_callback.last_model_path if trainer.checkpoint_callback else ""
    ckpt = ckpt or (trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else "")
    root = Path(trainer.default_root_dir)
    result = root / "cosearch" / "result.json"
    if not ckpt or not result.exists():
        raise SystemExit("naas-train pipeline: the recipe needs a ModelCheckpoint (save_last: true) and a "
                         "naas_train.cosearch_callback.CoSearchCallback with run_at: [fit_end]")
    NaasCLI(args=["finetune", *rest, "--ckpt_path", ckpt, "--result", str(result),
                  "--epochs", str(own.finetune_epochs), "--lr", str(own.finetune_lr)])
    finetuned = root / "finetune" / "finetuned.ckpt"
    export = ["export", *rest, "--ckpt_path", ckpt, "--result", str(result), "--checkpoint", str(finetuned),
              "--overwrite", "true"]
    if own.out:
        export += ["--out", own.out]
    NaasCLI(args=export)
    bundle = Path(own.out) if own.out else root / "bundle"
    print(f"naas-train pipeline: bundle written to {bundle}")
    return str(bundle)


def main(args: list[str] | None = None) -> None:
    """Console script ``naas-train``."""
    args = list(sys.argv[1:] if args is None else args)
    if args and args[0] == "pipeline":
        pipeline(args[1:])
        return
    NaasCLI(args=args)


if __name__ == "__main__":
    main()
