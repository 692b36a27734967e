"""The one rule for an answer turn (`tlkit.scoring.rules.judge`): real Seal-Tools turns with three calls,
hand-made cases."""

from pathlib import Path

import pytest

from tlkit.calls import render_calls
from tlkit.data.readers import read_trajectories
from tlkit.irm import Category, ErrorCategoryReward
from tlkit.records import Tool, ToolCall, gold_calls
from tlkit.scoring.rules import Verdict, best_worst_category, call_levels, judge

SEAL = Path(__file__).resolve().parents[1] / "fixtures" / "seal_tools" / "dev_multi.jsonl"
C = Category


@pytest.fixture(scope="module")
def turn():
    """dev-difficult-200: three gold calls of three offered tools."""
    record = next(read_trajectories(str(SEAL), "seal_tools"))
    return gold_calls(record), record.tools


def judged(calls, gold, tools, call_format="json") -> tuple[Verdict, float]:
    text = render_calls(tuple(calls), call_format)[0]
    verdict = judge(text, gold, tools, {}, "seal_tools", call_format)
    category = judge(text, gold, tools, {}, "seal_tools", call_format).category
    reward = ErrorCategoryReward()(category)
    assert category == verdict.category  # the reward and the metrics read the same verdict
    return verdict, reward


def test_one_of_three_calls_earns_neither_reward_nor_cf(turn):
    gold, tools = turn
    assert len(gold) == 3
    verdict, reward = judged(gold[:1], gold, tools)
    assert verdict == Verdict(C.MISSING_OR_EXTRA_CALL, False, False, False) and reward == -1.5
    verdict, reward = judged([*gold, gold[0]], gold, tools)  # an extra call
    assert verdict == Verdict(C.MISSING_OR_EXTRA_CALL, False, False, False) and reward == -1.5


def test_calls_match_in_any_order(turn):
    gold, tools = turn
    for calls in (gold, gold[::-1], (gold[1], gold[2], gold[0])):
        assert judged(calls, gold, tools) == (Verdict(C.CORRECT, True, True, True), 1.0)


def test_the_worst_call_decides(turn):
    gold, tools = turn
    first, second, third = gold
    content = ToolCall(second.name, {**second.arguments, "crop_name": "Potatoes"})
    assert judged([third, content, first], gold, tools) == (Verdict(C.CONTENT_ERROR, True, True, False), -0.25)
    missing = ToolCall(first.name, {"crop_name": "Tomatoes"})  # soil_type left out
    assert judged([missing, content, third], gold, tools) == (
        Verdict(C.REDUNDANT_OR_MISSING, True, False, False),
        -0.5,
    )
    other = ToolCall(first.name, dict(third.arguments))  # an offered tool where getAvailableResources is due
    assert judged([first, second, other], gold, tools)[0] == Verdict(C.WRONG_TOOL, False, False, False)
    unknown = ToolCall("getWeather", {})
    assert judged([first, second, unknown], gold, tools)[0].category == C.TOOL_HALLUCINATION
    assert judged([unknown], gold, tools)[0].category == C.TOOL_HALLUCINATION  # not offered beats the count


def test_best_matching_not_greedy():
    # Greedy in gold order would give gold 0 prediction 0 and leave gold 1 the content error.
    assert best_worst_category([[C.CORRECT, C.CORRECT], [C.CORRECT, C.CONTENT_ERROR]]) == C.CORRECT
    assert best_worst_category([[C.WRONG_TOOL, C.CONTENT_ERROR], [C.CONTENT_ERROR, C.WRONG_TOOL]]) == C.CONTENT_ERROR


TOOLS = (
    Tool("search", "", {"type": "object", "properties": {"query": {"type": "string"}, "limit": {"type": "integer"}}}),
    Tool("finish", "", {"type": "object", "properties": {"answer": {"type": "string"}}}),
)
GOLD = ToolCall("search", {"query": "tool learning", "limit": 1})


@pytest.mark.parametrize(
    "text, verdict",
    [
        ("search(query='tool learning', limit=1)", Verdict(C.CORRECT, True, True, True)),
        ("I search first.\nsearch(query='tool learning', limit=1.0)", Verdict(C.CORRECT, True, True, True)),
        ("search(query='tool learning', limit=1)\nfinish(answer='x')", Verdict(C.MISSING_OR_EXTRA_CALL, *[False] * 3)),
        ("I do not know.", Verdict(C.FORMAT_ERROR, False, False, False)),
        ("", Verdict(C.FORMAT_ERROR, False, False, False)),
    ],
)
def test_one_gold_call(text, verdict):
    assert judge(text, (GOLD,), TOOLS, {}) == verdict


@pytest.mark.parametrize(
    "text, verdict",
    [
        ("Nothing here fits.", Verdict(C.CORRECT, True, True, True)),
        ("", Verdict(C.CORRECT, True, True, True)),
        ("finish(answer='x')", Verdict(C.MISSING_OR_EXTRA_CALL, False, False, False)),
        ("lookup(q='x')", Verdict(C.TOOL_HALLUCINATION, False, False, False)),
    ],
)
def test_no_gold_call_wants_no_call(text, verdict):
    assert judge(text, (), TOOLS, {}) == verdict


def test_call_levels_and_strict():
    assert call_levels(ToolCall("lookup", GOLD.arguments), GOLD) == (False, False, False)
    assert call_levels(ToolCall("search", {"query": "tool learning"}), GOLD) == (True, False, False)
    assert call_levels(ToolCall("search", {"query": "learning", "limit": 1}), GOLD) == (True, True, False)
    assert call_levels(ToolCall("search", {"limit": 1.0, "query": "tool learning"}), GOLD) == (True, True, True)
    assert call_levels(ToolCall("search", {"limit": 1.0, "query": "tool learning"}), GOLD, strict=True) == (
        True,
        True,
        False,
    )
    text = "search(query='tool learning', limit=1.0)"
    assert judge(text, (GOLD,), TOOLS, {}, strict=True) == Verdict(C.CONTENT_ERROR, True, True, False)
