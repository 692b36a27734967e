"""`seal_tools`: Seal-Tools `{id, query, calling: [{api, parameters, responses}]}` lines.

Schemas come from `tool.jsonl` beside the file (`{api_name, api_description, parameters:
{name: {type, description}}, required}`); a record is offered the APIs it calls, in order.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tlkit.data.readers._common import At, iter_jsonl, normalise_schema, object_schema
from tlkit.records import Message, RecordError, Tool, ToolCall, Trajectory


def read_seal_tools(path: str | Path) -> Iterator[Trajectory]:
    """One record per line: the user query, then one assistant turn with every call."""
    path = Path(path)
    tools_path = path.parent / "tool.jsonl"
    if not tools_path.exists():
        raise RecordError(str(path), "<file>", "calling[].api", f"expected the API schemas in {tools_path}")
    tools = read_tools(tools_path)
    for number, record in iter_jsonl(path):
        at = At(str(path), f"line {number}")
        record_id = at.get(record, "id", str, "id")
        at = At(str(path), f"{record_id} (line {number})")
        query = at.get(record, "query", str, "query")
        calls, offered = [], {}
        for i, call in enumerate(at.get(record, "calling", list, "calling")):
            name = at.get(call, "api", str, f"calling[{i}].api")
            if name not in tools:
                raise at.error(f"calling[{i}].api", f"API {name!r} is not in {tools_path.name}")
            calls.append(ToolCall(name, at.get(call, "parameters", dict, f"calling[{i}].parameters")))
            offered.setdefault(name, tools[name])
        messages = (Message("user", query), Message("assistant", "", tuple(calls)))
        yield Trajectory(record_id, tuple(offered.values()), messages)


def read_tools(path: Path) -> dict[str, Tool]:
    """`api_name` -> Tool, from `tool.jsonl`."""
    tools = {}
    for number, spec in iter_jsonl(path):
        at = At(str(path), f"line {number}")
        name = at.get(spec, "api_name", str, "api_name")
        tools[name] = make_seal_tool(spec, At(str(path), f"{name} (line {number})"))
    return tools


def make_seal_tool(spec: dict[str, Any], at: At) -> Tool:
    parameters = at.get(spec, "parameters", dict, "parameters")
    for name in parameters:
        at.get(parameters, name, dict, f"parameters.{name}")
    required = spec.get("required") or []
    if not isinstance(required, list):
        raise at.error("required", "expected a list of parameter names")
    description = at.get(spec, "api_description", str, "api_description")
    return Tool(spec["api_name"], description, normalise_schema(object_schema(parameters, required)))
