"""The `tlkit` command: a LightningCLI whose YAML picks the module by `class_path`."""

from __future__ import annotations

import difflib
import importlib
import logging
import re
import sys
import warnings
from pathlib import Path
from typing import Any

from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.cli import ArgsType, LightningCLI

from tlkit.allocator import fix_mmap_threshold
from tlkit.callbacks import RunSummary, StepProgressBar
from tlkit.data.datamodule import ToolCallDataModule
# Imported so that LightningCLI lists them as the known modules (`--help`, `--model WeightedSFT`).
from tlkit.modules.ppo import ErrorAwarePPO  # noqa: F401
from tlkit.modules.sft import WeightedSFT  # noqa: F401
from tlkit.records import RecordError

TRAINER_DEFAULTS = {
    "logger": {"class_path": "lightning.pytorch.loggers.TensorBoardLogger",
               "init_args": {"save_dir": "runs", "name": "tlkit"}},
}

# Loggers writing to `<save_dir>/<name>/version_N/` (or `<version>/` when it is a string).
VERSIONED_LOGGERS = ("TensorBoardLogger", "CSVLogger")

DESCRIPTION = (
    "tlkit: train language models to call tools (TL-Training: MAE, PKT, IRM). One YAML per experiment: "
    "tlkit fit --config experiments/sft.yaml. Beside fit / validate / test / predict: "
    "tlkit score --help (score prediction files), tlkit ablate --help (the ablation table)."
)


# Verbs beside LightningCLI's own, each a module with `main(args)`.
EXTRA_VERBS = {"score": "tlkit.score", "ablate": "tlkit.ablate"}
VERBS = ("fit", "validate", "test", "predict", *EXTRA_VERBS)
USAGE = f"tlkit [-h] {{{','.join(VERBS)}}} ..."


class TLKitCLI(LightningCLI):
    def add_arguments_to_parser(self, parser) -> None:
        # The model source is written once: the tokenizer is read from it, and the loaded
        # tokenizer object is handed to the module.
        parser.link_arguments("model.init_args.model", "data.tokenizer")
        parser.link_arguments("data.tokenizer", "model.init_args.tokenizer", apply_on="instantiate")
        parser.add_argument(
            "--validate_before_fit", type=bool, default=False,
            help="fit: score the validation sets once before training (step 0, not when resuming), so the "
                 "summary at the end compares before with after",
        )

    def _prepare_subcommand_parser(self, klass: type, subcommand: str, **kwargs: Any):
        parser = super()._prepare_subcommand_parser(klass, subcommand, **kwargs)
        if subcommand in ("validate", "test"):  # tlkit prints one table of its own, not one per dataloader
            parser.set_defaults(verbose=False)
        return parser

    def _add_subcommands(self, parser, **kwargs) -> None:
        super()._add_subcommands(parser, **kwargs)
        parser.usage = USAGE  # set after the subcommands, whose usage lines would otherwise repeat it

    def _instantiate_trainer(self, config: dict[str, Any], callbacks: list[Callback]) -> Trainer:
        # Always present, whatever a YAML's callbacks: the run's summary and, unless bars are off, one bar for the run.
        callbacks = [*callbacks, RunSummary()]
        if config.get("enable_progress_bar", True) is not False:
            callbacks.append(StepProgressBar())
        return super()._instantiate_trainer(config, callbacks)

    def before_fit(self) -> None:
        config = self.config[self.subcommand]
        for logger in self.trainer.loggers:  # merged into hparams.yaml with the module's own hyperparameters
            logger.log_hyperparams(experiment_knobs(config))
        if config.get("validate_before_fit") and not config.get("ckpt_path"):
            # As fit's own validation does (no_grad, not inference_mode): metric states made here are
            # updated in place by the validations during fit, which inference tensors refuse.
            self.trainer.validate_loop.inference_mode = False
            self.trainer.validate(self.model, datamodule=self.datamodule, verbose=False)

    def after_fit(self) -> None:
        summary = next((c for c in self.trainer.callbacks if isinstance(c, RunSummary)), None)
        if summary is None:
            return
        if summary.evaluations:  # TensorBoard's HPARAMS view: the knobs against the last scores
            final = {f"hp/{name}/{metric}": value for name, scores in summary.evaluations[-1][1].items()
                     for metric, value in scores.items() if metric in ("ts", "pi", "cf")}
            for logger in self.trainer.loggers:
                logger.log_hyperparams(experiment_knobs(self.config[self.subcommand]), final)
        if self.trainer.is_global_zero:
            print(summary.report(self.trainer))

    def before_instantiate_classes(self) -> None:
        # A fit resumed from a checkpoint of an unfinished run goes on logging in that run's folder.
        config = self.config.get(str(self.subcommand)) if self.subcommand == "fit" else None
        if config is None or not config.get("ckpt_path"):
            return
        loggers = config.trainer.logger if isinstance(config.trainer.logger, list) else [config.trainer.logger]
        for logger in loggers:
            if str(getattr(logger, "class_path", "")).rsplit(".", 1)[-1] not in VERSIONED_LOGGERS:
                continue
            args = logger.init_args
            folder = run_folder(config.ckpt_path, Path(args.save_dir) / (args.get("name") or ""))
            if folder is None or args.get("version") is not None:  # elsewhere, or a version set by hand
                continue
            args.version = int(folder.name[8:]) if re.fullmatch(r"version_\d+", folder.name) else folder.name
            # config.yaml holds the first attempt's configuration; each resume's goes beside it
            k = 1
            while (folder / f"config.resume{k}.yaml").exists():
                k += 1
            self.save_config_kwargs["config_filename"] = f"config.resume{k}.yaml"


