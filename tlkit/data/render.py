"""Rendering: a trajectory becomes one text, with the character span of every assistant turn.

Formats:
- `paper`: the TL-Training format. Tools as Python `def` signatures (declared defaults, `= None`
  for other optional arguments) with docstrings (allowed values, nested properties) in the system
  turn, roles `System:` / `User:` / `Assistant:` / `Output:`, calls as `name(arg='v')`.
- `json`: the same roles, tools as their JSON schemas, calls as `{"name": ..., "arguments": {...}}`.
- `chat_template`: the tokenizer's own chat template, called with `tools=` (the whole schemas; what
  it shows of them is the template's choice).

A target (the text an assistant turn is trained on) starts right after its role marker and ends
with the end-of-turn token, so the prompt for generation is exactly `text[:target.start]`.
"""

from __future__ import annotations

import json
from typing import Any, Literal, NamedTuple

from tlkit.calls import CallFormat, CallSpans, python_literal, render_calls
from tlkit.records import Message, Tool, Trajectory

PromptFormat = Literal["paper", "json", "chat_template"]

ROLE_MARKERS = {"system": "System:", "user": "User:", "assistant": "Assistant:", "tool": "Output:"}
DEFAULT_SYSTEM = "You are a helpful assistant that can call tools."
JSON_TO_PYTHON = {"string": "str", "integer": "int", "number": "float", "boolean": "bool", "array": "list",
                  "object": "dict"}


class Target(NamedTuple):
    """One assistant turn inside a rendered text."""

    message_index: int
    start: int  # character offsets of the turn's target text, [start, end)
    end: int
    calls: list[CallSpans]  # absolute spans of each call it makes (empty for a text answer)


class Rendered(NamedTuple):
    text: str
    targets: list[Target]


def python_type(schema: Any) -> str:
    """`int`, `list[float]`, `dict`, ... for a parameter's JSON schema; `Any` where it declares no type."""
    kind = schema.get("type") if isinstance(schema, dict) else None
    name = JSON_TO_PYTHON.get(kind, "Any") if isinstance(kind, str) else "Any"
    items = python_type(schema.get("items")) if name == "list" else "Any"
    return f"list[{items}]" if items != "Any" else name


def nested_properties(schema: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """(properties, required) of an object parameter, or of the objects an array parameter holds."""
    inner = schema.get("items") if schema.get("type") == "array" else schema
    if not isinstance(inner, dict) or not isinstance(inner.get("properties"), dict):
        return {}, []
    return inner["properties"], list(inner.get("required") or [])


def argument_lines(properties: dict[str, Any], required: list[str], in_signature: set[str], depth: int) -> list[str]:
    """Google-style `name (type): description` lines: allowed values, defaults not in the signature, and
    the properties of nested objects indented below their parameter."""
    lines = []
    for name, schema in properties.items():
        schema = schema if isinstance(schema, dict) else {}
        kind = python_type(schema) + (", optional" if depth and name not in required else "")
        text = " ".join(str(schema.get("description", "")).split())
        if isinstance(schema.get("enum"), list):
            text += " One of: " + ", ".join(python_literal(v) for v in schema["enum"]) + "."
        if "default" in schema and name not in in_signature:
            text += f" Default: {python_literal(schema['default'])}."
        lines.append(f"{'    ' * (depth + 2)}{name} ({kind}): {text.strip()}".rstrip())
        lines += argument_lines(*nested_properties(schema), set(), depth + 1)
    return lines


def python_signature(tool: Tool) -> str:
    """`def name(a: str, b: int = 3, c: str = None):` (None: optional, no declared default) and a docstring
    whose `Args:` give each argument's description, allowed values and nested properties."""
    properties = tool.parameters.get("properties") or {}
    required = [name for name in tool.parameters.get("required") or [] if name in properties]
    optional = [name for name in properties if name not in required]
    schemas = {name: s if isinstance(s, dict) else {} for name, s in properties.items()}
    args = [f"{name}: {python_type(schemas[name])}" for name in required]
    args += [f"{name}: {python_type(schemas[name])} = {python_literal(schemas[name].get('default'))}"
             for name in optional]
    lines = [f"def {tool.name}({', '.join(args)}):", '    """' + (tool.description.strip() or tool.name)]
    if properties:
        lines += ["", "    Args:", *argument_lines(properties, required, set(optional), 0)]
    lines.append('    """')
    return "\n".join(lines)


def render_tools(tools: tuple[Tool, ...], call_format: CallFormat) -> str:
    if not tools:
        return ""
    if call_format == "python":
        body = "\n\n".join(python_signature(tool) for tool in tools)
    else:
        body = "\n".join(json.dumps({"name": t.name, "description": t.description, "parameters": t.parameters},
                                    ensure_ascii=False) for t in tools)
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
            entry["tool_calls"] = [{"type": "function", "function": {"name": c.name, "arguments": c.arguments}}
                                   for c in message.tool_calls]
        out.append(entry)
    return out


def render_chat_template(trajectory: Trajectory, tokenizer: Any) -> Rendered:
    """The tokenizer's chat template; an assistant turn's span is what it adds to the text."""
    messages = chat_messages(trajectory)
    tools = [{"type": "function",
              "function": {"name": t.name, "description": t.description, "parameters": t.parameters}}
             for t in trajectory.tools] or None

    def render(upto: int, generation_prompt: bool) -> str:
        return tokenizer.apply_chat_template(messages[:upto], tools=tools, tokenize=False,
                                             add_generation_prompt=generation_prompt)

    text, targets = render(len(messages), False), []
    for i, message in enumerate(trajectory.messages):
        if message.role != "assistant":
            continue
        start, end = len(render(i, True)), len(render(i + 1, False))
        if text[:end] != render(i + 1, False):
            raise ValueError("the chat template renders earlier turns differently once later ones follow; "
                             "use format 'paper' or 'json'")
        calls, cursor = [], start
        for call in message.tool_calls:  # locate each called name in order, by characters
            name_start = text.find(call.name, cursor, end)
            if name_start < 0:
                break
            calls.append(CallSpans((name_start, name_start + len(call.name)), ()))
            cursor = name_start + len(call.name)
        targets.append(Target(i, start, end, calls))
    return Rendered(text, targets)


def render(trajectory: Trajectory, format: PromptFormat, tokenizer: Any) -> Rendered:
    """Render in the named format; `tokenizer` supplies the end-of-turn token (or the template)."""
    if format == "chat_template":
        return render_chat_template(trajectory, tokenizer)
    call_format: CallFormat = "python" if format == "paper" else "json"
    return render_text(trajectory, call_format, tokenizer.eos_token or "")


def render_prompt(trajectory: Trajectory, message_index: int, format: PromptFormat, tokenizer: Any) -> str:
    """The text a model continues to produce the assistant turn at `message_index`."""
    rendered = render(trajectory, format, tokenizer)
    for target in rendered.targets:
        if target.message_index == message_index:
            return rendered.text[: target.start]
    raise ValueError(f"message {message_index} of record {trajectory.id!r} is not an assistant turn")
