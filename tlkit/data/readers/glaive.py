"""`glaive`: Glaive function-calling data in ShareGPT form (LLaMA-Factory's `glaive_toolcall_*`).

A JSON list of `{conversations: [{from: human|gpt|function_call|observation|system, value}],
tools: JSON text of [{name, description, parameters}]}`; a `function_call` value is JSON text
`{name, arguments}`. The source has no ids: records are `<file stem>/<index>`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tlkit.data.readers._common import At, load_json, make_tool
from tlkit.records import Message, ToolCall, Trajectory

ROLES = {"human": "user", "gpt": "assistant", "observation": "tool", "system": "system"}


def read_glaive(path: str | Path) -> Iterator[Trajectory]:
    """One record per conversation."""
    path = Path(path)
    data = load_json(path)
    if not isinstance(data, list):
        raise At(str(path), "<file>").error("<root>", "expected a JSON list of conversations")
    for index, record in enumerate(data):
        at = At(str(path), f"{path.stem}/{index}")
        specs = at.json(at.get(record, "tools", str, "tools"), "tools")
        if not isinstance(specs, list):
            raise at.error("tools", "expected JSON text of a list of tool schemas")
        tools = tuple(make_tool(spec, at, f"tools[{i}]") for i, spec in enumerate(specs))
        turns = at.get(record, "conversations", list, "conversations")
        messages = tuple(convert(turn, at, f"conversations[{i}]") for i, turn in enumerate(turns))
        if not messages:
            raise at.error("conversations", "expected at least one turn")
        yield Trajectory(str(at.record), tools, messages)


def convert(turn: Any, at: At, field: str) -> Message:
    speaker = at.get(turn, "from", str, f"{field}.from")
    value = at.get(turn, "value", str, f"{field}.value")
    if speaker == "function_call":
        call = at.json(value, f"{field}.value")
        name = at.get(call, "name", str, f"{field}.value.name")
        arguments = at.arguments(call.get("arguments", {}), f"{field}.value.arguments")
        return Message("assistant", "", (ToolCall(name, arguments),))
    if speaker not in ROLES:
        raise at.error(f"{field}.from", f"expected human, gpt, function_call, observation or system, got {speaker!r}")
    return Message(ROLES[speaker], value)