def experiment_knobs(config) -> dict[str, Any]:
    """What ablations vary, flat and readable: the module, its loss (PKT's w_max and reduction), learning
    rate and LoRA rank, MAE and the training files. Read from the parsed config, as the user wrote it."""
    model = config.model.init_args
    optimizer = model.get("optimizer") or model.get("actor_optimizer")
    loss = model.get("loss")
    knobs = {
        "module": str(config.model.class_path).rsplit(".", 1)[-1],
        "loss": str(loss.class_path).rsplit(".", 1)[-1] if loss else None,
        "w_max": loss.init_args.get("w_max") if loss else None,
        "reduction": loss.init_args.get("reduction") if loss else None,
        "lr": optimizer.init_args.get("lr") if optimizer else None,
        "lora_r": (model.get("lora") or {}).get("r"),
        "data.mae": config.data.mae,
        "data.train": ", ".join(f"{f.path} ({f.format})" for f in config.data.train or []),
    }
    return {k: v for k, v in knobs.items() if v is not None}


def run_folder(ckpt_path: str, root: Path) -> Path | None:
    """The run folder `root/<version>/` holding `ckpt_path`; None if it lies elsewhere or the run finished.

    A run that exported `hf_model/` has finished: training on from its checkpoint starts a new folder.
    """
    ckpt, root = Path(ckpt_path).resolve(), root.resolve()
    if root not in ckpt.parents or len(ckpt.relative_to(root).parts) < 2:
        return None
    folder = root / ckpt.relative_to(root).parts[0]
    return None if (folder / "hf_model").exists() else folder


class DropTips(logging.Filter):
    """Lightning's product tips (litlogger, litmodels): nothing a tlkit user acts on."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("💡 Tip")


def quiet_console() -> None:
    """Leave on the console what a user can act on: no product tips, no deprecations raised inside
    Lightning or peft, no `datasets` bars (tlkit prints what each split holds)."""
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero"):
        logging.getLogger(name).addFilter(DropTips())
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")
    # A test or a resume from a checkpoint written elsewhere: tlkit names its own run folder.
    warnings.filterwarnings("ignore", message=r"The dirpath has changed from")
    warnings.filterwarnings("ignore", message=r"Precision .* is not supported by the model summary")  # its size column
    warnings.filterwarnings("ignore", message=r"`is_gradient_checkpointing` is deprecated")  # peft asks transformers 5
    import datasets

    datasets.disable_progress_bars()


def main(args: ArgsType = None) -> None:
    """`tlkit fit | validate | test | predict` (LightningCLI), and `tlkit score | ablate` beside them."""
    fix_mmap_threshold()  # before anything large is allocated
    argv = sys.argv[1:] if args is None else list(args)
    if argv and argv[0] in EXTRA_VERBS:
        importlib.import_module(EXTRA_VERBS[argv[0]]).main(argv[1:])
        return
    if argv and not argv[0].startswith("-") and argv[0] not in VERBS:  # argparse's own error omits score / ablate
        close = difflib.get_close_matches(argv[0], VERBS, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise SystemExit(f"usage: {USAGE}\ntlkit: error: unknown command '{argv[0]}' "
                         f"(choose from {', '.join(VERBS)}){hint}")
    quiet_console()
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
