"""TS / PI / CF and error-category rates, as torchmetrics `Metric`s over `Verdict`s (`tlkit.scoring.rules.judge`).

Each update takes the verdicts of a batch and the position of each record in its eval set. States
are the (record, value) pairs, concatenated across processes (`dist_reduce_fx="cat"`), and each
record counts once: under DDP, Lightning's sampler pads the last batches with repeated records so
every process gets as many, and those repeats must not count twice.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

from tlkit.irm import Category
from tlkit.scoring.rules import Verdict

INDEX = {category: i for i, category in enumerate(Category)}


def once_per_record(records: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """The values with each record's repeats dropped; shapes (n,) -> (unique records,)."""
    order = torch.argsort(records, stable=True)
    records, values = records[order], values[order]
    first = torch.ones_like(records, dtype=torch.bool)
    first[1:] = records[1:] != records[:-1]
    return values[first]


class _PerRecord(Metric):
    """One integer per record (`value` of its verdict), kept once per record."""

    is_differentiable = False
    full_state_update = False

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.add_state("records", default=[], dist_reduce_fx="cat")
        self.add_state("values", default=[], dist_reduce_fx="cat")

    def value(self, verdict: Verdict) -> int:
        raise NotImplementedError

    def update(self, verdicts: Sequence[Verdict], records: Sequence[int]) -> None:
        """`records`: each verdict's record, as its position in the eval set (repeats count once)."""
        if len(verdicts) != len(records):
            raise ValueError(f"{type(self).__name__}.update: {len(verdicts)} verdicts for {len(records)} records")
        self.records.append(torch.tensor(list(records), dtype=torch.long, device=self.device))
        self.values.append(torch.tensor([self.value(v) for v in verdicts], dtype=torch.long, device=self.device))

    def once(self) -> torch.Tensor:
        """Each record's value, once (call inside `compute`, after the states are synced)."""
        if isinstance(self.records, list) and not self.records:  # nothing seen (synced, the list is a tensor)
            return torch.zeros(0, dtype=torch.long, device=self.device)
        return once_per_record(dim_zero_cat(self.records), dim_zero_cat(self.values))


class _LevelAccuracy(_PerRecord):
    """Share of records whose verdict passes one level (1: TS, 2: PI, 3: CF)."""

    level: int
    higher_is_better = True

    def value(self, verdict: Verdict) -> int:
        return int(verdict[self.level])

    def compute(self) -> torch.Tensor:
        values = self.once()
        return values.sum().float() / max(len(values), 1)  # 0.0 before any update, not NaN


class ToolSelectionAccuracy(_LevelAccuracy):
    """TS: the turn calls the gold tools (one-to-one, in any order)."""

    level = 1


class ParameterIdentificationAccuracy(_LevelAccuracy):
    """PI: TS, and each call has the gold call's argument names."""

    level = 2


class ContentFillingAccuracy(_LevelAccuracy):
    """CF: PI, and every argument value matches (by the set's rule)."""

    level = 3


class ErrorCategoryRate(_PerRecord):
    """Share of each error category; `compute()` -> {category value: rate}."""

    def value(self, verdict: Verdict) -> int:
        return INDEX[Category(verdict.category)]

    def compute(self) -> dict[str, torch.Tensor]:
        values = self.once()
        rates = torch.bincount(values, minlength=len(Category)).float() / max(len(values), 1)
        return {category.value: rates[i] for i, category in enumerate(Category)}


class RecordCount(_PerRecord):
    """How many records were scored, each once."""

    def value(self, verdict: Verdict) -> int:
        return 0

    def compute(self) -> torch.Tensor:
        return torch.tensor(len(self.once()))
