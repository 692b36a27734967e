"""Parsing model output into calls: the three formats, the round trip, and never raising."""

import json
import warnings

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tlkit.calls import parse_calls, parse_react, render_calls
from tlkit.irm import Category, classify_call
from tlkit.records import Tool, ToolCall

# --- python ----------------------------------------------------------------------------------


def test_python_single_call():
    assert parse_calls("get_weather(city='Paris', days=3)", "python") == [
        ToolCall("get_weather", {"city": "Paris", "days": 3})
    ]


def test_python_several_calls_blank_lines_and_whitespace():
    text = "\n  f(a=1)  \n\n\tg(b=[1, 2.5, 'x'], c={'k': None})\n"
    assert parse_calls(text, "python") == [
        ToolCall("f", {"a": 1}),
        ToolCall("g", {"b": [1, 2.5, "x"], "c": {"k": None}}),
    ]


def test_python_dotted_names_negative_numbers_and_json_names():
    assert parse_calls("math.factorial(number=-5, exact=true, base=null, odd=false)", "python") == [
        ToolCall("math.factorial", {"number": -5, "exact": True, "base": None, "odd": False})
    ]
    assert parse_calls("a.b.c(x=[true, {'y': null}])", "python") == [ToolCall("a.b.c", {"x": [True, {"y": None}]})]


def test_python_list_of_calls_and_no_arguments():
    assert parse_calls("[f(a=1), g()]", "python") == [ToolCall("f", {"a": 1}), ToolCall("g", {})]


def test_python_tuples_stay_tuples():
    assert parse_calls("f(coord=(1.5, 2))", "python") == [ToolCall("f", {"coord": (1.5, 2)})]


def test_python_blank_text_is_no_call():
    assert parse_calls("  \n ", "python") == []


@pytest.mark.parametrize(
    "text",
    [
        "f('x')",  # positional argument
        "f(**kw)",
        "f(a=1, **{'b': 2})",
        "f(a=1, a=2)",  # repeated name
        "f(a=x)",  # a name, not a literal
        "f(a=1+2)",  # an expression
        "f(a=open('x'))",  # a call as a value: never evaluated
        "f(a={1, 2})",  # a set is not JSON
        "f(a=b'x')",
        "f(a={1: 'x'})",  # a non-string key
        "f(a=...)",
        "f()()",  # the callee is a call
        "x[0](a=1)",
        "(query='x')",  # no name: a syntax error
        "f(a=1",
        "I will call f(a=1)",
        "f(a=1); g(b=2)",
        "f(a=1)\nnot a call",
        "42",
        "[f(a=1), 3]",
        "f(a='\x00')",
    ],
)
def test_python_format_errors(text):
    assert parse_calls(text, "python") is None


# --- json ------------------------------------------------------------------------------------


def test_json_object_list_and_lines():
    one = '{"name": "f", "arguments": {"a": 1, "b": [true, null]}}'
    assert parse_calls(one, "json") == [ToolCall("f", {"a": 1, "b": [True, None]})]
    assert parse_calls(f"[{one}, {one}]", "json") == [ToolCall("f", {"a": 1, "b": [True, None]})] * 2
    assert parse_calls(f"{one}\n\n  {one}  ", "json") == [ToolCall("f", {"a": 1, "b": [True, None]})] * 2


def test_json_arguments_as_a_string_and_absent():
    assert parse_calls('{"name": "f", "arguments": "{\\"a\\": 1}"}', "json") == [ToolCall("f", {"a": 1})]
    assert parse_calls('{"name": "f"}', "json") == [ToolCall("f", {})]
    assert parse_calls("[]", "json") == [] and parse_calls("", "json") == []


@pytest.mark.parametrize(
    "text",
    [
        '{"name": "", "arguments": {}}',  # empty name
        '{"arguments": {"a": 1}}',
        '{"name": 3, "arguments": {}}',
        '{"name": "f", "arguments": [1]}',
        '{"name": "f", "arguments": "[1]"}',
        '{"name": "f", "arguments": "not json"}',
        '"f"',
        "[1]",
        '{"name": "f", "arguments": {}',
        "f(a=1)",
        '{"name": "f", "arguments": {}}\ntrailing words',
    ],
)
def test_json_format_errors(text):
    assert parse_calls(text, "json") is None


# --- react -----------------------------------------------------------------------------------


