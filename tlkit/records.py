"""The canonical trajectory record that every reader produces and every later stage reads.

A record is plain data (JSON in, JSON out); `Trajectory.from_dict` validates it and raises a
`RecordError` that names the file, the record and the field when something is off.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

ROLES = ("system", "user", "assistant", "tool")


class RecordError(ValueError):
    """A record that cannot be read, located by file, record and field."""

    def __init__(self, source: str, record: str | int, field: str, problem: str):
        self.source, self.record, self.field, self.problem = source, record, field, problem
        super().__init__(f"{source}: record {record}: field '{field}': {problem}")


@dataclass(frozen=True)
class ToolCall:
    name: str
    arguments: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Tool:
    name: str
    description: str = ""
    parameters: dict[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})

    @property
    def parameter_names(self) -> list[str]:
        return list((self.parameters.get("properties") or {}).keys())


def tool_from_dict(spec: Any, fail: Callable[[str, str], RecordError], where: str) -> Tool:
    """A tool from a `{name, description, parameters}` object (canonical records and the readers of
    OpenAI-style schemas); `fail(field, problem)` makes the error, `where` names the object."""
    if not isinstance(spec, dict):
        raise fail(where, "expected an object with 'name', 'description', 'parameters'")
    name = spec.get("name")
    if not isinstance(name, str) or not name:
        got = "missing" if name is None else f"got {name!r}" if isinstance(name, str) else f"got {type(name).__name__}"
        raise fail(f"{where}.name", f"expected a non-empty string ({got})")
    description = spec.get("description") or ""
    if not isinstance(description, str):
        raise fail(f"{where}.description", f"expected a string, got {type(description).__name__}")
    parameters = spec.get("parameters") or {"type": "object", "properties": {}}
    if not isinstance(parameters, dict) or not isinstance(parameters.get("properties", {}), dict):
        raise fail(f"{where}.parameters", "expected a JSON schema object with 'properties'")
    return Tool(name, description, parameters)


@dataclass(frozen=True)
class Message:
    role: str
    content: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    # Tool messages only: the source format's own verdict (True/False) where it has a structured
    # error field; None leaves the decision to MAE's patterns.
    error: bool | None = None
    # Assistant messages only: why this turn gets no loss (set by MAE, `tlkit.mae.mark_untrained`); None: trained.
    untrained: str | None = None


@dataclass(frozen=True)
class Trajectory:
    id: str
    tools: tuple[Tool, ...]
    messages: tuple[Message, ...]
    # Benchmark-specific gold details a scorer needs (BFCL's allowed values, RoTBench's
    # alternatives); training never reads it.
    meta: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        # asdict keeps tuples; plain data (what from_dict reads back) has lists.
        out["tools"], out["messages"] = list(out["tools"]), list(out["messages"])
        for message in out["messages"]:
            message["tool_calls"] = list(message["tool_calls"])
            for key in ("error", "untrained"):
                if message[key] is None:
                    del message[key]
            if not message["tool_calls"]:
                del message["tool_calls"]
        if not out["meta"]:
            del out["meta"]
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False)

    @classmethod
    def from_dict(cls, data: Any, source: str = "<memory>", record: str | int = "?") -> Trajectory:
        """Validate a canonical record; errors name `source`, `record` and the field."""

        def fail(where: str, problem: str) -> RecordError:
            return RecordError(source, record, where, problem)

        if not isinstance(data, dict):
            raise fail("<record>", f"expected a JSON object, got {type(data).__name__}")
        record_id = data.get("id", record)
        if not isinstance(record_id, (str, int)) or record_id == "":
            raise fail("id", "expected a non-empty string")
        record = str(record_id)

        tools = data.get("tools", [])
        if not isinstance(tools, list):
            raise fail("tools", "expected a list of tool schemas")
        parsed_tools = [tool_from_dict(tool, fail, f"tools[{i}]") for i, tool in enumerate(tools)]

        messages = data.get("messages")
        if not isinstance(messages, list) or not messages:
            raise fail("messages", "expected a non-empty list of messages")
        parsed_messages = []
        for i, message in enumerate(messages):
            where = f"messages[{i}]"
            if not isinstance(message, dict):
                raise fail(where, "expected an object with 'role' and 'content'")
            role = message.get("role")
            if role not in ROLES:
                raise fail(f"{where}.role", f"expected one of {', '.join(ROLES)}, got {role!r}")
            content = message.get("content") or ""
            if not isinstance(content, str):
                raise fail(f"{where}.content", f"expected a string, got {type(content).__name__}")
            calls = []
            for j, call in enumerate(message.get("tool_calls") or []):
                call_where = f"{where}.tool_calls[{j}]"
                if role != "assistant":
                    raise fail(call_where, f"only assistant messages call tools, not {role!r}")
                if not isinstance(call, dict) or not isinstance(call.get("name"), str) or not call["name"]:
                    raise fail(f"{call_where}.name", "expected a non-empty string")
                arguments = call.get("arguments", {})
                if not isinstance(arguments, dict):
                    raise fail(f"{call_where}.arguments", "expected an object of argument values")
                calls.append(ToolCall(call["name"], arguments))
            error = message.get("error")
            if error is not None and not isinstance(error, bool):
                raise fail(f"{where}.error", "expected true, false or null")
            untrained = message.get("untrained")
            if untrained is not None and (role != "assistant" or not isinstance(untrained, str)):
                raise fail(f"{where}.untrained", "expected a reason (a string) on an assistant message, or null")
            parsed_messages.append(Message(role, content, tuple(calls), error, untrained))

        meta = data.get("meta") or {}
        if not isinstance(meta, dict):
            raise fail("meta", "expected an object")
        return cls(record, tuple(parsed_tools), tuple(parsed_messages), meta)

    @classmethod
    def from_json(cls, text: str) -> Trajectory:
        return cls.from_dict(json.loads(text))


def target_message_index(trajectory: Trajectory) -> int | None:
    """The turn a record is scored on: its last assistant turn with tool calls."""
    for i in range(len(trajectory.messages) - 1, -1, -1):
        if trajectory.messages[i].role == "assistant" and trajectory.messages[i].tool_calls:
            return i
    return None


def gold_calls(trajectory: Trajectory) -> tuple[ToolCall, ...]:
    """The calls of the turn a record is scored on; () where no call is right (BFCL's irrelevance)."""
    index = target_message_index(trajectory)
    return () if index is None else trajectory.messages[index].tool_calls


def check_tools(trajectory: Trajectory, source: str) -> Trajectory:
    """The trajectory, if its tools have distinct names and each `required` name is among its `properties`.

    Rules for canonical files: a benchmark's reader may pass on what the benchmark holds (RoTBench
    offers some tools twice under one name), so `from_dict`, which also reads cached records back,
    does not check them.
    """
    first: dict[str, int] = {}
    for i, tool in enumerate(trajectory.tools):
        if tool.name in first:
            problem = f"{tool.name!r} repeats the name of tools[{first[tool.name]}]; each tool needs its own name"
            raise RecordError(source, trajectory.id, f"tools[{i}].name", problem)
        first[tool.name] = i
        required = tool.parameters.get("required", [])
        where = f"tools[{i}].parameters.required"
        if not isinstance(required, list) or not all(isinstance(name, str) for name in required):
            raise RecordError(source, trajectory.id, where, "expected a list of parameter names")
        unknown = [name for name in required if name not in tool.parameter_names]
        if unknown:
            problem = f"{unknown[0]!r} is not among the parameters in 'properties' ({', '.join(tool.parameter_names)})"
            raise RecordError(source, trajectory.id, where, problem)
    return trajectory
