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

from tlkit.data.batching import EvalExample, LengthGroupedSampler, PromptBatch, ResumableLoader
from tlkit.data.chat_template import paper_chat_template
from tlkit.data.features import encode, fit_prompt
from tlkit.data.loading import DataFile, code_stamp, read_records
from tlkit.data.render import PromptFormat
from tlkit.mae import ErrorDetector, mark_untrained
from tlkit.models import load_tokenizer
from tlkit.records import Message, Trajectory, target_message_index

FEATURES = ("input_ids", "turn_ids", "key_mask", "argument_end_mask")
# How answers are parsed in each prompt format (chat templates write their own syntaxes: detect each).
CALL_FORMATS = {"paper": "python", "json": "json", "chat_template": "auto"}
# What was done to a trajectory or prompt longer than `max_length` tokens.
OVER_LENGTH = {
    "cut": "cut at the limit: the turns past it are not trained",
    "unfit": "no trained turn within the limit: left out of the loss batches",
    "shortened": "oldest exchanges left out to fit (system prompt and tools kept)",
    "overlong_kept": "too long even with only the last exchange: kept whole, the model reads it all",
    "overlong_dropped": "too long even with only the last exchange: left out of training",
}


def trajectory_of(row: dict[str, Any], detector: ErrorDetector | None) -> Trajectory:
    """A training row's trajectory, with MAE's marks when MAE is on: what both the tokeniser and the PPO
    prompts read (an untrained turn gets no loss and gives no prompt)."""
    trajectory = Trajectory.from_json(row["record"])
    return trajectory if detector is None else mark_untrained(trajectory, detector)