def test_react_call():
    text = 'Thought: I need the weather.\nAction: get_weather\nAction Input: {"city": "Paris", "days": 3}'
    assert parse_calls(text, "react") == [ToolCall("get_weather", {"city": "Paris", "days": 3})]
    assert parse_calls("Thought:\nAction:  finish \n\nAction Input: {}\n", "react") == [ToolCall("finish", {})]


def test_parse_react_returns_any_json_value():
    assert parse_react("Action: f\nAction Input: [1, 2]") == ("f", [1, 2])
    assert parse_react("Action: f\nAction Input: {nope}") is None


@pytest.mark.parametrize(
    "text",
    [
        "Action: f\nAction Input: [1]",  # not an object
        "Action: f\nAction Input: {'a': 1}",  # not JSON
        'Action: \nAction Input: {"a": 1}',  # empty name
        'Action Input: {"a": 1}',
        "Action: f",
        'Action: f\nAction Input: {"a": 1}\nObservation: done',  # text after the JSON
        "",
    ],
)
def test_react_format_errors(text):
    assert parse_calls(text, "react") is None


def test_unknown_format_is_a_programming_error():
    with pytest.raises(ValueError, match="unknown call format"):
        parse_calls("f()", "xml")


# --- round trip and never raising ------------------------------------------------------------

identifiers = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True).filter(
    lambda s: (
        s
        not in {
            "None",
            "True",
            "False",
            "and",
            "as",
            "assert",
            "async",
            "await",
            "break",
            "class",
            "continue",
            "def",
            "del",
            "elif",
            "else",
            "except",
            "finally",
            "for",
            "from",
            "global",
            "if",
            "import",
            "in",
            "is",
            "lambda",
            "nonlocal",
            "not",
            "or",
            "pass",
            "raise",
            "return",
            "try",
            "while",
            "with",
            "yield",
        }
    )
)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**6), 10**6)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)
calls = st.builds(
    ToolCall,
    st.lists(identifiers, min_size=1, max_size=3).map(".".join),
    st.dictionaries(identifiers, json_values, max_size=4),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(calls, min_size=1, max_size=3), st.sampled_from(["python", "json"]))
def test_round_trip(turn_calls, call_format):
    text, _ = render_calls(tuple(turn_calls), call_format)
    parsed = parse_calls(text, call_format)
    assert parsed == turn_calls and repr(parsed) == repr(turn_calls)  # repr: 1 vs 1.0 and True vs 1 differ too


call_like_text = st.one_of(
    st.text(max_size=60),
    st.text(alphabet="abf(){}[]=,.:'\"\n 0123456789-_truenl", max_size=60),
    st.builds(lambda a, b: f"Thought: x\nAction: {a}\nAction Input: {b}", st.text(max_size=10), st.text(max_size=30)),
    st.builds(lambda n, v: f"{n}(a={v})", st.text(max_size=8), st.text(max_size=20)),
)


@settings(max_examples=300, deadline=None)
@given(call_like_text, st.sampled_from(["python", "json", "react"]))
def test_parse_never_raises(text, call_format):
    parsed = parse_calls(text, call_format)
    assert parsed is None or all(isinstance(c, ToolCall) and c.name and isinstance(c.arguments, dict) for c in parsed)


@pytest.mark.parametrize("call_format", ["python", "json", "react"])
def test_deep_nesting_is_a_format_error_not_a_crash(call_format):
    deep = "[" * 100_000 + "]" * 100_000
    texts = {
        "python": f"f(a={deep})",
        "json": '{"name": "f", "arguments": {"a": ' + deep + "}}",
        "react": 'Action: f\nAction Input: {"a": ' + deep + "}",
    }
    assert parse_calls(texts[call_format], call_format) is None


TOOLS = (Tool("f", parameters={"type": "object", "properties": {"a": {}, "b": {}}}),)


@settings(max_examples=200, deadline=None)
@given(call_like_text, st.sampled_from(["python", "json", "react"]))
def test_classify_never_raises(text, call_format):
    assert isinstance(classify_call(parse_calls(text, call_format), ToolCall("f", {"a": 1}), TOOLS), Category)


def test_render_then_parse_json_keeps_unicode_line_separators():
    call = ToolCall("f", {"a": "x\u2028y\x85z"})
    text, _ = render_calls((call, call), "json")
    assert parse_calls(text, "json") == [call, call]
    assert json.loads(text.split("\n")[0])["arguments"]["a"] == "x\u2028y\x85z"


def test_python_parse_is_silent_on_invalid_escapes():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert parse_calls(r"f(pattern='\d+')", "python") == [ToolCall("f", {"pattern": "\\d+"})]
