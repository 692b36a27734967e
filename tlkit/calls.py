"""Call formats: how a tool call is written as text, with the character spans PKT needs.

`python`: the paper's format, `get_weather(city='Paris', days=3)`.
`json`:   `{"name": "get_weather", "arguments": {"city": "Paris", "days": 3}}`.
Several calls in one turn are written one per line.

Parsing also reads the syntaxes chat models write (`hermes`, `llama`, `mistral`, `react`), and
`auto` picks the syntax per answer; see `parse_calls`.
"""

from __future__ import annotations

import ast
import json
import re
import warnings
from typing import Any, Literal, NamedTuple

from tlkit.records import ToolCall

CallFormat = Literal["python", "json"]
Span = tuple[int, int]  # [start, end) character offsets


class ArgumentSpans(NamedTuple):
    name: Span
    value: Span


class CallSpans(NamedTuple):
    """Where the parts of one rendered call sit in the text it was rendered into."""

    name: Span
    arguments: tuple[ArgumentSpans, ...]

    def shifted(self, offset: int) -> CallSpans:
        move = lambda span: (span[0] + offset, span[1] + offset)  # noqa: E731
        return CallSpans(move(self.name), tuple(ArgumentSpans(move(a.name), move(a.value)) for a in self.arguments))


def python_literal(value: Any) -> str:
    """A Python literal for a JSON value (`ast.literal_eval` reads it back)."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{python_literal(k)}: {python_literal(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(python_literal(v) for v in value) + "]"
    return repr(value)  # str, int, float, bool, None print as Python literals


def render_call(call: ToolCall, call_format: CallFormat = "python") -> tuple[str, CallSpans]:
    """Render one call; spans are relative to the returned text."""
    if call_format == "python":
        parts, spans, pos = [call.name, "("], [], len(call.name) + 1
        for i, (key, value) in enumerate(call.arguments.items()):
            if i:
                parts.append(", ")
                pos += 2
            literal = python_literal(value)
            spans.append(ArgumentSpans((pos, pos + len(key)), (pos + len(key) + 1, pos + len(key) + 1 + len(literal))))
            parts += [key, "=", literal]
            pos += len(key) + 1 + len(literal)
        return "".join(parts) + ")", CallSpans((0, len(call.name)), tuple(spans))
    if call_format == "json":
        head = '{"name": ' + json.dumps(call.name, ensure_ascii=False)
        parts, spans, pos = [head, ', "arguments": {'], [], len(head) + len(', "arguments": {')
        for i, (key, value) in enumerate(call.arguments.items()):
            if i:
                parts.append(", ")
                pos += 2
            key_text, value_text = json.dumps(key, ensure_ascii=False), json.dumps(value, ensure_ascii=False)
            spans.append(ArgumentSpans((pos + 1, pos + len(key_text) - 1),
                                       (pos + len(key_text) + 2, pos + len(key_text) + 2 + len(value_text))))
            parts += [key_text, ": ", value_text]
            pos += len(key_text) + 2 + len(value_text)
        return "".join(parts) + "}}", CallSpans((10, 10 + len(json.dumps(call.name, ensure_ascii=False)) - 2),
                                                tuple(spans))
    raise ValueError(f"unknown call format {call_format!r}: expected 'python' or 'json'")


def render_calls(calls: tuple[ToolCall, ...], call_format: CallFormat = "python") -> tuple[str, list[CallSpans]]:
    """Render the calls of one turn, one per line."""
    lines, spans, pos = [], [], 0
    for call in calls:
        text, call_spans = render_call(call, call_format)
        lines.append(text)
        spans.append(call_spans.shifted(pos))
        pos += len(text) + 1
    return "\n".join(lines), spans


# ---------------------------------------------------------------------------------------------
# Parsing: model output text -> calls. `None` means a format error; it never raises.

ParseFormat = Literal["python", "json", "react", "hermes", "llama", "mistral", "auto"]
JSON_NAMES = {"true": True, "false": False, "null": None}  # JSON spellings a model may write in a Python call
# Whatever arbitrary text can make the parsers throw; all of it is a format error.
PARSE_ERRORS = (SyntaxError, ValueError, TypeError, RecursionError, MemoryError, OverflowError)


class _NotACall(ValueError):
    """Raised inside the Python-call parser for a well-formed expression that is not a call."""


def _is_json_like(value: Any) -> bool:
    """Values a call argument may hold: JSON types, plus tuples (Python calls may write them)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return True
    if isinstance(value, (list, tuple)):
        return all(_is_json_like(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _is_json_like(v) for k, v in value.items())
    return False  # sets, bytes, complex, Ellipsis


def _dotted_name(node: ast.expr) -> str:
    """`a.b.c` from a Name or an Attribute chain over a Name."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return _dotted_name(node.value) + "." + node.attr
    raise _NotACall("the called object is not a (dotted) name")


class _JsonNames(ast.NodeTransformer):
    """Replaces the names `true`, `false`, `null` by the constants JSON means by them."""

    def visit_Name(self, name: ast.Name) -> ast.AST:
        if name.id in JSON_NAMES:
            return ast.copy_location(ast.Constant(JSON_NAMES[name.id]), name)
        return name


def _literal(node: ast.expr) -> Any:
    """`ast.literal_eval` on one argument node, reading `true/false/null` as JSON would."""
    value = ast.literal_eval(_JsonNames().visit(node))
    if not _is_json_like(value):
        raise _NotACall("an argument value is not a JSON-like literal")
    return value


def _python_call(node: ast.expr) -> ToolCall:
    if not isinstance(node, ast.Call):
        raise _NotACall("not a call")
    if node.args:
        raise _NotACall("positional arguments")
    arguments: dict[str, Any] = {}
    for keyword in node.keywords:
        if keyword.arg is None or keyword.arg in arguments:  # `**kw`, or a repeated name
            raise _NotACall("**kwargs or a repeated argument")
        arguments[keyword.arg] = _literal(keyword.value)
    return ToolCall(_dotted_name(node.func), arguments)


def _parse_python(text: str) -> list[ToolCall]:
    calls = []
    for line in text.split("\n"):  # not splitlines(): it also splits at \x85, \u2028, ...
        if not line.strip():
            continue
        with warnings.catch_warnings():  # model text like '\d' would warn "invalid escape sequence" on every parse
            warnings.simplefilter("ignore")
            tree = ast.parse(line.strip(), mode="eval").body
        # BFCL-style models write the turn's calls as one list: `[f(a=1), g(b=2)]`.
        nodes = tree.elts if isinstance(tree, ast.List) else [tree]
        calls += [_python_call(node) for node in nodes]
    return calls


def json_call(obj: Any) -> ToolCall:
    """One call object: `{"name", "arguments"}`, Llama's `"parameters"`, or OpenAI's
    `{"type": "function", "function": {...}}`."""
    if isinstance(obj, dict) and obj.get("type") == "function" and isinstance(obj.get("function"), dict):
        obj = obj["function"]  # OpenAI: {"type": "function", "function": {"name", "arguments"}}
    if not isinstance(obj, dict) or not isinstance(obj.get("name"), str):
        raise _NotACall('expected {"name": ..., "arguments": {...}}')
    # Llama 3.x templates write the arguments under "parameters".
    arguments = obj["arguments"] if "arguments" in obj else obj.get("parameters", {})
    if isinstance(arguments, str):  # OpenAI-style: the arguments object serialised as a string
        arguments = json.loads(arguments)
    if not isinstance(arguments, dict):
        raise _NotACall("arguments is not an object")
    return ToolCall(obj["name"], arguments)


def _parse_json(text: str) -> list[ToolCall]:
    if not text.strip():
        return []
    try:
        whole = json.loads(text)
    except json.JSONDecodeError:  # not one JSON value: try one object per line
        return [json_call(json.loads(line)) for line in text.split("\n") if line.strip()]
    return [json_call(obj) for obj in whole] if isinstance(whole, list) else [json_call(whole)]


def react_parts(text: str) -> tuple[str, str, str] | None:
    """`Thought: T\\nAction: NAME\\nAction Input: {JSON}` -> (T, NAME, the input's text); None without both markers.

    The action is the text between the first `Action:` and the next `Action Input:`, surrounding
    whitespace stripped (RoTBench strips one trailing newline and the space after the colon); the
    input is everything after `Action Input:`; the thought is what precedes `Action:`, less `Thought:`.
    """
    start = text.find("Action:")
    middle = text.find("Action Input:", start) if start >= 0 else -1
    if middle < 0:
        return None
    thought = text[:start].strip().removeprefix("Thought:").strip()
    return thought, text[start + len("Action:") : middle].strip(), text[middle + len("Action Input:") :]


def parse_react(text: str) -> tuple[str, Any] | None:
    """(name, decoded JSON of any type) of a ReAct action (`react_parts`); None if absent, or if the input
    is not one JSON value (nothing may follow it)."""
    parts = react_parts(text)
    if parts is None:
        return None
    try:
        return parts[1], json.loads(parts[2])
    except PARSE_ERRORS:
        return None


def _parse_react(text: str) -> list[ToolCall] | None:
    parsed = parse_react(text)
    if parsed is None or not isinstance(parsed[1], dict):
        return None
    return [ToolCall(parsed[0], parsed[1])]


HERMES_BLOCK = re.compile(r"<tool_call>(.*?)</tool_call>", re.DOTALL)


def object_literal(text: str) -> Any:
    """JSON, or the Python-literal dicts Hermes data writes (`{'name': 'f', 'arguments': {'a': True}}`)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            value = ast.literal_eval(text.strip())
        if not _is_json_like(value):
            raise _NotACall("not a JSON-like literal") from None
        return value


def hermes_calls(text: str) -> tuple[str, list[ToolCall]]:
    """(free text before the calls, the calls) of a Hermes / Qwen turn: `<tool_call>{JSON}</tool_call>` blocks.

    Raises ValueError (or SyntaxError) when there is no block, when text follows or sits between
    blocks, or when a block does not hold one `{"name", "arguments"}` object.
    """
    blocks = list(HERMES_BLOCK.finditer(text))
    if not blocks:
        raise _NotACall("no <tool_call> block")
    if HERMES_BLOCK.sub("", text[blocks[0].start() :]).strip():
        raise _NotACall("text after or between the <tool_call> blocks")
    return text[: blocks[0].start()].strip(), [json_call(object_literal(b.group(1))) for b in blocks]


def _parse_hermes(text: str) -> list[ToolCall]:
    return hermes_calls(text)[1]


LLAMA_FUNCTION = re.compile(r"<function=([^>]+)>(.*?)</function>", re.DOTALL)


def _parse_llama(text: str) -> list[ToolCall]:
    """Llama 3.x: JSON `{"name", "parameters"}` or a built-in `name.call(query="...")`, either after an
    optional `<|python_tag|>` (decoding may drop it); or Meta's `<function=NAME>{JSON}</function>`."""
    text = text.strip()
    if text.startswith("<function="):
        if LLAMA_FUNCTION.sub("", text).strip():
            raise _NotACall("text outside <function=...> blocks")
        blocks = LLAMA_FUNCTION.finditer(text)
        return [json_call({"name": m.group(1), "arguments": json.loads(m.group(2))}) for m in blocks]
    body = text.removeprefix("<|python_tag|>").strip()
    if body.startswith("{"):
        return _parse_json(body)
    return [ToolCall(c.name.removesuffix(".call"), c.arguments) for c in _parse_python(body)]  # brave_search.call(...)


MISTRAL_ARGS = re.compile(r"([^\[\]]+?)(?:\[CALL_ID\][^\[]*)?\[ARGS\](.*)", re.DOTALL)


def _parse_mistral(text: str) -> list[ToolCall]:
    """`[TOOL_CALLS][{"name", "arguments", "id"}, ...]` (v3 tokenizers; decoding may drop the marker), or
    `[TOOL_CALLS]NAME[ARGS]{JSON}` repeated (v11+, optionally `[CALL_ID]id` before `[ARGS]`)."""
    calls = []
    for part in text.strip().removeprefix("[TOOL_CALLS]").split("[TOOL_CALLS]"):
        named = MISTRAL_ARGS.fullmatch(part.strip())
        if named:
            calls.append(json_call({"name": named.group(1).strip(), "arguments": json.loads(named.group(2))}))
        else:
            calls += _parse_json(part)
    return calls


# `auto` tries these in order and keeps the first that parses. `mistral` and `llama` come last: without
# their markers they read the same JSON and Python text as `json` and `python` (Llama also drops a
# `.call` suffix). The others cannot be mistaken for one another.
AUTO_ORDER: tuple[ParseFormat, ...] = ("hermes", "react", "json", "python", "mistral", "llama")
PARSERS = {"python": _parse_python, "json": _parse_json, "react": _parse_react,
           "hermes": _parse_hermes, "llama": _parse_llama, "mistral": _parse_mistral}


def parse_calls(text: str, call_format: ParseFormat = "python") -> list[ToolCall] | None:
    """The calls written in `text`, in order; `None` for a format error, `[]` for blank text.

    `python`: one call per line, `name(a='x', b=[1, 2])` (dotted names allowed), keyword arguments
    with literal values only, read with `ast` (never `eval`); `true/false/null` are read as JSON;
    a line may also hold a list of calls. `json`: `{"name", "arguments"}` objects (arguments may be
    a JSON string holding the object; Llama's `"parameters"` and OpenAI's `{"type": "function",
    "function": {...}}` are read too), a list of them, or one per line. `react`: one call,
    `Action: NAME` / `Action Input: {JSON object}`. `hermes` (Hermes, Qwen): `<tool_call>{JSON}</tool_call>`
    blocks, free text allowed before the first. `llama`: [`<|python_tag|>`] then JSON or `name.call(k="v")`,
    or `<function=NAME>{JSON}</function>`. `mistral`: [`[TOOL_CALLS]`] then a JSON list, or `NAME[ARGS]{JSON}`.
    `auto`: the first of `AUTO_ORDER` that parses. A call with an empty name is a format error.
    """
    if call_format == "auto":
        for syntax in AUTO_ORDER:
            calls = parse_calls(text, syntax)
            if calls is not None:
                return calls
        return None
    if call_format not in PARSERS:
        raise ValueError(f"unknown call format {call_format!r}: expected one of {', '.join([*PARSERS, 'auto'])}")
    try:
        calls = PARSERS[call_format](text)
    except (_NotACall, *PARSE_ERRORS):
        return None
    if calls is None or any(not call.name for call in calls):
        return None
    return calls


def parse_turn(text: str, call_format: ParseFormat = "python") -> list[ToolCall] | None:
    """The calls that end an assistant turn, after any free text (a thought) on earlier lines."""
    lines = text.strip().split("\n")
    for start in range(len(lines)):
        calls = parse_calls("\n".join(lines[start:]), call_format)
        if calls:
            return calls
    return None
