"""Rendering: a trajectory becomes one text, with the character span of every assistant turn.

Formats:
- `paper`: the TL-Training format. Tools as Python `def` signatures with docstrings in the
  system turn, roles `System:` / `User:` / `Assistant:` / `Output:`, calls as `name(arg='v')`.
- `json`: the same roles, calls as `{"name": ..., "arguments": {...}}`.
- `chat_template`: the tokenizer's own chat template, called with `tools=`.

A target (the text an assistant turn is trained on) starts right after its role marker and ends
with the end-of-turn token, so the prompt for generation is exactly `text[:target.start]`.
"""

from __future__ import annotations

import json
from typing import Any, Literal, NamedTuple

from tlkit.calls import CallFormat, CallSpans, render_calls
from tlkit.data.records import Message, Tool, Trajectory

RenderFormat = Literal["paper", "json", "chat_template"]

ROLE_MARKERS = {"system": "System:", "user": "User:", "assistant": "Assistant:", "tool": "Output:"}
DEFAULT_SYSTEM = "You are a helpful assistant that can call tools."
JSON_TO_PYTHON = {"string": "str", "integer": "int", "number": "float", "boolean": "bool", "array": "list", "object": "dict"}


class Target(NamedTuple):
    """One assistant turn inside a rendered text."""

    message_index: int
    start: int  # character offsets of the turn's target text, [start, end)
    end: int
    calls: list[CallSpans]  # absolute spans of each call it makes (empty for a text answer)


class Rendered(NamedTuple):
    text: str
    targets: list[Target]


def python_signature(tool: Tool) -> str:
    """`def name(a: str, b: int = None):` with a docstring listing the arguments."""
    properties = tool.parameters.get("properties") or {}
    required = [name for name in tool.parameters.get("required") or [] if name in properties]
    optional = [name for name in properties if name not in required]

    def annotation(name: str) -> str:
        kind = properties[name].get("type") if isinstance(properties[name], dict) else None
        return JSON_TO_PYTHON.get(kind, "Any") if isinstance(kind, str) else "Any"

    args = [f"{name}: {annotation(name)}" for name in required]
    args += [f"{name}: {annotation(name)} = None" for name in optional]
    lines = [f"def {tool.name}({', '.join(args)}):", '    """' + (tool.description.strip() or tool.name)]
    if properties:
        lines += ["", "    Args:"]
        for name, schema in properties.items():
            description = schema.get("description", "") if isinstance(schema, dict) else ""
            lines.append(f"        {name} ({annotation(name)}): {' '.join(str(description).split())}")
    lines.append('    """')
    return "\n".join(lines)


def render_tools(tools: tuple[Tool, ...], call_format: CallFormat) -> str:
    if not tools:
        return ""
    if call_format == "python":
        body = "\n\n".join(python_signature(tool) for tool in tools)
    else:
        body = "\n".join(json.dumps({"name": t.name, "description": t.description, "parameters": t.parameters}, ensure_ascii=False) for t in tools)
    return "You can call the following tools:\n" + body


def assistant_body(message: Message, call_format: CallFormat) -> tuple[str, list[CallSpans]]:
    """The text of an assistant turn: its free text, then its calls, one per line."""
    if not message.tool_calls:
        return message.content, []
    calls_text, spans = render_calls(message.tool_calls, call_format)
    prefix = message.content.strip() + "\n" if message.content.strip() else ""
    return prefix + calls_text, [s.shifted(len(prefix)) for s in spans]


def render_text(trajectory: Trajectory, call_format: CallFormat, end_of_turn: str) -> Rendered:
    """The `paper` and `json` formats."""
    messages = list(trajectory.messages)
    system = DEFAULT_SYSTEM
    if messages and messages[0].role == "system":
        system = messages.pop(0).content
        offset = 1
    else:
        offset = 0
    tools_text = render_tools(trajectory.tools, call_format)
    parts = [f"{ROLE_MARKERS['system']} {system}" + (f"\n{tools_text}" if tools_text else "") + "\n"]
    pos, targets = len(parts[0]), []
    for i, message in enumerate(messages, start=offset):
        marker = ROLE_MARKERS[message.role]
        if message.role == "assistant":
            body, spans = assistant_body(message, call_format)
            start = pos + len(marker)
            target = " " + body + end_of_turn
            targets.append(Target(i, start, start + len(target), [s.shifted(start + 1) for s in spans]))
            piece = marker + target + "\n"
        else:
            piece = f"{marker} {message.content}\n"
        parts.append(piece)
        pos += len(piece)
    return Rendered("".join(parts), targets)


def chat_messages(trajectory: Trajectory) -> list[dict[str, Any]]:
    """Messages in the OpenAI-style shape chat templates expect."""
    out = []
    for message in trajectory.messages:
        entry: dict[str, Any] = {"role": message.role, "content": message.content}
        if message.tool_calls:
            entry["tool_calls"] = [{"type": "function", "function": {"name": c.name, "arguments": c.arguments}} for c in message.tool_calls]
        out.append(entry)
    return out


def render_chat_template(trajectory: Trajectory, tokenizer: Any) -> Rendered:
    """The tokenizer's chat template; an assistant turn's span is what it adds to the text."""
    messages = chat_messages(trajectory)
    tools = [{"type": "function", "function": {"name": t.name, "description": t.description, "parameters": t.parameters}} for t in trajectory.tools] or None

    def render(upto: int, generation_prompt: bool) -> str:
        return tokenizer.apply_chat_template(messages[:upto], tools=tools, tokenize=False, add_generation_prompt=generation_prompt)

    text, targets = render(len(messages), False), []
    for i, message in enumerate(trajectory.messages):
        if message.role != "assistant":
            continue
        start, end = len(render(i, True)), len(render(i + 1, False))
        if text[:end] != render(i + 1, False):
            raise ValueError("the chat template renders earlier turns differently once later ones follow; use format 'paper' or 'json'")
        calls, cursor = [], start
        for call in message.tool_calls:  # locate each called name in order, by characters
            name_start = text.find(call.name, cursor, end)
            if name_start < 0:
                break
            calls.append(CallSpans((name_start, name_start + len(call.name)), ()))
            cursor = name_start + len(call.name)
        targets.append(Target(i, start, end, calls))
    return Rendered(text, targets)


def render(trajectory: Trajectory, format: RenderFormat, tokenizer: Any) -> Rendered:
    """Render in the named format; `tokenizer` supplies the end-of-turn token (or the template)."""
    if format == "chat_template":
        return render_chat_template(trajectory, tokenizer)
    call_format: CallFormat = "python" if format == "paper" else "json"
    return render_text(trajectory, call_format, tokenizer.eos_token or "")


def render_prompt(trajectory: Trajectory, message_index: int, format: RenderFormat, tokenizer: Any) -> str:
    """The text a model continues to produce the assistant turn at `message_index`."""
    rendered = render(trajectory, format, tokenizer)
    for target in rendered.targets:
        if target.message_index == message_index:
            return rendered.text[: target.start]
    raise ValueError(f"message {message_index} of record {trajectory.id!r} is not an assistant turn")
