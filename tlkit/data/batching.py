"""What batches are made of: prompts with their gold answers, and length-grouped sampling."""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch.utils.data import DataLoader, DistributedSampler

from tlkit.records import Tool, ToolCall


class EvalExample(NamedTuple):
    """A prompt ending where the model must call a tool, with the gold answer to judge it by."""

    id: str
    source: str
    prompt: str
    gold: tuple[ToolCall, ...]  # the target turn's calls (empty where no call is right)
    tools: tuple[Tool, ...]
    meta: dict[str, Any]
    format: str = "tlkit"  # the reader the gold came from: it picks the scoring rule (`tlkit.scoring.rules.judge`)
    index: int = 0  # position in its eval set: the records DDP repeats to pad batches count once


class PromptBatch:
    """Prompts of one eval set, left-padded for batched generation, with their examples.

    A plain object (not a collection) so Lightning moves only its tensors to the device.
    """

    def __init__(self, name: str, call_format: str, examples: list[EvalExample], input_ids: torch.Tensor,
                 attention_mask: torch.Tensor):
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

    def __init__(self, lengths: list[int], batch_size: int, group: int = 64, seed: int = 0, num_replicas: int = 1,
                 rank: int = 0):
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank {rank} is not one of {num_replicas} processes")
        self.lengths, self.batch_size, self.group, self.seed = lengths, batch_size, group, seed
        self.num_replicas, self.rank, self.epoch = num_replicas, rank, 0
        self.skip = 0  # batches of this epoch already trained on before a restart

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
        # The whole epoch, also after a restart: Lightning counts the skipped batches as already fetched.
        return sum(len(b) for b in self.batches()[self.rank :: self.num_replicas])

    def __iter__(self):
        skip, self.skip = self.skip, 0  # only the pass that resumes the epoch skips
        for batch in self.batches()[self.rank :: self.num_replicas][skip:]:
            yield from batch

    def resume(self, epoch: int, taken: int) -> None:
        """Continue after `taken` batches of `epoch` (the order is a function of seed and epoch: skipping is exact)."""
        finished = taken >= len(self.batches()[self.rank :: self.num_replicas])
        self.epoch, self.skip = (epoch + 1, 0) if finished else (epoch, taken)


class ResumableLoader(DataLoader):
    """A DataLoader over a `LengthGroupedSampler` that a checkpoint can restart mid-epoch.

    Lightning stores `state_dict()` in each checkpoint and hands it to `load_state_dict` on resume,
    before the first batch: the sampler then skips the batches trained on already. Batches are
    counted here, as they are handed out, not in the sampler, which workers read ahead of training.
    """

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.epoch, self.taken = 0, 0  # where training stands: batches of `epoch` handed out so far

    def __iter__(self):
        taken = self.sampler.skip
        for batch in super().__iter__():
            taken += 1
            self.epoch, self.taken = self.sampler.epoch, taken
            yield batch

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "taken": self.taken}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.epoch, self.taken = state["epoch"], state["taken"]
        self.sampler.resume(self.epoch, self.taken)
