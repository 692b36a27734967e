"""`toolbench`: ToolBench answer trees (`answer/G*_answer/*.json`).

`answer_generation.train_messages` is a list of conversations, one per assistant step of the
chosen DFS path: each is that step's context plus its target (a "This is not the first time you
try this task" prompt appears only in the step where it was shown), so the last one is the whole
trajectory, ending in the `Finish` call; that is the one read. It is an OpenAI function-calling
conversation (system / user / assistant with `function_call {name, arguments (JSON text)}` /
function); a thought recorded as its own assistant message joins the call that follows it.
Tools come from `answer_generation.function` (with `Finish`, which is called). Replies are
`{"error": "...", "response": ...}`: a non-empty `error` field is an error; an empty one is no
verdict (error None), since a 400 or a 403 page often sits in `response` with it, so MAE's
patterns read the reply. Files without train_messages (no successful path) are skipped.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tlkit.data.readers._common import JSON_ERRORS, At, load_json, make_tool
from tlkit.records import Message, ToolCall, Trajectory

# ToolBench cuts long replies mid-string, so the envelope may not parse as a whole.
ERROR_FIELD = re.compile(r'\s*\{\s*"error"\s*:\s*("(?:[^"\\]|\\.)*")')


def read_toolbench(path: str | Path) -> Iterator[Trajectory]:
    """One trajectory per answer file; a folder is searched for `*_answer/*.json`, sorted."""
    path = Path(path)
    files = sorted(f for f in path.rglob("*.json") if f.parent.name.endswith("_answer")) if path.is_dir() else [path]
    for file in files:
        trajectory = read_answer(file)
        if trajectory is not None:
            yield trajectory


def read_answer(path: Path) -> Trajectory | None:
    at = At(str(path), f"{path.parent.name}/{path.stem}")
    generation = at.get(load_json(path), "answer_generation", dict, "answer_generation")
    conversations = generation.get("train_messages")
    if not conversations:
        return None
    field = "answer_generation.train_messages"
    conversations = at.get(generation, "train_messages", list, field)
    last = len(conversations) - 1
    conversation = at.get(conversations, last, list, f"{field}[{last}]")
    messages = merge_thoughts([convert(m, at, f"{field}[{last}][{i}]") for i, m in enumerate(conversation)])
    functions = at.get(generation, "function", list, "answer_generation.function")
    tools = tuple(make_tool(spec, at, f"answer_generation.function[{i}]") for i, spec in enumerate(functions))
    return Trajectory(str(at.record), tools, messages)


def convert(message: Any, at: At, field: str) -> Message:
    """One OpenAI-style message -> a canonical one."""
    role = at.get(message, "role", str, f"{field}.role")
    content = message.get("content") or ""
    if not isinstance(content, str):
        raise at.error(f"{field}.content", f"expected a string, got {type(content).__name__}")
    if role in ("system", "user"):
        return Message(role, content)
    if role == "function":
        return Message("tool", content, error=envelope_error(content))
    if role != "assistant":
        raise at.error(f"{field}.role", f"expected system, user, assistant or function, got {role!r}")
    if message.get("function_call") is None:
        return Message("assistant", content)
    call = at.get(message, "function_call", dict, f"{field}.function_call")
    name = at.get(call, "name", str, f"{field}.function_call.name")
    where = f"{field}.function_call.arguments"
    arguments = at.arguments(at.get(call, "arguments", str, where), where)
    return Message("assistant", content, (ToolCall(name, arguments),))


def merge_thoughts(messages: list[Message]) -> tuple[Message, ...]:
    """A thought the path recorded as its own assistant message joins the call that follows it."""
    merged: list[Message] = []
    for message in messages:
        previous = merged[-1] if merged else None
        if (previous is not None and previous.role == "assistant" and not previous.tool_calls
                and message.role == "assistant" and message.tool_calls and not message.content):
            merged[-1] = Message("assistant", previous.content, message.tool_calls)
        else:
            merged.append(message)
    return tuple(merged)


def envelope_error(content: str) -> bool | None:
    """True where the reply's `error` field is non-empty; None where it is empty or missing."""
    try:
        reply = json.loads(content)
    except JSON_ERRORS:
        match = ERROR_FIELD.match(content)
        field = None if match is None else json.loads(match.group(1))
    else:
        field = reply.get("error") if isinstance(reply, dict) else None
    return True if field else None
