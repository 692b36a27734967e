"""Models and tokenizers: a local pretrained folder, or a small model built from its config alone.

One code path: `load_causal_lm(path)` loads weights when the folder has them, and otherwise builds
the architecture its `config.json` describes with fresh weights (how tests and the embedded default
run offline). Nothing is ever fetched from a hub.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerFast

log = logging.getLogger(__name__)

WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")
SPECIAL_TOKENS = {"bos_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>", "unk_token": "<unk>"}


def load_tokenizer(path: str) -> PreTrainedTokenizerFast:
    """A fast tokenizer from a local folder, with a pad token (the end-of-turn token if it had none)."""
    if not Path(path).is_dir():
        raise FileNotFoundError(f"tokenizer folder {path!r} does not exist (tlkit reads local folders only)")
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    if not tokenizer.is_fast:
        raise ValueError(f"{path}: tlkit needs a fast tokenizer (offset mappings locate the tool-call spans)")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def train_tokenizer(texts: Iterable[str], vocab_size: int) -> PreTrainedTokenizerFast:
    """A byte-level BPE trained on `texts`, offline, with `<s> </s> <pad> <unk>`."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=list(SPECIAL_TOKENS.values()),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, **SPECIAL_TOKENS)


def has_weights(path: str) -> bool:
    return any((Path(path) / name).exists() for name in WEIGHT_FILES)


def load_causal_lm(path: str, dtype: str | None = None) -> PreTrainedModel:
    """Pretrained weights from `path`, or a fresh model from its `config.json` when it has none."""
    if not (Path(path) / "config.json").exists():
        raise FileNotFoundError(f"model folder {path!r} has no config.json (tlkit reads local folders only)")
    torch_dtype = getattr(torch, dtype) if dtype else None
    if has_weights(path):
        return AutoModelForCausalLM.from_pretrained(path, dtype=torch_dtype, local_files_only=True)
    log.warning("%s holds no weights: building the model its config.json describes, randomly initialised", path)
    config = AutoConfig.from_pretrained(path, local_files_only=True)
    return AutoModelForCausalLM.from_config(config, dtype=torch_dtype)


def apply_lora(model: PreTrainedModel, lora: dict[str, Any] | None) -> PreTrainedModel:
    """Wrap `model` with a peft LoRA adapter configured by `lora` (peft `LoraConfig` keywords)."""
    if not lora:
        return model
    from peft import LoraConfig, get_peft_model

    return get_peft_model(model, LoraConfig(task_type="CAUSAL_LM", **lora))


def export_pretrained(model: PreTrainedModel, tokenizer: Any, out_dir: str, merge_lora: bool = True) -> Path:
    """Write Hugging Face format (model + tokenizer); LoRA merged into the weights if asked.

    Refuses to write into a non-empty folder, so an earlier export is never overwritten.
    """
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} is not empty: choose a new folder, an earlier export is never overwritten")
    if merge_lora and hasattr(model, "merge_and_unload"):
        import copy

        model = copy.deepcopy(model).merge_and_unload()
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out
