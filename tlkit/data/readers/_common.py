"""What every reader shares: locating errors, loading JSON, tool schemas, call arguments."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tlkit.records import RecordError, Tool, tool_from_dict

# What decoding JSON text can raise: a syntax error, or nesting deeper than Python's parser goes.
JSON_ERRORS = (ValueError, RecursionError)
KINDS = {str: "a string", list: "a list", dict: "an object", int: "an integer", bool: "true or false"}

# Source type names (Python, Java/JavaScript in BFCL, API-Bank's datetimes, which it passes as
# "%Y-%m-%d %H:%M:%S" text) -> JSON schema names; any other name (BFCL's "any") is kept.
TYPE_NAMES = {
    "str": "string", "String": "string", "char": "string", "datetime": "string",
    "int": "integer", "long": "integer",
    "float": "number", "double": "number",
    "bool": "boolean", "Boolean": "boolean",
    "list": "array", "tuple": "array", "Array": "array", "ArrayList": "array",
    "dict": "object", "HashMap": "object",
}
GENERIC = re.compile(r"(?:List|list|Array)\[(.+)\]")


@dataclass(frozen=True)
class At:
    """Where a reader is (file and record), so that every error names both."""

    source: str
    record: str | int

    def error(self, field: str, problem: str) -> RecordError:
        return RecordError(self.source, self.record, field, problem)

    def get(self, obj: Any, key: str | int, kind: type | tuple[type, ...], field: str) -> Any:
        """`obj[key]`, checked to be of `kind`; `field` names it in the source format."""
        try:
            value = obj[key]
        except (KeyError, IndexError, TypeError):
            raise self.error(field, f"missing; expected {describe(kind)}") from None
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise self.error(field, f"expected {describe(kind)}, got {type(value).__name__}")
        return value

    def json(self, text: str, field: str) -> Any:
        """Parse JSON text held in a field."""
        try:
            return json.loads(text)
        except (*JSON_ERRORS, TypeError) as e:
            raise self.error(field, f"expected JSON text ({json_problem(e)})") from None

    def arguments(self, value: Any, field: str) -> dict[str, Any]:
        """Call arguments given as an object or as JSON text of one."""
        if isinstance(value, str):
            value = self.json(value, field)
        if not isinstance(value, dict):
            raise self.error(field, f"expected a JSON object of arguments, got {type(value).__name__}")
        return value


def describe(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(KINDS.get(k, k.__name__) for k in kinds)


def json_problem(error: Exception) -> str:
    """What is wrong with JSON text that did not decode."""
    return "nested deeper than Python's JSON parser goes" if isinstance(error, RecursionError) else str(error)


def deepest_line(text: str) -> int:
    """The line where brackets nest deepest, strings skipped: where a too-deeply nested document goes wrong."""
    depth = deepest = 0
    line = found = 1
    for match in re.finditer(r'"(?:[^"\\\n]|\\.)*"|[\[\]{}\n]', text):
        token = match.group()
        if token == "\n":
            line += 1
        elif token in "[{":
            depth += 1
            if depth > deepest:
                deepest, found = depth, line
        elif token in "]}":
            depth -= 1
    return found


def load_json(path: str | Path) -> Any:
    """A whole-file JSON document; a syntax error names its line."""
    text = read_text(path)
    try:
        return json.loads(text)
    except JSON_ERRORS as e:
        line = deepest_line(text) if isinstance(e, RecursionError) else getattr(e, "lineno", "?")
        raise RecordError(str(path), f"line {line}", "<json>", f"invalid JSON ({json_problem(e)})") from None


def iter_jsonl(path: str | Path) -> Iterator[tuple[int, Any]]:
    """(line number, object) for each non-blank line of a JSON Lines file."""
    for number, line in enumerate(read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            yield number, json.loads(line)
        except JSON_ERRORS as e:
            raise RecordError(str(path), f"line {number}", "<json>", f"invalid JSON ({json_problem(e)})") from None


def load_records(path: str | Path) -> Iterator[tuple[str, Any]]:
    """(position, object) from a JSON list or a JSON Lines file, whichever the file holds."""
    if read_text(path).lstrip().startswith("["):
        data = load_json(path)
        yield from ((str(i), item) for i, item in enumerate(data))
    else:
        yield from ((f"line {n}", item) for n, item in iter_jsonl(path))


def record_at(path: Path, position: str, record: Any) -> At:
    """Where a record is: its own `id` where it has one, else `<file stem>/<position>`."""
    record_id = record.get("id") if isinstance(record, dict) else None
    if isinstance(record_id, (str, int)) and record_id != "":
        return At(str(path), str(record_id))
    return At(str(path), f"{path.stem}/{position.removeprefix('line ')}")


def read_text(path: str | Path) -> str:
    """The file's text; bytes that are not UTF-8 are named by line and column."""
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise RecordError(str(path), "<file>", "<file>", f"cannot read the file ({e})") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        before = data[: e.start]
        line, column = before.count(b"\n") + 1, e.start - (before.rfind(b"\n") + 1) + 1
        problem = f"not UTF-8: byte 0x{data[e.start]:02x}, byte {column} of the line ({e.reason}); save it as UTF-8"
        raise RecordError(str(path), f"line {line}", "<text>", problem) from None
    return text.replace("\r\n", "\n").replace("\r", "\n")  # newlines as text mode reads them


def normalise_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """A parameter schema with source type names mapped to JSON schema names, recursively."""
    out = dict(schema)
    if isinstance(out.get("type"), str):
        normal = type_schema(out["type"])
        out["type"] = normal["type"]
        if "items" in normal:
            out.setdefault("items", normal["items"])
    if isinstance(out.get("properties"), dict):
        out["properties"] = {k: normalise_schema(v) if isinstance(v, dict) else v for k, v in out["properties"].items()}
    if isinstance(out.get("items"), dict):
        out["items"] = normalise_schema(out["items"])
    return out


def type_schema(name: str) -> dict[str, Any]:
    """`{"type": ...}` for a source type name; `List[str]` gives an array of strings."""
    generic = GENERIC.fullmatch(name.strip())
    if generic:
        return {"type": "array", "items": type_schema(generic.group(1))}
    return {"type": TYPE_NAMES.get(name, name)}


def object_schema(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": list(required)}


def make_tool(spec: Any, at: At, field: str) -> Tool:
    """A tool from an OpenAI-style `{name, description, parameters}` object, its schema normalised."""
    tool = tool_from_dict(spec, at.error, field)
    return Tool(tool.name, tool.description, normalise_schema({"type": "object", "properties": {}, **tool.parameters}))


class UniqueIds:
    """Source ids made unique within a file: a repeated id gets `#2`, `#3`, ... in file order."""

    def __init__(self) -> None:
        self.seen: dict[str, int] = {}

    def __call__(self, base: str) -> str:
        count = self.seen[base] = self.seen.get(base, 0) + 1
        return base if count == 1 else f"{base}#{count}"
