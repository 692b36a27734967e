"""`hermes`: NousResearch Hermes function-calling data (hermes-function-calling-v1).

A JSON list (or JSON Lines) of `{id, conversations: [{from: system|human|gpt|tool, value}]}`. The
system turn lists the tools inside `<tools>...</tools>` (JSON or Python-literal text of a list of
`{type: "function", function: {...}}`); that block becomes the record's tools and the rest of the
system text (the function-calling instructions) stays the system message. A `gpt` turn calls tools
in `<tool_call>{...}</tool_call>` blocks (JSON or Python literal, `{name, arguments}`); a `tool` turn
wraps its result in `<tool_response>...</tool_response>`, which is unwrapped.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from tlkit.calls import hermes_calls, object_literal
from tlkit.data.readers._common import At, load_records, make_tool, record_at
from tlkit.data.readers.openai import tool_spec
from tlkit.records import Message, Tool, Trajectory

ROLES = {"system": "system", "human": "user", "gpt": "assistant", "tool": "tool"}
TOOLS = re.compile(r"<tools>(.*?)</tools>", re.DOTALL)
RESPONSE = re.compile(r"\s*<tool_response>(.*)</tool_response>\s*", re.DOTALL)


def read_hermes(path: str | Path) -> Iterator[Trajectory]:
    """One record per conversation."""
    path = Path(path)
    for position, record in load_records(path):
        at = record_at(path, position, record)
        turns = at.get(record, "conversations", list, "conversations")
        tools: tuple[Tool, ...] = ()
        messages = []
        for i, turn in enumerate(turns):
            field = f"conversations[{i}]"
            speaker, value = at.get(turn, "from", str, f"{field}.from"), at.get(turn, "value", str, f"{field}.value")
            if speaker not in ROLES:
                raise at.error(f"{field}.from", f"expected system, human, gpt or tool, got {speaker!r}")
            # The prompt also names the tags in prose ("within <tools> </tools> XML tags"): the block is
            # the last pair with something inside.
            blocks = [m for m in TOOLS.finditer(value) if m.group(1).strip()] if speaker == "system" else []
            if blocks:
                tools = read_tools(blocks[-1].group(1), at, f"{field}.value")
                value = (value[: blocks[-1].start()] + value[blocks[-1].end() :]).strip()
            messages.append(convert(ROLES[speaker], value, at, f"{field}.value"))
        if not messages:
            raise at.error("conversations", "expected at least one turn")
        yield Trajectory(str(at.record), tools, tuple(messages))


def read_tools(text: str, at: At, field: str) -> tuple[Tool, ...]:
    try:
        specs = object_literal(text)  # as `<tool_call>` bodies: JSON or a Python literal
    except (ValueError, SyntaxError) as e:
        raise at.error(f"{field}.<tools>", f"expected a JSON or Python list of tool schemas ({e})") from None
    specs = specs if isinstance(specs, list) else [specs]
    return tuple(make_tool(tool_spec(spec), at, f"{field}.<tools>[{i}]") for i, spec in enumerate(specs))


def convert(role: str, value: str, at: At, field: str) -> Message:
    if role == "assistant" and "<tool_call>" in value:
        try:
            content, calls = hermes_calls(value)
        except (ValueError, SyntaxError) as e:
            raise at.error(field, f"expected <tool_call> blocks of {{name, arguments}} objects ({e})") from None
        return Message(role, content, tuple(calls))
    if role == "tool":
        response = RESPONSE.fullmatch(value)
        return Message(role, response.group(1).strip() if response else value)
    return Message(role, value)
