"""IRM: the scalar reward of a generated answer turn, one value per error category (design.md).

A turn with several calls is judged by `tlkit.rules.judge` (one-to-one matching in any order); its
reward is that of its category, the worst pair's under the best matching, or `missing_or_extra_call`.
Why this and not, say, the mean over calls: in the reference's single-call table only the right
call earns a positive reward (+1) and every error costs what its kind costs. A mean would pay a
turn that makes one of three calls wrong (1 + 1 - 1.5) / 3 > 0; the worst call keeps +1 for turns
that are right in full, prices each error as the table does (a content error in one call of three
costs -0.25, as alone), and keeps rewards in the table's range, which the clip and the KL scale
were set for. A missing or extra call selects the wrong set of tools: the table's tool-level error
for an offered tool (`wrong_tool`, -1.5); a name not on offer stays a hallucination (-2).
"""

from __future__ import annotations

from collections.abc import Sequence

from tlkit.calls import ParseFormat
from tlkit.classify import Category
from tlkit.data.records import Tool, ToolCall
from tlkit.rules import judge


class ErrorCategoryReward:
    """Maps an error category to a reward; the defaults are the reference's.

    Args:
        format_error: The output does not parse as a call (or names no tool).
        tool_hallucination: The called name is not among the offered tools.
        missing_or_extra_call: More or fewer calls than the gold turn has (a call where none is due).
        wrong_tool: An offered tool, but not the gold one.
        param_hallucination_redundant_missing: Hallucinated, redundant and missing arguments.
        param_hallucination_redundant_or_missing: Hallucinated, and redundant or missing arguments.
        redundant_missing: Redundant and missing arguments.
        param_hallucination: Hallucinated arguments only.
        redundant_or_missing: Redundant or missing arguments only.
        content_error: The right argument names, a value differs.
        correct: The gold call.
        strict: Compare values type-exactly (1 != 1.0) when telling content errors from correct calls.
    """

    def __init__(
        self,
        format_error: float = -2.0,
        tool_hallucination: float = -2.0,
        missing_or_extra_call: float = -1.5,
        wrong_tool: float = -1.5,
        param_hallucination_redundant_missing: float = -1.8,
        param_hallucination_redundant_or_missing: float = -1.3,
        redundant_missing: float = -1.0,
        param_hallucination: float = -0.8,
        redundant_or_missing: float = -0.5,
        content_error: float = -0.25,
        correct: float = 1.0,
        strict: bool = False,
    ):
        values = locals()
        self.rewards = {category: float(values[category.value]) for category in Category}
        self.strict = strict

    def __call__(self, category: Category) -> float:
        return self.rewards[Category(category)]

    def score(
        self,
        text: str,
        gold: Sequence[ToolCall],
        tools: Sequence[Tool],
        call_format: ParseFormat = "python",
        meta: dict | None = None,
        data_format: str = "tlkit",
    ) -> tuple[Category, float]:
        """Judge generated `text` against the gold turn's calls by the rule of `data_format`
        (`tlkit.rules.judge`; a thought may precede the calls, as in evaluation), and reward it."""
        category = judge(text, gold, tools, meta or {}, data_format, call_format, self.strict).category
        return category, self(category)

    def __repr__(self) -> str:
        values = ", ".join(f"{category.value}={reward}" for category, reward in self.rewards.items())
        return f"{type(self).__name__}({values}, strict={self.strict})"
