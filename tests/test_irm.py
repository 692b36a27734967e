"""Error categories and the IRM reward: every category, the paper's worked example, value matching."""

import inspect

import pytest

from tlkit.calls import parse_calls
from tlkit.irm import Category, ErrorCategoryReward, argument_errors, classify_call, values_match
from tlkit.records import Tool, ToolCall
from tlkit.scoring.rules import judge


def judged_reward(text, gold, tools, call_format="python", strict=False):
    """A generated turn's category (the generic rule) and its reward, as PPO computes them."""
    category = judge(text, gold, tools, {}, call_format=call_format, strict=strict).category
    return category, ErrorCategoryReward()(category)


def tool(name: str, *params: str) -> Tool:
    return Tool(
        name, parameters={"type": "object", "properties": {p: {"type": "string"} for p in params}, "required": []}
    )


# The paper's worked example: get_papers_by_keywords(query, venue, limit, ...) among others.
TOOLS = (
    tool("get_papers_by_keywords", "query", "venue", "limit", "year"),
    tool("get_paper_details", "paper_id"),
    tool("finish", "answer"),
)
GOLD = ToolCall("get_papers_by_keywords", {"query": "tool learning", "venue": "ICLR", "limit": 1})


@pytest.mark.parametrize(
    "text, category, reward",
    [
        ("get_papers_by_keys(query='tool learning', venue='ICLR', limit=1)", Category.TOOL_HALLUCINATION, -2.0),  # S1
        (
            "get_papers_by_keywords(keyword='tool learning', venue='ICLR', limit=1)",
            Category.PARAM_HALLUCINATION_REDUNDANT_OR_MISSING,
            -1.3,
        ),  # S2
        ("get_papers_by_keywords(query='learning', venue='ICLR', limit=1)", Category.CONTENT_ERROR, -0.25),  # S3
        ("get_papers_by_keywords(query='tool learning', venue='ICLR', limit=1)", Category.CORRECT, 1.0),  # S4
    ],
)
def test_paper_worked_example(text, category, reward):
    assert judged_reward(text, (GOLD,), TOOLS, "python") == (category, reward)


def test_reward_reads_the_call_after_a_thought_as_evaluation_does():
    text = "I should search for the paper first.\nget_papers_by_keywords(query='tool learning', venue='ICLR', limit=1)"
    assert judged_reward(text, (GOLD,), TOOLS, "python") == (Category.CORRECT, 1.0)
    assert judged_reward("I should search for the paper first.", (GOLD,), TOOLS) == (Category.FORMAT_ERROR, -2.0)


def test_s2_names_both_facts():
    call = parse_calls("get_papers_by_keywords(keyword='tool learning', venue='ICLR', limit=1)")[0]
    assert argument_errors(call, GOLD, TOOLS[0]) == ({"keyword"}, set(), {"query"})


@pytest.mark.parametrize(
    "text, category",
    [
        ("not a call", Category.FORMAT_ERROR),
        ("", Category.FORMAT_ERROR),  # no call at all
        ("(query='x')", Category.FORMAT_ERROR),  # empty name: -2, not the reference's accidental -1.5
        ("search(query='tool learning')", Category.TOOL_HALLUCINATION),
        ("get_paper_details(paper_id='1')", Category.WRONG_TOOL),
        (
            "get_papers_by_keywords(keyword='x', year=2020, venue='ICLR', limit=1)",
            Category.PARAM_HALLUCINATION_REDUNDANT_MISSING,
        ),
        (
            "get_papers_by_keywords(keyword='x', query='tool learning', venue='ICLR')",
            Category.PARAM_HALLUCINATION_REDUNDANT_OR_MISSING,
        ),
        (
            "get_papers_by_keywords(keyword='x', query='tool learning', venue='ICLR', limit=1, year=2020)",
            Category.PARAM_HALLUCINATION_REDUNDANT_OR_MISSING,
        ),
        ("get_papers_by_keywords(query='tool learning', venue='ICLR', year=2020)", Category.REDUNDANT_MISSING),
        (
            "get_papers_by_keywords(query='tool learning', venue='ICLR', limit=1, sort='date')",
            Category.PARAM_HALLUCINATION,
        ),
        ("get_papers_by_keywords(query='tool learning', venue='ICLR')", Category.REDUNDANT_OR_MISSING),
        (
            "get_papers_by_keywords(query='tool learning', venue='ICLR', limit=1, year=2020)",
            Category.REDUNDANT_OR_MISSING,
        ),
        ("get_papers_by_keywords(query='tool learning', venue='ICLR', limit=2)", Category.CONTENT_ERROR),
        ("get_papers_by_keywords(query='tool learning', venue='ICLR', limit='1')", Category.CONTENT_ERROR),
        ("get_papers_by_keywords(limit=1.0, venue=' ICLR ', query='tool learning')", Category.CORRECT),
        (
            "get_papers_by_keywords(query='tool learning', venue='ICLR', limit=1)\nfinish(answer='x')",
            Category.CORRECT,
        ),  # first call judged
        (
            "finish(answer='x')\nget_papers_by_keywords(query='tool learning', venue='ICLR', limit=1)",
            Category.WRONG_TOOL,
        ),
    ],
)
def test_every_category(text, category):
    assert classify_call(parse_calls(text, "python"), GOLD, TOOLS) == category


