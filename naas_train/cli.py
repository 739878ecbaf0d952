"""``naas-train``: the LightningCLI entry point (``naas-train fit|validate --config recipes/<name>.yaml``)."""

from __future__ import annotations

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


def main(args: list[str] | None = None) -> None:
    """Console script ``naas-train``."""
    NaasCLI(args=args)


if __name__ == "__main__":
    main()
