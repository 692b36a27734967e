"""IRM: the error category of a predicted call against the gold call, and the reward of each category.

Categories (the paper's, as its code assigns them): Rules, first match wins: no parsable call ->
format error; a name not on offer -> tool hallucination; (a turn with more or fewer calls than the
gold: a missing or extra call, see `tlkit/scoring/rules.py`); another offered tool -> wrong tool;
then by argument names (hallucinated / redundant / missing, combinations first); then any gold value
that differs -> content error; else correct. See `classify_call`.

The reward of an answer turn: A turn with several calls is judged by `tlkit.scoring.rules.judge`
(one-to-one matching in any order); its reward is that of its category, the worst pair's under the best
matching, or `missing_or_extra_call`.
Why this and not, say, the mean over calls: in the reference's single-call table only the right
call earns a positive reward (+1) and every error costs what its kind costs. A mean would pay a
turn that makes one of three calls wrong (1 + 1 - 1.5) / 3 > 0; the worst call keeps +1 for turns
that are right in full, prices each error as the table does (a content error in one call of three
costs -0.25, as alone), and keeps rewards in the table's range, which the clip and the KL scale
were set for. A missing or extra call selects the wrong set of tools: the table's tool-level error
for an offered tool (`wrong_tool`, -1.5); a name not on offer stays a hallucination (-2).

A turn is judged (parsed, matched to the gold, categorised) by `tlkit.scoring.rules.judge`; the reward
reads only its category, so this module needs nothing but the records.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import Enum
from typing import Any

from tlkit.records import Tool, ToolCall


class Category(str, Enum):
    """The error categories of design.md, in rule order (first match wins)."""

    FORMAT_ERROR = "format_error"
    TOOL_HALLUCINATION = "tool_hallucination"
    MISSING_OR_EXTRA_CALL = "missing_or_extra_call"
    WRONG_TOOL = "wrong_tool"
    PARAM_HALLUCINATION_REDUNDANT_MISSING = "param_hallucination_redundant_missing"
    PARAM_HALLUCINATION_REDUNDANT_OR_MISSING = "param_hallucination_redundant_or_missing"
    REDUNDANT_MISSING = "redundant_missing"
    PARAM_HALLUCINATION = "param_hallucination"
    REDUNDANT_OR_MISSING = "redundant_or_missing"
    CONTENT_ERROR = "content_error"
    CORRECT = "correct"


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)  # bool is an int in Python, not here


def values_match(a: Any, b: Any, strict: bool = False) -> bool:
    """Structural equality of two argument values.

    Non-strict: numbers by value (1 == 1.0; a bool is not a number), strings equal after stripping
    surrounding whitespace (case and inner spacing count: a model that writes `' ICLR'` meant
    `'ICLR'`, one that writes `'iclr'` may not have), lists and tuples element-wise in order, dicts
    with the same keys key by key. Strict: the same JSON type at every level (1 != 1.0, a tuple
    is not a list) and exact strings.
    """
    if strict and type(a) is not type(b):
        return False
    if _is_number(a) and _is_number(b):
        return a == b
    if isinstance(a, str) and isinstance(b, str):
        return a == b if strict else a.strip() == b.strip()
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(values_match(x, y, strict) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(values_match(a[k], b[k], strict) for k in a)
    if isinstance(a, bool) or a is None:
        return a is b
    return False  # different kinds (a string against a number, ...)


def argument_errors(predicted: ToolCall, gold: ToolCall, tool: Tool) -> tuple[set[str], set[str], set[str]]:
    """(hallucinated, redundant, missing) argument names of a call to the gold tool.

    hallucinated: names the tool does not define; redundant: defined names the gold call does
    not use; missing: gold names the prediction omits. A gold name absent from the tool's schema
    (the dataset's schema is incomplete) counts as defined.
    """
    defined = set(tool.parameter_names) | set(gold.arguments)
    names = set(predicted.arguments)
    return names - defined, (names & defined) - set(gold.arguments), set(gold.arguments) - names


def argument_category(hallucinated: set, redundant: set, missing: set) -> Category | None:
    """The argument-level category, combinations first as the reference checks them; None when the names are right."""
    if hallucinated and redundant and missing:
        return Category.PARAM_HALLUCINATION_REDUNDANT_MISSING
    if hallucinated and (redundant or missing):
        return Category.PARAM_HALLUCINATION_REDUNDANT_OR_MISSING
    if redundant and missing:
        return Category.REDUNDANT_MISSING
    if hallucinated:
        return Category.PARAM_HALLUCINATION
    if redundant or missing:
        return Category.REDUNDANT_OR_MISSING
    return None


def classify_call(
    predicted: Sequence[ToolCall] | None, gold: ToolCall, tools: Sequence[Tool], strict: bool = False
) -> Category:
    """The category of a prediction (`parse_calls` output) against one gold call.

    Only the first call is judged: a turn's calls are matched to its gold calls by
    `tlkit.scoring.rules.judge_calls`, which asks this about each pair. `None`, no call, or an empty
    name are format errors.
    """
    if not predicted or not predicted[0].name:
        return Category.FORMAT_ERROR
    call = predicted[0]
    offered = {tool.name: tool for tool in tools}
    if call.name not in offered:
        return Category.TOOL_HALLUCINATION
    if call.name != gold.name:
        return Category.WRONG_TOOL
    by_names = argument_category(*argument_errors(call, gold, offered[call.name]))
    if by_names is not None:
        return by_names
    if not all(values_match(call.arguments[name], value, strict) for name, value in gold.arguments.items()):
        return Category.CONTENT_ERROR
    return Category.CORRECT


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

    def __repr__(self) -> str:
        values = ", ".join(f"{category.value}={reward}" for category, reward in self.rewards.items())
        return f"{type(self).__name__}({values}, strict={self.strict})"
