"""`openai`: OpenAI chat records, as TRL's SFTTrainer and most released tool-use sets store them.

A JSON list or JSON Lines of `{messages: [...], tools: [...]}` (or TRL's conversational
`{prompt: [...], completion: [...], tools}`). Tools are `{type: "function", function: {name,
description, parameters}}` (bare `{name, ...}` objects and JSON text of the list are read too).
Assistant turns call tools with `tool_calls: [{id, type, function: {name, arguments}}]`, the
arguments an object or JSON text (or the legacy `function_call: {name, arguments}`); results come
back in `tool` turns (`tool_call_id` or `name`; the legacy role `function` is read as `tool`).
`content` may be text, null, or a list of `{type: "text", text}` parts; `developer` is `system`.
Records without an `id` are `<file stem>/<position>`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tlkit.data.readers._common import At, load_records, make_tool, record_at
from tlkit.records import Message, ToolCall, Trajectory

ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant", "tool": "tool",
         "function": "tool"}


def read_openai(path: str | Path) -> Iterator[Trajectory]:
    """One record per conversation."""
    path = Path(path)
    for position, record in load_records(path):
        yield read_record(record, record_at(path, position, record))


def read_record(record: Any, at: At) -> Trajectory:
    if not isinstance(record, dict):
        raise at.error("<record>", f"expected a JSON object, got {type(record).__name__}")
    specs = record.get("tools") or []
    if isinstance(specs, str):
        specs = at.json(specs, "tools")
    if not isinstance(specs, list):
        raise at.error("tools", "expected a list of tool schemas")
    tools = tuple(make_tool(tool_spec(spec), at, f"tools[{i}]") for i, spec in enumerate(specs))
    if "messages" in record:
        turns = [(f"messages[{i}]", m) for i, m in enumerate(at.get(record, "messages", list, "messages"))]
    else:  # TRL prompt-completion
        parts = {key: at.get(record, key, list, key) for key in ("prompt", "completion")}
        turns = [(f"{key}[{i}]", m) for key, part in parts.items() for i, m in enumerate(part)]
    messages = tuple(convert(turn, at, field) for field, turn in turns)
    if not messages:
        raise at.error("messages", "expected at least one message")
    return Trajectory(str(at.record), tools, messages)


def tool_spec(spec: Any) -> Any:
    """The `{name, description, parameters}` object inside OpenAI's `{type: "function", function: {...}}`."""
    return spec["function"] if isinstance(spec, dict) and isinstance(spec.get("function"), dict) else spec


def convert(turn: Any, at: At, field: str) -> Message:
    role = at.get(turn, "role", str, f"{field}.role")
    if role not in ROLES:
        raise at.error(f"{field}.role", f"expected one of {', '.join(ROLES)}, got {role!r}")
    calls = list(turn.get("tool_calls") or []) + ([turn["function_call"]] if turn.get("function_call") else [])
    if calls and role != "assistant":
        raise at.error(f"{field}.tool_calls", f"only assistant turns call tools, not {role!r}")
    return Message(ROLES[role], content(turn.get("content"), at, f"{field}.content"),
                   tuple(tool_call(call, at, f"{field}.tool_calls[{j}]") for j, call in enumerate(calls)))


def content(value: Any, at: At, field: str) -> str:
    """Text content; a list of content parts is joined (only text parts)."""
    if value is None or isinstance(value, str):
        return value or ""
    if isinstance(value, list):
        return "".join(part.get("text", "") for part in value if isinstance(part, dict) and part.get("type") == "text")
    raise at.error(field, f"expected text, null or a list of content parts, got {type(value).__name__}")


def tool_call(call: Any, at: At, field: str) -> ToolCall:
    function = tool_spec(call)
    name = at.get(function, "name", str, f"{field}.function.name")
    return ToolCall(name, at.arguments(function.get("arguments") or {}, f"{field}.function.arguments"))
