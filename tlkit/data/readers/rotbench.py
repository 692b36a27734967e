"""`rotbench`: RoTBench test records (`Data/{First,Third}_Turn/<noise>.json`, Junjie-Ye/RoTBench).

`{id, scenario, conversations: [{from: system|user|assistant|function, value}]}`. The system text
is RoTBench's ReAct prompt around the tool list (JSON after "tools:"); the tools are read from it
and the prompt itself is dropped, since tlkit renders its own. Assistant values read
"Thought: ...\\nAction: NAME\\nAction Input: {JSON}"; the last one is a list of acceptable
answers: the record's last turn makes the first, `meta["alternatives"]` holds all as
`[{name, arguments}]`. Ids repeat across noise files, not within one; a repeat gets `#2`.
"""

from __future__ import annotations

from collections.abc import Iterator
from json import JSONDecoder
from pathlib import Path
from typing import Any

from tlkit.calls import react_parts
from tlkit.data.readers._common import JSON_ERRORS, At, UniqueIds, json_problem, load_records, make_tool
from tlkit.records import Message, Tool, ToolCall, Trajectory

SPEAKERS = {"user": "user", "function": "tool"}


def read_rotbench(path: str | Path) -> Iterator[Trajectory]:
    """One record per test case; the gold alternatives go to meta."""
    unique = UniqueIds()
    for position, record in load_records(path):
        at = At(str(path), At(str(path), position).get(record, "id", str, "id"))
        turns = at.get(record, "conversations", list, "conversations")
        tools = parse_tools(at.get(turns, 0, dict, "conversations[0]"), at)
        messages, meta = [], {}
        for i in range(1, len(turns)):
            message, alternatives = convert(turns[i], at, f"conversations[{i}]", last=i == len(turns) - 1)
            messages.append(message)
            if alternatives:
                meta["alternatives"] = alternatives
        if isinstance(record.get("scenario"), str):
            meta["scenario"] = record["scenario"]
        yield Trajectory(unique(str(at.record)), tools, tuple(messages), meta)


def convert(turn: Any, at: At, field: str, last: bool) -> tuple[Message, list[dict[str, Any]]]:
    """One turn -> (message, the acceptable answers it lists, if it is the last turn and lists them)."""
    speaker = at.get(turn, "from", str, f"{field}.from")
    if speaker in SPEAKERS:
        return Message(SPEAKERS[speaker], at.get(turn, "value", str, f"{field}.value")), []
    if speaker != "assistant":
        raise at.error(f"{field}.from", f"expected user, assistant or function, got {speaker!r}")
    value = at.get(turn, "value", (str, list), f"{field}.value")
    if isinstance(value, str):
        thought, call = parse_action(value, at, f"{field}.value")
        return Message("assistant", thought, (call,)), []
    if not last or not value:
        raise at.error(f"{field}.value", "expected answer text; a list of answers only as the last turn, non-empty")
    wheres = [f"{field}.value[{k}]" for k in range(len(value))]
    parsed = [parse_action(at.get(value, k, str, where), at, where) for k, where in enumerate(wheres)]
    thought, call = parsed[0]
    return Message("assistant", thought, (call,)), [{"name": c.name, "arguments": c.arguments} for _, c in parsed]


def parse_tools(system: dict[str, Any], at: At) -> tuple[Tool, ...]:
    """The JSON list of tool schemas that follows "tools:" in the system text."""
    text = at.get(system, "value", str, "conversations[0].value")
    start = text.find("[", text.find("tools:") + 1)
    try:
        specs, _ = JSONDecoder().raw_decode(text, start) if start >= 0 else (None, 0)
    except JSON_ERRORS as e:
        problem = f"expected a JSON list of tools after 'tools:' ({json_problem(e)})"
        raise at.error("conversations[0].value", problem) from None
    if not isinstance(specs, list):
        raise at.error("conversations[0].value", "expected a JSON list of tools after 'tools:'")
    return tuple(make_tool(spec, at, f"conversations[0].value.tools[{i}]") for i, spec in enumerate(specs))


def parse_action(text: str, at: At, field: str) -> tuple[str, ToolCall]:
    """"Thought: t\\nAction: NAME\\nAction Input: {JSON}" -> (t, the call), as RoTBench's scorer reads it."""
    parts = react_parts(text)
    if parts is None:
        raise at.error(field, "expected 'Action: NAME' followed by 'Action Input: {JSON}'")
    thought, name, inputs = parts
    if not name:
        raise at.error(field, "expected a tool name after 'Action:'")
    arguments = at.arguments(inputs.strip(), f"{field} (Action Input)")
    return thought, ToolCall(name, arguments)