def test_strict_mode_tells_int_from_float_and_keeps_whitespace():
    assert classify_call([ToolCall(GOLD.name, {**GOLD.arguments, "limit": 1.0})], GOLD, TOOLS) == Category.CORRECT
    assert (
        classify_call([ToolCall(GOLD.name, {**GOLD.arguments, "limit": 1.0})], GOLD, TOOLS, strict=True)
        == Category.CONTENT_ERROR
    )
    assert (
        classify_call([ToolCall(GOLD.name, {**GOLD.arguments, "venue": "ICLR "})], GOLD, TOOLS, strict=True)
        == Category.CONTENT_ERROR
    )


def test_gold_argument_missing_from_schema_counts_as_defined():
    gold = ToolCall("f", {"a": 1, "undocumented": 2})
    assert classify_call([ToolCall("f", {"a": 1, "undocumented": 2})], gold, (tool("f", "a"),)) == Category.CORRECT


def test_json_and_react_predictions():
    assert (
        classify_call(
            parse_calls(
                '{"name": "get_papers_by_keywords", '
                '"arguments": {"query": "tool learning", "venue": "ICLR", "limit": 1}}',
                "json",
            ),
            GOLD,
            TOOLS,
        )
        == Category.CORRECT
    )
    react = 'Thought: search\nAction: get_papers_by_keywords\nAction Input: {"query": "tool learning", "venue": "ICLR"}'
    assert classify_call(parse_calls(react, "react"), GOLD, TOOLS) == Category.REDUNDANT_OR_MISSING


@pytest.mark.parametrize(
    "a, b, loose, strict",
    [
        (1, 1.0, True, False),
        (1, 1, True, True),
        (True, 1, False, False),
        (True, True, True, True),
        (None, None, True, True),
        (None, "None", False, False),
        ("5", 5, False, False),
        (" x ", "x", True, False),
        ("X", "x", False, False),
        ([1, 2], [1.0, 2], True, False),
        ([1, 2], [2, 1], False, False),
        ([1, 2], (1, 2), True, False),
        ([1], [1, 1], False, False),
        ({"a": [1, {"b": "c"}]}, {"a": [1.0, {"b": "c "}]}, True, False),
        ({"a": 1}, {"a": 1, "b": 2}, False, False),
        ({"a": 1}, [("a", 1)], False, False),
    ],
)
def test_values_match(a, b, loose, strict):
    assert values_match(a, b) is loose and values_match(b, a) is loose
    assert values_match(a, b, strict=True) is strict and values_match(b, a, strict=True) is strict


def test_categories_are_exactly_the_design_docs():
    assert [c.value for c in Category] == [
        "format_error",
        "tool_hallucination",
        "missing_or_extra_call",
        "wrong_tool",
        "param_hallucination_redundant_missing",
        "param_hallucination_redundant_or_missing",
        "redundant_missing",
        "param_hallucination",
        "redundant_or_missing",
        "content_error",
        "correct",
    ]


def test_reward_defaults_and_overrides():
    reward = ErrorCategoryReward()
    assert [reward(c) for c in Category] == [-2.0, -2.0, -1.5, -1.5, -1.8, -1.3, -1.0, -0.8, -0.5, -0.25, 1.0]
    assert reward("content_error") == -0.25  # the string value works too (YAML, logs)
    custom = ErrorCategoryReward(correct=2.0, format_error=-3)
    assert (
        custom(Category.CORRECT) == 2.0
        and custom(Category.FORMAT_ERROR) == -3.0
        and custom(Category.WRONG_TOOL) == -1.5
    )


def test_reward_signature_is_a_config_schema():
    """Every category is a typed argument with an `Args:` line, so LightningCLI/jsonargparse can set it."""
    parameters = inspect.signature(ErrorCategoryReward).parameters
    assert [name for name in parameters if name != "strict"] == [c.value for c in Category]
    assert all(p.annotation in (float, "float") for name, p in parameters.items() if name != "strict")
    assert all(f"{name}:" in ErrorCategoryReward.__doc__ for name in parameters)


def test_reward_score_strict():
    text = "get_papers_by_keywords(query='tool learning', venue='ICLR', limit=1.0)"
    assert judged_reward(text, (GOLD,), TOOLS, strict=True) == (Category.CONTENT_ERROR, -0.25)


def test_reward_is_configured_from_yaml():
    jsonargparse = pytest.importorskip("jsonargparse")
    parser = jsonargparse.ArgumentParser()
    parser.add_class_arguments(ErrorCategoryReward, "reward")
    reward = parser.instantiate(parser.parse_string("reward:\n  correct: 2.0\n  content_error: -0.5\n")).reward
    assert (
        reward(Category.CORRECT) == 2.0
        and reward(Category.CONTENT_ERROR) == -0.5
        and reward(Category.WRONG_TOOL) == -1.5
    )
