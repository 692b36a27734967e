"""TS / PI / CF (RoTBench's three levels) and error-category rates, as torchmetrics `Metric`s.

States are summed counts (`dist_reduce_fx="sum"`), so the metrics sync across processes.
Per-example logic lives in `tool_call_levels`, a pure function.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torchmetrics import Metric

from tlkit.classify import Category, values_match
from tlkit.data.records import ToolCall


def tool_call_levels(
    predicted: Sequence[ToolCall] | None, gold: ToolCall, strict: bool = False
) -> tuple[bool, bool, bool]:
    """(TS, PI, CF) of a prediction's first call: same name; and same argument names; and every value matches."""
    if not predicted:
        return False, False, False
    call = predicted[0]
    ts = call.name == gold.name
    pi = ts and call.arguments.keys() == gold.arguments.keys()
    cf = pi and all(values_match(call.arguments[name], value, strict) for name, value in gold.arguments.items())
    return ts, pi, cf


class _CallLevelAccuracy(Metric):
    """Share of predictions that pass one level of `tool_call_levels` (0: TS, 1: PI, 2: CF)."""

    level: int
    strict = False
    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.add_state("passed", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("total", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, predicted: Sequence[Sequence[ToolCall] | None], gold: Sequence[ToolCall]) -> None:
        if len(predicted) != len(gold):
            raise ValueError(f"{type(self).__name__}.update: {len(predicted)} predictions for {len(gold)} gold calls")
        self.passed += sum(tool_call_levels(p, g, self.strict)[self.level] for p, g in zip(predicted, gold))
        self.total += len(gold)

    def compute(self) -> torch.Tensor:
        return self.passed.float() / self.total.clamp(min=1)  # 0.0 before any update, not NaN


class ToolSelectionAccuracy(_CallLevelAccuracy):
    """TS: the called name equals the gold name."""

    level = 0


class ParameterIdentificationAccuracy(_CallLevelAccuracy):
    """PI: TS, and the set of argument names equals the gold set."""

    level = 1


class ContentFillingAccuracy(_CallLevelAccuracy):
    """CF: PI, and every argument value matches (`values_match`).

    Args:
        strict: Compare values type-exactly (1 != 1.0).
    """

    level = 2

    def __init__(self, strict: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.strict = strict


class ErrorCategoryRate(Metric):
    """Share of each error category; `compute()` -> {category value: rate}."""

    is_differentiable = False
    full_state_update = False

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.add_state("counts", default=torch.zeros(len(Category), dtype=torch.long), dist_reduce_fx="sum")

    def update(self, categories: Sequence[Category]) -> None:
        index = {category: i for i, category in enumerate(Category)}
        for category in categories:
            self.counts[index[Category(category)]] += 1

    def compute(self) -> dict[str, torch.Tensor]:
        rates = self.counts.float() / self.counts.sum().clamp(min=1)
        return {category.value: rates[i] for i, category in enumerate(Category)}
