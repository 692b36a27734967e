"""`xlam`: Salesforce xLAM / APIGen function-calling data (xlam-function-calling-60k).

A JSON list (or JSON Lines) of `{id, query, tools, answers}`; `tools` is JSON text of
`[{name, description, parameters: {NAME: {type, description, default}}}]` with Python type names
(`str`, `List[int]`, ...; a parameter whose type ends in `, optional` is optional, every other one
required), `answers` JSON text of `[{name, arguments}]`, the calls that answer the query (several
for parallel calls; none for a query no tool answers). Records without an `id` are `<file stem>/<index>`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tlkit.data.readers._common import At, load_records, make_tool, object_schema, record_at, type_schema
from tlkit.records import Message, Tool, ToolCall, Trajectory

OPTIONAL = ", optional"


def read_xlam(path: str | Path) -> Iterator[Trajectory]:
    """One record per query: the user's query, then one assistant turn with every answer call."""
    path = Path(path)
    for position, record in load_records(path):
        at = record_at(path, position, record)
        query = at.get(record, "query", str, "query")
        specs = at.json(at.get(record, "tools", str, "tools"), "tools")
        answers = at.json(at.get(record, "answers", str, "answers"), "answers")
        if not isinstance(specs, list) or not isinstance(answers, list):
            raise at.error("tools" if not isinstance(specs, list) else "answers", "expected JSON text of a list")
        tools = tuple(make_xlam_tool(spec, at, f"tools[{i}]") for i, spec in enumerate(specs))
        calls = tuple(
            ToolCall(at.get(a, "name", str, f"answers[{i}].name"),
                     at.arguments(a.get("arguments") or {}, f"answers[{i}].arguments"))
            for i, a in enumerate(answers)
        )
        yield Trajectory(str(at.record), tools, (Message("user", query), Message("assistant", "", calls)))


def make_xlam_tool(spec: Any, at: At, field: str) -> Tool:
    """xLAM's flat `{NAME: {type, description, default}}` parameters as a JSON schema."""
    parameters = at.get(spec, "parameters", dict, f"{field}.parameters")
    properties, required = {}, []
    for name, param in parameters.items():
        kind = at.get(param, "type", str, f"{field}.parameters.{name}.type")
        optional = kind.endswith(OPTIONAL)
        properties[name] = {**type_schema(kind.removesuffix(OPTIONAL)), "description": param.get("description") or ""}
        if "default" in param:
            properties[name]["default"] = param["default"]
        if not optional:
            required.append(name)
    return make_tool({**spec, "parameters": object_schema(properties, required)}, at, field)
