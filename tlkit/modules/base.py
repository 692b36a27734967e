"""What every tlkit module shares: the tokenizer, generation-based evaluation, and the export."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import lightning as L
import torch

from tlkit.data.batching import PromptBatch
from tlkit.irm import ErrorCategoryReward
from tlkit.models import export_pretrained
from tlkit.modules.evaluation import GenerationEvaluation


class ToolCallModule(L.LightningModule):
    """Validation and test for any policy: loss batches go to `eval_loss`, prompt batches are
    generated and scored (TS / PI / CF, categories); at the end of fit the policy is exported."""

    policy: torch.nn.Module

    def __init__(self, tokenizer: Any, eval_generation: bool, max_new_tokens: int, export: bool, merge_lora: bool,
                 reward: ErrorCategoryReward | None = None):
        super().__init__()
        self.tokenizer = tokenizer
        self.evaluation = GenerationEvaluation(max_new_tokens, reward=reward) if eval_generation else None
        self.export, self.merge_lora = export, merge_lora

    def eval_loss(self, batch: dict[str, torch.Tensor], stage: str) -> None:
        """Log a loss on token batches of the eval sets; modules without one ignore them."""

    def evaluation_step(self, batch: dict[str, torch.Tensor] | PromptBatch, stage: str) -> None:
        if not isinstance(batch, PromptBatch):
            self.eval_loss(batch, stage)
        elif self.evaluation is not None:
            self.evaluation.step(self, self.policy, self.tokenizer, batch, stage)

    def validation_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        self.evaluation_step(batch, "val")

    def test_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        self.evaluation_step(batch, "test")

    def predict_step(self, batch: PromptBatch, batch_idx: int, dataloader_idx: int = 0) -> list[dict[str, Any]]:
        if self.evaluation is None:
            raise RuntimeError("predict generates answers: set model.init_args.eval_generation: true")
        return self.evaluation.step(self, self.policy, self.tokenizer, batch, "predict")

    def on_predict_epoch_end(self) -> None:
        self.evaluation.epoch_end(self, "predict")

    def on_validation_epoch_end(self) -> None:
        if self.evaluation is not None and not self.trainer.sanity_checking:
            self.evaluation.epoch_end(self, "val")

    def on_test_epoch_end(self) -> None:
        if self.evaluation is not None:
            self.evaluation.epoch_end(self, "test")

    def on_fit_end(self) -> None:
        log_dir = self.trainer.log_dir  # every rank asks: it is a collective under DDP
        if self.export and self.trainer.is_global_zero and log_dir and self.tokenizer is not None:
            out = export_pretrained(self.policy, self.tokenizer, str(Path(log_dir) / "hf_model"), self.merge_lora)
            point_last_export(out)
            print(f"tlkit: exported Hugging Face format to {out} (also {out.parent.parent / LAST_EXPORT})")


LAST_EXPORT = "last_export"


def point_last_export(export: Path) -> None:
    """`<save_dir>/<name>/last_export` -> this run's export, replaced atomically: a later experiment (PPO
    from SFT) names the newest finished fit's export, never a test run's or a half-written folder."""
    link = export.parent.parent / LAST_EXPORT
    temporary = link.with_name(f".{LAST_EXPORT}.{os.getpid()}")
    temporary.unlink(missing_ok=True)
    temporary.symlink_to(Path(export.parent.name) / export.name)  # relative: the runs folder can move
    os.replace(temporary, link)
