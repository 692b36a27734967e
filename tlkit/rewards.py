"""IRM: the scalar reward of a generated tool call, one value per error category (design.md)."""

from __future__ import annotations

from collections.abc import Sequence

from tlkit.calls import ParseFormat, parse_turn
from tlkit.classify import Category, classify_call
from tlkit.data.records import Tool, ToolCall


class ErrorCategoryReward:
    """Maps an error category to a reward; the defaults are the reference's.

    Args:
        format_error: The output does not parse as a call (or names no tool).
        tool_hallucination: The called name is not among the offered tools.
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
        self, text: str, gold: ToolCall, tools: Sequence[Tool], call_format: ParseFormat = "python"
    ) -> tuple[Category, float]:
        """Parse generated `text` as an assistant turn (free text such as a thought may precede the
        calls, as in evaluation), classify its first call against `gold`, and reward it."""
        category = classify_call(parse_turn(text, call_format), gold, tools, self.strict)
        return category, self(category)

    def __repr__(self) -> str:
        values = ", ".join(f"{category.value}={reward}" for category, reward in self.rewards.items())
        return f"{type(self).__name__}({values}, strict={self.strict})"
