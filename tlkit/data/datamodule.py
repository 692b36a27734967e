"""`ToolCallDataModule`: one DataModule of tool-call trajectories for every tlkit module.

Files are read by the format readers, held as a `datasets.Dataset` (one JSON record per row,
cached on disk), and tokenised with `Dataset.map` (cached too, keyed by the tokenizer, the render
format, the length limit and the MAE settings). Batches are grouped by length so little compute
goes to padding.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from pathlib import Path
from typing import Any, Literal

import datasets
import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_info
from torch.utils.data import DataLoader

from tlkit.data.batching import EvalExample, LengthGroupedSampler, PromptBatch
from tlkit.data.features import encode
from tlkit.data.loading import DataFile, code_stamp, read_records
from tlkit.data.mae import ErrorDetector, masked_turns
from tlkit.data.records import Message, Trajectory
from tlkit.data.render import RenderFormat, render_prompt
from tlkit.models import load_tokenizer

FEATURES = ("input_ids", "turn_ids", "key_mask", "argument_end_mask")
# How answers are parsed in each render format (chat templates mostly write JSON calls).
CALL_FORMATS = {"paper": "python", "json": "json", "chat_template": "json"}


def target_message_index(trajectory: Trajectory) -> int | None:
    """The turn a record is scored on: its last assistant turn with tool calls."""
    for i in range(len(trajectory.messages) - 1, -1, -1):
        if trajectory.messages[i].role == "assistant" and trajectory.messages[i].tool_calls:
            return i
    return None


class ToolCallDataModule(L.LightningDataModule):
    """Tool-call trajectories for SFT (token ids and PKT masks) and for generation (prompts + gold).

    Args:
        tokenizer: The model source whose tokenizer to use: a Hugging Face folder, a GGUF file or
            a bundled short name. Linked from the model's source by the CLI, so it is written once.
        train: Training files, each `{path, format}`.
        val: Validation files.
        test: Test files.
        format: How a trajectory is rendered: `paper` (Python calls, the paper's roles), `json`,
            or `chat_template` (the tokenizer's own, with `tools=`).
        max_length: Token limit per trajectory; longer ones are cut (and counted).
        batch_size: Trajectories per batch (per process).
        group_by_length: Batch trajectories of similar length together.
        num_workers: DataLoader worker processes.
        mae: Mask assistant calls whose tool feedback shows an error (MAE); False trains on them.
        error_substrings: MAE substrings (case- and punctuation-insensitive); None for the defaults.
        error_regexes: MAE regular expressions; None for the defaults.
        cache_dir: Where `datasets` caches records and tokenised features; None for its default.
        seed: Seed of the length-grouped shuffling.
        train_target: What the train loader yields: `trajectories` (token batches, for SFT) or
            `prompts` (each unmasked call turn as a prompt with its gold call, for PPO rollouts).
    """

    def __init__(
        self,
        tokenizer: str,
        train: list[DataFile] | None = None,
        val: list[DataFile] | None = None,
        test: list[DataFile] | None = None,
        format: RenderFormat = "paper",
        max_length: int = 1024,
        batch_size: int = 8,
        group_by_length: bool = True,
        num_workers: int = 0,
        mae: bool = True,
        error_substrings: list[str] | None = None,
        error_regexes: list[str] | None = None,
        cache_dir: str | None = None,
        seed: int = 0,
        train_target: Literal["trajectories", "prompts"] = "trajectories",
    ):
        super().__init__()
        self.tokenizer_path = tokenizer
        self.tokenizer = load_tokenizer(tokenizer)
        self.files = {"train": train or [], "val": val or [], "test": test or []}
        self.format, self.max_length, self.batch_size = format, max_length, batch_size
        self.group_by_length, self.num_workers, self.seed = group_by_length, num_workers, seed
        self.detector = ErrorDetector(error_substrings, error_regexes) if mae else None
        self.cache_dir, self.train_target = cache_dir, train_target
        self.records: dict[str, list[tuple[DataFile, datasets.Dataset]]] = {}
        self.features: dict[str, datasets.Dataset] = {}
        self.mae_counts: Counter[tuple[str, str]] = Counter()

    def setup(self, stage: str | None = None) -> None:
        splits = {"fit": ("train", "val"), "validate": ("val",), "test": ("test",), "predict": ("test",)}
        for split in splits.get(stage, ("train", "val", "test")) if stage else ("train", "val", "test"):
            if split not in self.features and self.files[split]:
                self.records[split], self.features[split] = self.prepare_split(split)
                if split == "train":
                    self.log_mae()

    def prepare_split(self, split: str) -> tuple[list[tuple[DataFile, datasets.Dataset]], datasets.Dataset]:
        per_file = [(f, read_records(f, self.cache_dir)) for f in self.files[split]]
        records = datasets.concatenate_datasets([dataset for _, dataset in per_file])
        settings = (self.tokenizer_path, len(self.tokenizer), self.tokenizer.eos_token, self.format, self.max_length,
                    None if self.detector is None else (self.detector.substrings, [r for r, _ in self.detector.regexes]))
        fingerprint = hashlib.sha256(f"{records._fingerprint}{settings}{code_stamp()}".encode()).hexdigest()[:32]
        tokenizer, format, max_length, detector = self.tokenizer, self.format, self.max_length, self.detector

        def featurize(row: dict[str, Any]) -> dict[str, Any]:
            trajectory = Trajectory.from_json(row["record"])
            return encode(trajectory, tokenizer, format, max_length, detector)

        features = records.map(featurize, new_fingerprint=fingerprint, desc=f"tokenising {split}")
        if split == "train":
            for source, masked in zip(features["source"], features["masked"]):
                self.mae_counts.update((source, reason) for reason in masked)
        rank_zero_info(
            f"tlkit data [{split}]: {len(features)} trajectories, {sum(features['n_turns'])} trained turns, "
            f"{sum(len(m) for m in features['masked'])} masked by MAE, {sum(features['truncated'])} cut at {max_length} tokens"
        )
        if split == "train":  # a trajectory whose every turn MAE masked has nothing left to train on
            features = features.filter(lambda n: n > 0, input_columns="n_turns", new_fingerprint=f"{fingerprint}-trained")
        return per_file, features

    def log_mae(self) -> None:
        """Masked-turn counts per source file and reason, to the console and the logger."""
        if not self.mae_counts:
            return
        lines = [f"  {n:5d}  {Path(source).name}: {reason}" for (source, reason), n in sorted(self.mae_counts.items())]
        rank_zero_info("MAE masked these training turns (count, file: reason):\n" + "\n".join(lines))
        logger = self.trainer.logger if self.trainer is not None else None
        if logger is not None:
            per_file = Counter()
            for (source, _), n in self.mae_counts.items():
                per_file[f"data/mae_masked_turns/{Path(source).stem}"] += n
            per_file["data/mae_masked_turns/total"] = sum(self.mae_counts.values())
            logger.log_metrics(dict(per_file), step=0)

    def collate(self, rows: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        width = max(len(row["input_ids"]) for row in rows)
        pads = {"input_ids": self.tokenizer.pad_token_id, "turn_ids": -1, "key_mask": False, "argument_end_mask": False}
        batch = {key: torch.tensor([row[key] + [pad] * (width - len(row[key])) for row in rows]) for key, pad in pads.items()}
        batch["attention_mask"] = torch.tensor([[1] * len(row["input_ids"]) + [0] * (width - len(row["input_ids"])) for row in rows])
        return batch

    def loader(self, split: str, shuffle: bool) -> DataLoader:
        if split not in self.features:
            raise RuntimeError(f"no {split} data: list files under data.{split} in the config")
        dataset = self.features[split].select_columns(list(FEATURES))
        sampler = None
        if shuffle and self.group_by_length:
            trainer = self.trainer  # under DDP each process takes its own whole batches
            sampler = LengthGroupedSampler(self.features[split]["length"], self.batch_size, seed=self.seed,
                                           num_replicas=trainer.world_size if trainer else 1, rank=trainer.global_rank if trainer else 0)
        return DataLoader(
            dataset, batch_size=self.batch_size, shuffle=shuffle and sampler is None, sampler=sampler,
            collate_fn=self.collate, num_workers=self.num_workers, persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        if self.train_target == "prompts":
            return DataLoader(self.train_prompts(), batch_size=self.batch_size, shuffle=True,
                              collate_fn=lambda b: self.prompt_collate("train", b))
        return self.loader("train", shuffle=True)

    def train_prompts(self) -> list[EvalExample]:
        """Every training turn that calls tools (and that MAE keeps), as a prompt with its gold calls."""
        if "train" not in self.records:
            self.setup("fit")
        examples = []
        for _, dataset in self.records.get("train", []):
            for row in dataset:
                trajectory = Trajectory.from_json(row["record"])
                masked = masked_turns(trajectory, self.detector) if self.detector is not None else {}
                for i, message in enumerate(trajectory.messages):
                    if message.role == "assistant" and message.tool_calls and i not in masked:
                        prompt = render_prompt(trajectory, i, self.format, self.tokenizer)
                        examples.append(EvalExample(trajectory.id, row["source"], prompt, message.tool_calls, trajectory.tools, trajectory.meta))
        return examples

    def prompt_collate(self, name: str, examples: list[EvalExample]) -> PromptBatch:
        ids = [self.tokenizer(e.prompt, add_special_tokens=True)["input_ids"][-self.max_length :] for e in examples]
        width = max(len(i) for i in ids)
        pad = self.tokenizer.pad_token_id
        input_ids = torch.tensor([[pad] * (width - len(i)) + i for i in ids])  # left padding: generation appends
        attention_mask = torch.tensor([[0] * (width - len(i)) + [1] * len(i) for i in ids])
        return PromptBatch(name, CALL_FORMATS[self.format], examples, input_ids, attention_mask)

    def prompt_loaders(self, split: str) -> list[DataLoader]:
        """One loader of prompts per eval set, for generation-based evaluation."""
        return [
            DataLoader(examples, batch_size=self.batch_size, shuffle=False, collate_fn=lambda b, n=name: self.prompt_collate(n, b))
            for name, examples in self.eval_examples(split).items()
        ]

    def val_dataloader(self) -> list[DataLoader]:
        """The loss batches of every val file, then one prompt loader per val file."""
        return [self.loader("val", shuffle=False), *self.prompt_loaders("val")]

    def test_dataloader(self) -> list[DataLoader]:
        return [self.loader("test", shuffle=False), *self.prompt_loaders("test")]

    def predict_dataloader(self) -> list[DataLoader]:
        """The test sets' prompts: `tlkit predict` writes every answer to `<run>/predictions/`."""
        return self.prompt_loaders("test")

    def masked_turn_counts(self) -> dict[tuple[str, str], int]:
        """How many training turns MAE masked, by (source file, reason)."""
        return dict(self.mae_counts)

    def eval_examples(self, split: str) -> dict[str, list[EvalExample]]:
        """Per eval set (file), every record as a prompt ending where the model must answer, plus its gold call."""
        if split not in self.records:
            self.setup({"train": "fit", "val": "validate", "test": "test"}[split])
        sets: dict[str, list[EvalExample]] = {}
        for file, dataset in self.records.get(split, []):
            name = file.name if file.name not in sets else f"{file.name}#{len(sets)}"
            sets[name] = [self.eval_example(Trajectory.from_json(row["record"]), row["source"]) for row in dataset]
        return sets

    def eval_example(self, trajectory: Trajectory, source: str) -> EvalExample:
        index = target_message_index(trajectory)
        if index is None:  # e.g. BFCL irrelevance: a fresh turn after the conversation, where no call is right
            trajectory = Trajectory(trajectory.id, trajectory.tools, (*trajectory.messages, Message("assistant")), trajectory.meta)
            index = len(trajectory.messages) - 1
        prompt = render_prompt(trajectory, index, self.format, self.tokenizer)
        return EvalExample(trajectory.id, source, prompt, trajectory.messages[index].tool_calls, trajectory.tools, trajectory.meta)

