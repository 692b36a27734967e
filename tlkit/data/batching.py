"""What batches are made of: prompts with their gold answers, and length-grouped sampling."""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch.utils.data import DistributedSampler

from tlkit.data.records import Tool, ToolCall


class EvalExample(NamedTuple):
    """A prompt ending where the model must call a tool, with the gold answer to judge it by."""

    id: str
    source: str
    prompt: str
    gold: tuple[ToolCall, ...]  # the target turn's calls (empty where no call is right)
    tools: tuple[Tool, ...]
    meta: dict[str, Any]
    format: str = "tlkit"  # the reader the gold came from: it picks the scoring rule (`tlkit.rules.judge`)
    index: int = 0  # position in its eval set: the records DDP repeats to pad batches count once


class PromptBatch:
    """Prompts of one eval set, left-padded for batched generation, with their examples.

    A plain object (not a collection) so Lightning moves only its tensors to the device.
    """

    def __init__(self, name: str, call_format: str, examples: list[EvalExample], input_ids: torch.Tensor, attention_mask: torch.Tensor):
        self.name, self.call_format, self.examples = name, call_format, examples
        self.input_ids, self.attention_mask = input_ids, attention_mask

    def to(self, device: Any) -> PromptBatch:
        self.input_ids, self.attention_mask = self.input_ids.to(device), self.attention_mask.to(device)
        return self

    def __len__(self) -> int:
        return len(self.examples)


class LengthGroupedSampler(DistributedSampler):
    """Shuffled indices in which each run of `batch_size` holds samples of similar length.

    Mega-batches of `batch_size * group` random indices are sorted by length and cut into batches,
    and the batches are shuffled: padding falls, randomness stays. Under DDP each of `num_replicas`
    processes takes whole batches (`rank`, `rank + num_replicas`, ...), all as many: a
    `DistributedSampler`, so Lightning does not wrap it (its wrapper would reshuffle the indices
    and undo the grouping) and calls `set_epoch` every epoch.
    """

    def __init__(self, lengths: list[int], batch_size: int, group: int = 64, seed: int = 0, num_replicas: int = 1, rank: int = 0):
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank {rank} is not one of {num_replicas} processes")
        self.lengths, self.batch_size, self.group, self.seed = lengths, batch_size, group, seed
        self.num_replicas, self.rank, self.epoch = num_replicas, rank, 0

    def batches(self) -> list[list[int]]:
        """This epoch's batches for every process, in order; short batches last."""
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        order = torch.randperm(len(self.lengths), generator=generator).tolist()
        size = self.batch_size * self.group
        batches = []
        for start in range(0, len(order), size):
            chunk = sorted(order[start : start + size], key=lambda i: -self.lengths[i])
            batches += [chunk[i : i + self.batch_size] for i in range(0, len(chunk), self.batch_size)]
        shuffled = [batches[b] for b in torch.randperm(len(batches), generator=generator).tolist()]
        # The DataLoader cuts the index stream into batches again: a short batch in the middle would
        # shift every later cut across two length groups, so short batches go last.
        batches = sorted(shuffled, key=lambda b: len(b) < self.batch_size)
        # Every process takes as many batches (DDP steps in lockstep): repeat batches, cyclically, if needed.
        missing = -len(batches) % self.num_replicas if batches else 0
        return batches + [batches[i % len(batches)] for i in range(missing)]

    def __len__(self) -> int:
        return sum(len(b) for b in self.batches()[self.rank :: self.num_replicas])

    def __iter__(self):
        for batch in self.batches()[self.rank :: self.num_replicas]:
            yield from batch
