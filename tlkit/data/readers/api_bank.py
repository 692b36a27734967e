"""`api_bank`: API-Bank dialogues (`lv1-lv2-samples/**/*.jsonl`), one trajectory per file.

Lines are `{role: User|AI, text}` or `{role: API, api_name, param_dict, result: {output,
exception, ...}}`; an API line becomes an assistant call and a tool message holding `result` as
JSON, with error = the `exception` is set. A dialogue is offered the APIs it calls (in order), with
schemas from `all_apis.csv` in the nearest ancestor folder, or else (no csv, or an API it lacks,
such as ToolSearcher) from the call's `param_dict` keys, typed string.
"""

from __future__ import annotations

import ast
import csv
import io
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tlkit.data.readers._common import At, iter_jsonl, normalise_schema, object_schema
from tlkit.records import Message, RecordError, Tool, ToolCall, Trajectory

SIGNATURE_PARAMETER = re.compile(r"(\w+)\s*:\s*([\w\[\], ]+?)\s*(?:,|\)|$)")


def read_api_bank(path: str | Path) -> Iterator[Trajectory]:
    """Dialogues from one file, or from every `*.jsonl` below a folder, sorted."""
    path = Path(path)
    catalogues: dict[Path, dict[str, Tool]] = {}  # each all_apis.csv read once per call
    for file in sorted(path.rglob("*.jsonl")) if path.is_dir() else [path]:
        trajectory = read_dialogue(file, catalogues)
        if trajectory is not None:
            yield trajectory


def read_dialogue(path: Path, catalogues: dict[Path, dict[str, Tool]]) -> Trajectory | None:
    at = At(str(path), f"{path.parent.name}/{path.stem}")
    messages: list[Message] = []
    called: dict[str, dict[str, None]] = {}  # API name -> the argument names its calls use
    for number, line in iter_jsonl(path):
        field = f"line {number}"
        role = at.get(line, "role", str, f"{field}.role")
        if role in ("User", "AI"):
            text = at.get(line, "text", str, f"{field}.text")
            messages.append(Message("user" if role == "User" else "assistant", text))
            continue
        if role != "API":
            raise at.error(f"{field}.role", f"expected User, AI or API, got {role!r}")
        name = at.get(line, "api_name", str, f"{field}.api_name")
        arguments = at.get(line, "param_dict", dict, f"{field}.param_dict")
        result = at.get(line, "result", dict, f"{field}.result")
        messages.append(Message("assistant", "", (ToolCall(name, arguments),)))
        messages.append(Message("tool", json.dumps(result, ensure_ascii=False), error=bool(result.get("exception"))))
        called.setdefault(name, {}).update(dict.fromkeys(arguments))
    if not messages:
        return None  # an empty file
    catalogue = find_catalogue(path.parent, catalogues)
    tools = tuple(catalogue.get(name) or param_tool(name, list(keys)) for name, keys in called.items())
    return Trajectory(str(at.record), tools, tuple(messages))


def param_tool(name: str, keys: list[str]) -> Tool:
    """A schema guessed from the calls: the argument names they use, typed string."""
    properties = {key: {"type": "string", "description": ""} for key in keys}
    return Tool(name, "", object_schema(properties, keys))


def find_catalogue(folder: Path, catalogues: dict[Path, dict[str, Tool]]) -> dict[str, Tool]:
    """The tools of `all_apis.csv` in `folder` or its nearest ancestor holding one; {} if none."""
    for candidate in (folder.resolve(), *folder.resolve().parents):
        csv_path = candidate / "all_apis.csv"
        if csv_path.is_file():
            if csv_path not in catalogues:
                catalogues[csv_path] = read_catalogue(csv_path)
            return catalogues[csv_path]
    return {}


def read_catalogue(path: Path) -> dict[str, Tool]:
    """Class name (`类名`) -> Tool. `api_info` is Python source (`description = ...`,
    `input_parameters = {...}`); where it does not hold a dict, the `input_parameters` signature
    column (`(image: str)`) gives names and types."""
    try:
        rows = list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"), newline="")))
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise RecordError(str(path), "<file>", "<csv>", f"cannot read the CSV ({e})") from None
    tools = {}
    for number, row in enumerate(rows, start=2):
        at = At(str(path), f"row {number}")
        name = at.get(row, "类名", str, "类名")
        info = literal_assignments(row.get("api_info") or "")
        parameters = info.get("input_parameters")
        if not isinstance(parameters, dict):
            signature = row.get("input_parameters") or ""
            parameters = {p: {"type": t.strip(), "description": ""} for p, t in SIGNATURE_PARAMETER.findall(signature)}
        description = info.get("description") if isinstance(info.get("description"), str) else ""
        properties = {p: s for p, s in parameters.items() if isinstance(s, dict)}
        # The signatures give no defaults: every parameter is required.
        tools[name] = Tool(name, description, normalise_schema(object_schema(properties, list(properties))))
    return tools


def literal_assignments(source: str) -> dict[str, Any]:
    """`name = <literal>` statements of a Python snippet; anything else is ignored."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return {}
    values = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            try:
                values[node.targets[0].id] = ast.literal_eval(node.value)
            except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
                continue
    return values
