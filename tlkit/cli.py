"""The `tlkit` command: a LightningCLI whose YAML picks the module by `class_path`."""

from __future__ import annotations

import importlib
import sys

from lightning.pytorch import LightningModule
from lightning.pytorch.cli import ArgsType, LightningCLI

from tlkit.data.datamodule import ToolCallDataModule
from tlkit.data.records import RecordError

TRAINER_DEFAULTS = {
    "logger": {"class_path": "lightning.pytorch.loggers.TensorBoardLogger", "init_args": {"save_dir": "runs", "name": "tlkit"}},
}


DESCRIPTION = (
    "tlkit: train language models to call tools (TL-Training: MAE, PKT, IRM). One YAML per experiment: "
    "tlkit fit --config experiments/sft.yaml. Beside fit / validate / test / predict: "
    "tlkit score --help (score prediction files), tlkit ablate --help (the ablation table)."
)


# Verbs beside LightningCLI's own, each a module with `main(args)`.
EXTRA_VERBS = {"score": "tlkit.score", "ablate": "tlkit.ablate"}


class TLKitCLI(LightningCLI):
    def add_arguments_to_parser(self, parser) -> None:
        # The model source is written once: the tokenizer is read from it, and the loaded
        # tokenizer object is handed to the module.
        parser.link_arguments("model.init_args.model", "data.tokenizer")
        parser.link_arguments("data.tokenizer", "model.init_args.tokenizer", apply_on="instantiate")


def main(args: ArgsType = None) -> None:
    """`tlkit fit | validate | test | predict` (LightningCLI), and `tlkit score | ablate` beside them."""
    argv = sys.argv[1:] if args is None else list(args)
    if argv and argv[0] in EXTRA_VERBS:
        importlib.import_module(EXTRA_VERBS[argv[0]]).main(argv[1:])
        return
    try:
        TLKitCLI(
            LightningModule,
            ToolCallDataModule,
            subclass_mode_model=True,
            trainer_defaults=TRAINER_DEFAULTS,
            save_config_kwargs={"overwrite": False},
            parser_kwargs={"description": DESCRIPTION},
            auto_configure_optimizers=False,
            args=args,
        )
    except (RecordError, FileNotFoundError) as error:  # bad input: say what and where, no traceback
        raise SystemExit(f"tlkit: error: {error}") from None


if __name__ == "__main__":
    main()
