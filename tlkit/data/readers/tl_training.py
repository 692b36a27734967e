"""`tl_training`: the TL-Training reference's raw training format (Junjie-Ye/TL-Training, `mae.py`).

A JSON list (or JSON Lines) of `{id, conversations: [{role, content}]}` (`from`/`value` are read
too). The first message's content is a JSON list of OpenAI function specs (`{type: function,
function: {name, description, parameters}}`, or the bare inner object); then user / assistant /
function messages. An assistant turn is a call when it reads `NAME\\n{JSON arguments}`, and a
final answer in plain text otherwise; `function` messages are the tools' feedback. Records without
an id are `<file stem>/<index>`; a repeated id gets `#2`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tlkit.data.readers._common import At, UniqueIds, load_records, make_tool
from tlkit.records import Message, Tool, ToolCall, Trajectory

ROLES = {"system": "system", "user": "user", "function": "tool", "tool": "tool"}
CALL = re.compile(r"([\w.\-]+)[ \t]*\n\s*(\{.*)", re.DOTALL)


def read_tl_training(path: str | Path) -> Iterator[Trajectory]:
    """One record per sample; the first message is the tool list, not a turn."""
    unique = UniqueIds()
    for index, (_, sample) in enumerate(load_records(path)):
        record_id = sample.get("id") if isinstance(sample, dict) else None
        at = At(str(path), str(record_id) if record_id not in (None, "") else f"{Path(path).stem}/{index}")
        turns = at.get(sample, "conversations", list, "conversations")
        tools = parse_tools(text_of(at.get(turns, 0, dict, "conversations[0]"), at, "conversations[0]"), at)
        messages = tuple(convert(turn, at, f"conversations[{i}]") for i, turn in enumerate(turns[1:], start=1))
        if not messages:
            raise at.error("conversations", "expected turns after the tool list")
        yield Trajectory(unique(str(at.record)), tools, messages)


def text_of(turn: dict[str, Any], at: At, field: str) -> str:
    key = "content" if "content" in turn else "value"
    return at.get(turn, key, str, f"{field}.{key}")


def parse_tools(text: str, at: At) -> tuple[Tool, ...]:
    specs = at.json(text, "conversations[0].content")
    if not isinstance(specs, list):
        raise at.error("conversations[0].content", "expected a JSON list of function specs")
    tools = []
    for i, spec in enumerate(specs):
        inner = spec.get("function", spec) if isinstance(spec, dict) else spec
        tools.append(make_tool(inner, at, f"conversations[0].content[{i}].function"))
    return tuple(tools)


def convert(turn: Any, at: At, field: str) -> Message:
    if not isinstance(turn, dict):
        raise at.error(field, "expected an object with 'role' and 'content'")
    key = "role" if "role" in turn else "from"
    role = at.get(turn, key, str, f"{field}.{key}")
    content = text_of(turn, at, field)
    if role in ROLES:
        return Message(ROLES[role], content)
    if role != "assistant":
        raise at.error(f"{field}.{key}", f"expected system, user, assistant or function, got {role!r}")
    call = CALL.fullmatch(content.strip())
    if call is None:
        return Message("assistant", content)
    arguments = at.arguments(call.group(2), f"{field}.content (arguments)")
    return Message("assistant", "", (ToolCall(call.group(1), arguments),))