class ToolCallDataModule(L.LightningDataModule):
    """Tool-call trajectories for SFT (token ids and PKT masks) and for generation (prompts + gold).

    Args:
        tokenizer: The model source whose tokenizer to use: a Hugging Face folder, a GGUF file or
            a bundled short name. Linked from the model's source by the CLI, so it is written once.
        train: Training files, each `{path, format}`.
        val: Validation files.
        test: Test files.
        prompt_format: How a trajectory is shown to the model: `paper` (Python calls, the paper's roles;
            the tokenizer, and so the export, gets it as its chat template), `json`, or `chat_template`
            (the tokenizer's own, with `tools=`).
        max_length: Token limit per trajectory and prompt. A trajectory is cut at it (turns past it
            are not trained); a prompt leaves out its oldest exchanges, never the system prompt or the
            tools. Both are counted per file.
        batch_size: Trajectories per batch (per process).
        eval_batch_size: Prompts per batch in generation-based evaluation (fewer decoding loops than
            `batch_size` where memory allows); None for `batch_size`.
        group_by_length: Batch trajectories of similar length together; False shuffles plainly.
        num_workers: DataLoader worker processes.
        mae: Mask assistant calls whose tool feedback shows an error (MAE); False trains on them.
        error_substrings: MAE substrings (case- and punctuation-insensitive); None for the defaults.
        error_regexes: MAE regular expressions; None for the defaults.
        normalize_types: Turn call argument values written as text into the type their schema
            declares where nothing is lost (`'63'` -> 63 for an integer), in training data and
            eval gold alike (never BFCL's allowed values); counted per file. False keeps values as written.
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
        prompt_format: PromptFormat = "paper",
        max_length: int = 1024,
        batch_size: int = 8,
        eval_batch_size: int | None = None,
        group_by_length: bool = True,
        num_workers: int = 0,
        mae: bool = True,
        error_substrings: list[str] | None = None,
        error_regexes: list[str] | None = None,
        normalize_types: bool = True,
        cache_dir: str | None = None,
        seed: int = 0,
        train_target: Literal["trajectories", "prompts"] = "trajectories",
    ):
        super().__init__()
        self.tokenizer_path = tokenizer
        self.tokenizer = load_tokenizer(tokenizer)
        # the module's tokenizer, saved by the export: served, it builds the prompts trained on
        if prompt_format == "paper":
            self.tokenizer.chat_template = paper_chat_template(self.tokenizer)
        self.files = {"train": train or [], "val": val or [], "test": test or []}
        self.prompt_format, self.max_length, self.batch_size = prompt_format, max_length, batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.group_by_length, self.num_workers, self.seed = group_by_length, num_workers, seed
        self.detector = ErrorDetector(error_substrings, error_regexes) if mae else None
        self.cache_dir, self.train_target, self.normalize_types = cache_dir, train_target, normalize_types
        self.records: dict[str, list[tuple[DataFile, datasets.Dataset]]] = {}
        self.features: dict[str, datasets.Dataset] = {}
        self.mae_counts: Counter[tuple[str, str]] = Counter()
        self.type_counts: dict[str, Counter[str]] = {}  # source file -> outcome of type normalisation -> count
        # per (split, "trajectories" | "prompts"): how many of each file were over max_length, by OVER_LENGTH key
        self.over_length: dict[tuple[str, str], Counter[tuple[str, str]]] = {}

    def setup(self, stage: str | None = None) -> None:
        splits = {"fit": ("train", "val"), "validate": ("val",), "test": ("test",), "predict": ("test",)}
        for split in splits.get(stage, ("train", "val", "test")) if stage else ("train", "val", "test"):
            if split not in self.features and self.files[split]:
                self.records[split], self.features[split] = self.prepare_split(split)
                self.log_types(split)
                self.log_over_length(split, "trajectories")
                if split == "train":
                    self.log_mae()

    def prepare_split(self, split: str) -> tuple[list[tuple[DataFile, datasets.Dataset]], datasets.Dataset]:
        per_file = [(f, read_records(f, self.cache_dir, self.normalize_types)) for f in self.files[split]]
        for file, dataset in per_file:
            self.type_counts[file.path] = Counter(outcome for outcomes in dataset["types"] for outcome in outcomes)
        records = datasets.concatenate_datasets([dataset for _, dataset in per_file])
        settings = (self.tokenizer_path, len(self.tokenizer), self.tokenizer.eos_token, self.prompt_format,
                    self.max_length, None if self.detector is None
                    else (self.detector.substrings, [r for r, _ in self.detector.regexes]))
        fingerprint = hashlib.sha256(f"{records._fingerprint}{settings}{code_stamp()}".encode()).hexdigest()[:32]
        tokenizer, prompt_format, max_length, detector = (self.tokenizer, self.prompt_format, self.max_length,
                                                          self.detector)

        def featurize(row: dict[str, Any]) -> dict[str, Any]:
            given = Trajectory.from_json(row["record"])
            marked = given if detector is None else mark_untrained(given, detector)
            features = encode(marked, tokenizer, prompt_format, max_length)
            # MAE's reasons alone: turns the record itself marks untrained are counted apart
            features["masked"] = sorted(m.untrained for g, m in zip(given.messages, marked.messages)
                                        if g.untrained is None and m.untrained is not None)
            features["marked_in_data"] = sum(g.untrained is not None for g in given.messages)
            return features

        features = records.map(featurize, new_fingerprint=fingerprint, desc=f"tokenising {split}")
        if split == "train":
            for source, masked in zip(features["source"], features["masked"]):
                self.mae_counts.update((source, reason) for reason in masked)
        columns = (features[c] for c in ("source", "truncated", "n_turns", "cut_turns"))
        self.over_length[(split, "trajectories")] = Counter(
            (source, "unfit" if cut == n else "cut") for source, truncated, n, cut in zip(*columns) if truncated)
        cut_turns = sum(features["cut_turns"])
        trained = sum(features["n_turns"]) - cut_turns
        by_hand = sum(features["marked_in_data"])
        rank_zero_info(
            f"tlkit data [{split}]: {len(features)} trajectories, {trained} trained turns, "
            f"{sum(len(m) for m in features['masked'])} masked by MAE, "
            + (f"{by_hand} marked untrained in the data, " if by_hand else "") +
            f"{sum(features['truncated'])} cut at {max_length} tokens"
            f" ({cut_turns} turns past it)"
        )
        # MAE masked every turn, or none fits within max_length: no loss to train on or measure (prompts stay)
        features = features.filter(lambda n, cut: n > cut, input_columns=["n_turns", "cut_turns"],
                                   new_fingerprint=f"{fingerprint}-trained")
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

    def log_types(self, split: str) -> None:
        """Argument values converted to their declared type, or kept as written, per file of `split`."""
        counts = {f.path: self.type_counts[f.path] for f in self.files[split] if self.type_counts.get(f.path)}
        if not counts:
            return
        lines = [f"  {n:5d}  {Path(path).name}: {outcome}"
                 for path, c in counts.items() for outcome, n in sorted(c.items())]
        rank_zero_info(f"Argument values normalised to their declared type [{split}] (count, file: outcome):\n"
                       + "\n".join(lines))
        logger = self.trainer.logger if self.trainer is not None else None
        if logger is not None:
            metrics = {}
            for path, c in counts.items():
                for verdict in ("converted", "kept"):
                    name = f"data/types_{verdict}/{Path(path).stem}"
                    metrics[name] = sum(n for outcome, n in c.items() if outcome.endswith(verdict))
            logger.log_metrics(metrics, step=0)

    def log_over_length(self, split: str, kind: str) -> None:
        """Trajectories or prompts of each file over max_length, and what was done: to the console and the logger."""
        counts = self.over_length.get((split, kind))
        if not counts:
            return
        lines = [f"  {n:5d}  {Path(source).name}: {OVER_LENGTH[what]}" for (source, what), n in sorted(counts.items())]
        title = f"{kind} [{split}] over max_length {self.max_length} tokens (count, file: what was done):"
        rank_zero_info("\n".join([title, *lines]))
        logger = self.trainer.logger if self.trainer is not None else None
        if logger is not None:
            metrics = {f"data/{what}_{kind}/{split}/{Path(source).stem}": n for (source, what), n in counts.items()}
            logger.log_metrics(metrics, step=0)

    def collate(self, rows: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        width = max(len(row["input_ids"]) for row in rows)
        pads = {"input_ids": self.tokenizer.pad_token_id, "turn_ids": -1, "key_mask": False, "argument_end_mask": False}
        batch = {key: torch.tensor([row[key] + [pad] * (width - len(row[key])) for row in rows])
                 for key, pad in pads.items()}
        batch["attention_mask"] = torch.tensor([[1] * len(row["input_ids"]) + [0] * (width - len(row["input_ids"]))
                                                for row in rows])
        return batch

    def loader(self, split: str) -> DataLoader:
        """The token batches of a split (for evaluation), longest first: similar lengths share a batch,
        so little is padding (22% fewer padded tokens than file order on the ablation's test sets), and a
        batch too large for memory fails at once."""
        features = self.split_features(split)  # says which split has no data
        lengths = self.features[split]["length"]
        order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
        return DataLoader(features.select(order), batch_size=self.batch_size, collate_fn=self.collate,
                          num_workers=self.num_workers, persistent_workers=self.num_workers > 0)

    def split_features(self, split: str) -> datasets.Dataset:
        if split not in self.features:
            raise RuntimeError(f"no {split} data: list files under data.{split} in the config")
        return self.features[split].select_columns(list(FEATURES))

    def train_dataloader(self) -> DataLoader:
        """Shuffled batches, in an order fixed by seed and epoch, so a checkpoint can restart mid-epoch."""
        if self.train_target == "prompts":
            examples = self.train_prompts()
            lengths = [len(e.prompt) for e in examples]  # characters: close enough to group by
            return self.resumable_loader(examples, lengths, lambda b: self.prompt_collate("train", b))
        return self.resumable_loader(self.split_features("train"), self.features["train"]["length"], self.collate)

    def resumable_loader(self, dataset: Any, lengths: list[int], collate: Any) -> ResumableLoader:
        trainer = self.trainer  # under DDP each process takes its own whole batches
        replicas, rank = (trainer.world_size, trainer.global_rank) if trainer else (1, 0)
        # Without grouping, each batch is a run of random indices (group 1); else similar lengths share a batch.
        sampler = LengthGroupedSampler(lengths, self.batch_size, group=64 if self.group_by_length else 1,
                                       seed=self.seed, num_replicas=replicas, rank=rank)
        return ResumableLoader(dataset, batch_size=self.batch_size, sampler=sampler, collate_fn=collate,
                               num_workers=self.num_workers, persistent_workers=self.num_workers > 0)

    def train_prompts(self) -> list[EvalExample]:
        """Every training turn that calls tools (and that MAE keeps), as a prompt with its gold calls."""
        if "train" not in self.records:
            self.setup("fit")
        examples, counts = [], Counter()
        for file, dataset in self.records.get("train", []):
            for row in dataset:
                trajectory = trajectory_of(row, self.detector)
                for i, message in enumerate(trajectory.messages):
                    if message.role == "assistant" and message.tool_calls and message.untrained is None:
                        examples.append(self.prompt_example(trajectory, i, row["source"], counts, keep_overlong=False,
                                                            format=file.format))
        self.over_length[("train", "prompts")] = counts
        self.log_over_length("train", "prompts")
        return [e for e in examples if e is not None]

    def prompt_example(
        self, trajectory: Trajectory, index: int, source: str, counts: Counter, keep_overlong: bool,
        format: str = "tlkit", position: int = 0,
    ) -> EvalExample | None:
        """The prompt for turn `index` within max_length (oldest exchanges left out), counted in `counts`.

        A prompt still too long is kept whole for evaluation (every example of a benchmark is scored) and
        left out of training.
        """
        prompt, left_out, fits = fit_prompt(trajectory, index, self.prompt_format, self.tokenizer, self.max_length)
        if not fits:
            counts[(source, "overlong_kept" if keep_overlong else "overlong_dropped")] += 1
            if not keep_overlong:
                return None
        elif left_out:
            counts[(source, "shortened")] += 1
        message = trajectory.messages[index]
        return EvalExample(trajectory.id, source, prompt, message.tool_calls, trajectory.tools, trajectory.meta,
                           format, position)

    def prompt_collate(self, name: str, examples: list[EvalExample]) -> PromptBatch:
        ids = [self.tokenizer(e.prompt, add_special_tokens=True)["input_ids"] for e in examples]  # fitted when built
        width = max(len(i) for i in ids)
        pad = self.tokenizer.pad_token_id
        input_ids = torch.tensor([[pad] * (width - len(i)) + i for i in ids])  # left padding: generation appends
        attention_mask = torch.tensor([[0] * (width - len(i)) + [1] * len(i) for i in ids])
        return PromptBatch(name, CALL_FORMATS[self.prompt_format], examples, input_ids, attention_mask)

    def prompt_loaders(self, split: str) -> list[DataLoader]:
        """One loader of prompts per eval set, for generation-based evaluation."""
        return [
            DataLoader(examples, batch_size=self.eval_batch_size, shuffle=False,
                       collate_fn=lambda b, n=name: self.prompt_collate(n, b))
            for name, examples in self.eval_examples(split).items()
        ]

    def val_dataloader(self) -> list[DataLoader]:
        """The loss batches of every val file, then one prompt loader per val file."""
        return [self.loader("val"), *self.prompt_loaders("val")]

    def test_dataloader(self) -> list[DataLoader]:
        return [self.loader("test"), *self.prompt_loaders("test")]

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
        counts = Counter()
        for file, dataset in self.records.get(split, []):
            name = file.name if file.name not in sets else f"{file.name}#{len(sets)}"
            sets[name] = [self.eval_example(Trajectory.from_json(row["record"]), row["source"], counts, file.format, i)
                          for i, row in enumerate(dataset)]
        self.over_length[(split, "prompts")] = counts
        self.log_over_length(split, "prompts")
        return sets

    def eval_example(self, trajectory: Trajectory, source: str, counts: Counter, format: str = "tlkit",
                     position: int = 0) -> EvalExample:
        """The record as a prompt up to its target turn; `format` is its reader, `position` its place in the set."""
        index = target_message_index(trajectory)
        if index is None:  # e.g. BFCL irrelevance: a fresh turn after the conversation, where no call is right
            trajectory = Trajectory(trajectory.id, trajectory.tools, (*trajectory.messages, Message("assistant")),
                                    trajectory.meta)
            index = len(trajectory.messages) - 1
        return self.prompt_example(trajectory, index, source, counts, keep_overlong=True, format=format,
                                   position=position)

