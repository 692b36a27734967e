"""`WeightedSFT`: supervised fine-tuning with PKT key-token weighting over a Hugging Face causal LM."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from jsonargparse import lazy_instance
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import nn
from torchmetrics import MeanMetric

from tlkit.models import LoraSettings, apply_lora, load_causal_lm
from tlkit.modules.base import ToolCallModule
from tlkit.pkt import KeyTokenLoss

# Teacher-forced tags of validation and test (`<stage>/<tag>`), which `tlkit ablate` reads back.
KEY_ACCURACY, CROSS_ENTROPY = "key_accuracy", "ce"


class WeightedSFT(ToolCallModule):
    """Weighted SFT: every trained assistant turn of a trajectory in one pass, key tokens up-weighted.

    Args:
        model: Local folder of a Hugging Face causal LM, a GGUF file, or a bundled short name
            (docs/models.md). A folder with only a `config.json` builds that architecture with
            fresh weights (the embedded default).
        tokenizer: The tokenizer; linked from the DataModule by the CLI, not set in YAML.
        loss: The loss, PKT's `KeyTokenLoss` (`w_max`, `exclude_argument_ends`, `reduction`); `w_max: 1` is
            plain SFT.
        lora: peft `LoraConfig` keywords (e.g. `{r: 8, lora_alpha: 16, target_modules: [q_proj, v_proj]}`);
            None trains all weights.
        dtype: Weight dtype to load in (`bfloat16`, `float32`, ...); None keeps the checkpoint's.
        gradient_checkpointing: Recompute activations in the backward pass to save memory.
        eval_generation: During validation and test, also generate each eval prompt's answer and
            score it (TS / PI / CF, error categories); predictions go to `<run folder>/predictions/`.
        max_new_tokens: Longest generated answer in evaluation.
        export: At the end of fit, write Hugging Face format to `<run folder>/hf_model`.
        merge_lora: Merge the LoRA adapter into the exported weights.
        optimizer: Optimiser, e.g. `{class_path: torch.optim.AdamW, init_args: {lr: 3e-4}}`.
        scheduler: Learning-rate scheduler, stepped every optimiser step; None for a constant rate.
    """

    def __init__(
        self,
        model: str,
        tokenizer: Any = None,
        loss: KeyTokenLoss = lazy_instance(KeyTokenLoss),
        lora: LoraSettings | None = None,
        dtype: str | None = None,
        gradient_checkpointing: bool = False,
        eval_generation: bool = True,
        max_new_tokens: int = 128,
        export: bool = True,
        merge_lora: bool = True,
        optimizer: OptimizerCallable = torch.optim.AdamW,
        scheduler: LRSchedulerCallable | None = None,
    ):
        super().__init__(tokenizer, eval_generation, max_new_tokens, export, merge_lora)
        self.save_hyperparameters(ignore=["tokenizer", "loss", "optimizer", "scheduler"])
        self.loss = loss
        self.optimizer, self.scheduler = optimizer, scheduler
        self.policy = apply_lora(load_causal_lm(model, dtype), lora)
        if tokenizer is not None and len(tokenizer) > self.policy.get_input_embeddings().num_embeddings:
            raise ValueError(f"the tokenizer has {len(tokenizer)} tokens but {model} embeds only "
                             f"{self.policy.get_input_embeddings().num_embeddings}: they do not belong together")
        if gradient_checkpointing:  # transformers 5 names it activation checkpointing
            enable = (getattr(self.policy, "activation_checkpointing_enable", None)
                      or self.policy.gradient_checkpointing_enable)
            enable()
        # Teacher-forced top-1 accuracy at key tokens: PKT's own target, readable before generation works.
        self.key_accuracy = nn.ModuleDict({stage: MeanMetric() for stage in ("val", "test")})

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                logits_to_keep: torch.Tensor | int = 0) -> torch.Tensor:
        """Logits (b, s, v); with a boolean (b, s) `logits_to_keep`, (n, v) for its n True positions."""
        return self.policy(input_ids=input_ids, attention_mask=attention_mask, logits_to_keep=logits_to_keep,
                           use_cache=False).logits

    def losses(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Weighted loss, plain CE, the mean key-token weight of a batch and, in evaluation, whether
        the model's top-1 prediction is right at each key token (`key_correct`, a flat bool tensor)."""
        # Masks are aligned with input tokens; the logit at t predicts token t + 1.
        targets, turn_ids = batch["input_ids"][:, 1:], batch["turn_ids"][:, 1:]
        key_mask, argument_end_mask = batch["key_mask"][:, 1:], batch["argument_end_mask"][:, 1:]
        # Only supervised positions go through the LM head (a (hidden x vocab) matmul per position).
        keep = F.pad(turn_ids >= 0, (0, 1), value=False)
        logits = self(batch["input_ids"], batch["attention_mask"], logits_to_keep=keep)
        loss, ce, weights = self.loss(logits, targets, turn_ids, key_mask, argument_end_mask)
        supervised = turn_ids >= 0
        key = key_mask & supervised
        n_key = key.sum()
        key_weight = torch.where(n_key > 0, (weights * key).sum() / n_key.clamp(min=1), 1.0)  # no branch on device data
        out = {"loss": loss, "ce": ce, "key_weight": key_weight, "tokens": supervised.sum()}
        if not self.training:  # evaluation only: one more boolean indexing, and an argmax
            # logits: row-major over `supervised`
            out["key_correct"] = logits[key[supervised]].argmax(-1) == targets[key]
        return out

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        out = self.losses(batch)
        size = batch["input_ids"].shape[0]
        self.log("train/loss", out["loss"], prog_bar=True, batch_size=size)
        self.log("train/ce", out["ce"], batch_size=size)
        self.log("train/key_weight", out["key_weight"], batch_size=size)
        self.log("train/supervised_tokens", out["tokens"].float(), batch_size=size, reduce_fx="sum")
        return out["loss"]

    def eval_loss(self, batch: dict[str, torch.Tensor], stage: str) -> None:
        out = self.losses(batch)
        size = batch["input_ids"].shape[0]
        self.log(f"{stage}/loss", out["loss"], prog_bar=True, batch_size=size, sync_dist=True, add_dataloader_idx=False)
        self.log(f"{stage}/{CROSS_ENTROPY}", out["ce"], batch_size=size, sync_dist=True, add_dataloader_idx=False)
        if out["key_correct"].numel():
            self.key_accuracy[stage].update(out["key_correct"].float())  # a mean over key tokens, not batches
            self.log(f"{stage}/{KEY_ACCURACY}", self.key_accuracy[stage], add_dataloader_idx=False)

    def configure_optimizers(self) -> Any:
        optimizer = self.optimizer(p for p in self.parameters() if p.requires_grad)
        if self.scheduler is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": self.scheduler(optimizer), "interval": "step"}}
