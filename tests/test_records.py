"""The canonical record (`tlkit.records`): validation that names the field, the round trip, the scored turn."""

import pytest

from tlkit.records import (
    Message,
    RecordError,
    Tool,
    ToolCall,
    Trajectory,
    check_tools,
    gold_calls,
    target_message_index,
)

SEARCH = {"name": "search", "description": "Search the web.",
          "parameters": {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}}


def record(**changes) -> dict:
    base = {"id": "r1", "tools": [SEARCH], "messages": [
        {"role": "user", "content": "find x"},
        {"role": "assistant", "tool_calls": [{"name": "search", "arguments": {"q": "x"}}]},
        {"role": "tool", "content": "HTTP 500", "error": True},
        {"role": "assistant", "tool_calls": [{"name": "search", "arguments": {"q": "x"}}], "untrained": "error field"},
        {"role": "tool", "content": "3 hits"},
        {"role": "assistant", "content": "3 hits"}]}
    return {**base, **changes}


def test_a_record_round_trips_with_its_verdicts_and_marks():
    trajectory = Trajectory.from_dict(record())
    assert trajectory.messages[2].error is True and trajectory.messages[3].untrained == "error field"
    assert Trajectory.from_json(trajectory.to_json()) == trajectory
    assert "untrained" not in trajectory.to_dict()["messages"][1]  # None is left out, as `error` is


@pytest.mark.parametrize("changes, field", [
    ({"id": ""}, "id"),
    ({"tools": {"search": SEARCH}}, "tools"),
    ({"tools": ["search"]}, "tools[0]"),
    ({"tools": [{**SEARCH, "name": ""}]}, "tools[0].name"),
    ({"tools": [{**SEARCH, "parameters": {"properties": []}}]}, "tools[0].parameters"),
    ({"tools": [{**SEARCH, "description": 3}]}, "tools[0].description"),
    ({"messages": []}, "messages"),
    ({"messages": [{"role": "robot", "content": "hi"}]}, "messages[0].role"),
    ({"messages": [{"role": "user", "content": "x", "tool_calls": [{"name": "search"}]}]}, "messages[0].tool_calls[0]"),
    ({"messages": [{"role": "assistant", "tool_calls": [{"name": "search", "arguments": "q=x"}]}]},
     "messages[0].tool_calls[0].arguments"),
    ({"messages": [{"role": "tool", "content": "x", "error": "yes"}]}, "messages[0].error"),
    ({"messages": [{"role": "user", "content": "x", "untrained": "why"}]}, "messages[0].untrained"),
])
def test_a_bad_record_names_the_file_the_record_and_the_field(changes, field):
    with pytest.raises(RecordError) as error:
        Trajectory.from_dict(record(**changes), source="data.jsonl", record="line 7")
    assert error.value.field == field and str(error.value).startswith("data.jsonl: record ")


def test_the_scored_turn_is_the_last_that_calls_tools():
    trajectory = Trajectory.from_dict(record())
    assert target_message_index(trajectory) == 3
    assert gold_calls(trajectory) == (ToolCall("search", {"q": "x"}),)
    irrelevance = Trajectory("i", (), (Message("user", "hi"),))
    assert target_message_index(irrelevance) is None and gold_calls(irrelevance) == ()


def test_check_tools_rejects_repeated_names_and_unknown_required_parameters():
    twice = Trajectory("t", (Tool("a"), Tool("a")), (Message("user", "x"),))
    with pytest.raises(RecordError, match="repeats the name of tools\\[0\\]"):
        check_tools(twice, "f.jsonl")
    unknown = Trajectory("t", (Tool("a", parameters={"type": "object", "properties": {}, "required": ["q"]}),),
                         (Message("user", "x"),))
    with pytest.raises(RecordError) as error:
        check_tools(unknown, "f.jsonl")
    assert error.value.field == "tools[0].parameters.required"
