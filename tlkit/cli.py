"""The `tlkit` command: a LightningCLI whose YAML picks the module by `class_path`."""

from __future__ import annotations

from lightning.pytorch import LightningModule
from lightning.pytorch.cli import ArgsType, LightningCLI

from tlkit.data.datamodule import ToolCallDataModule

TRAINER_DEFAULTS = {
    "logger": {"class_path": "lightning.pytorch.loggers.TensorBoardLogger", "init_args": {"save_dir": "runs", "name": "tlkit"}},
}


class TLKitCLI(LightningCLI):
    def add_arguments_to_parser(self, parser) -> None:
        # The model folder is written once: the tokenizer is read from it, and the loaded
        # tokenizer object is handed to the module.
        parser.link_arguments("model.init_args.model", "data.tokenizer")
        parser.link_arguments("data.tokenizer", "model.init_args.tokenizer", apply_on="instantiate")


def main(args: ArgsType = None) -> TLKitCLI:
    return TLKitCLI(
        LightningModule,
        ToolCallDataModule,
        subclass_mode_model=True,
        trainer_defaults=TRAINER_DEFAULTS,
        save_config_kwargs={"overwrite": False},
        auto_configure_optimizers=False,
        args=args,
    )


if __name__ == "__main__":
    main()
