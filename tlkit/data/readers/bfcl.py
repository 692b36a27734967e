"""`bfcl`: Berkeley Function-Calling Leaderboard v3 question files, gold from `possible_answer/`.

Each line is `{id, question: [[{role, content}, ...], ...], function: [schemas]}`; the gold file
of the same name holds `{id, ground_truth: [{function: {param: [allowed values]}}]}`, where `""`
among the allowed values means the parameter may be left out. The record ends with one assistant
turn that makes the gold calls with, for each parameter, the first allowed value that is not `""`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tlkit.data.readers._common import At, iter_jsonl, make_tool
from tlkit.records import Message, ToolCall, Trajectory

QUESTION_ROLES = ("system", "user", "assistant")


def read_bfcl(path: str | Path) -> Iterator[Trajectory]:
    """BFCL v3 questions; the gold calls end the record where a `possible_answer` file exists."""
    path = Path(path)
    gold_path = path.parent / "possible_answer" / path.name
    gold = read_gold(gold_path) if gold_path.exists() else None  # irrelevance has none: no call is right
    category = path.stem.removeprefix("BFCL_v3_")
    for number, record in iter_jsonl(path):
        at = At(str(path), f"line {number}")
        record_id = at.get(record, "id", str, "id")
        at = At(str(path), record_id)
        functions = at.get(record, "function", list, "function")
        tools = tuple(make_tool(spec, at, f"function[{i}]") for i, spec in enumerate(functions))
        messages = question_messages(at.get(record, "question", list, "question"), at)
        meta: dict[str, Any] = {"category": category}
        if gold is not None:
            gold_at = At(str(gold_path), record_id)
            if record_id not in gold:
                raise gold_at.error("ground_truth", "no gold answer for this question id")
            ground_truth = gold[record_id]
            calls = tuple(gold_call(entry, gold_at, f"ground_truth[{i}]") for i, entry in enumerate(ground_truth))
            messages.append(Message("assistant", "", calls))
            meta["possible_answer"] = ground_truth
        yield Trajectory(record_id, tools, tuple(messages), meta)


def read_gold(path: Path) -> dict[str, list[Any]]:
    """Question id -> its `ground_truth` list."""
    gold = {}
    for number, record in iter_jsonl(path):
        at = At(str(path), f"line {number}")
        gold[at.get(record, "id", str, "id")] = at.get(record, "ground_truth", list, "ground_truth")
    return gold


def question_messages(turns: list[Any], at: At) -> list[Message]:
    """The question's turns (each a list of `{role, content}`), flattened."""
    messages = []
    for i in range(len(turns)):
        for j, message in enumerate(at.get(turns, i, list, f"question[{i}]")):
            where = f"question[{i}][{j}]"
            role = at.get(message, "role", str, f"{where}.role")
            if role not in QUESTION_ROLES:
                raise at.error(f"{where}.role", f"expected one of {', '.join(QUESTION_ROLES)}, got {role!r}")
            messages.append(Message(role, at.get(message, "content", str, f"{where}.content")))
    return messages


def gold_call(entry: Any, at: At, field: str) -> ToolCall:
    """`{function: {param: [allowed]}}` -> the call with each parameter's first usable value."""
    if not isinstance(entry, dict) or len(entry) != 1:
        raise at.error(field, "expected an object with exactly one function name")
    (name, params), = entry.items()
    if not isinstance(params, dict):
        raise at.error(f"{field}.{name}", "expected an object of parameter -> allowed values")
    arguments = {}
    for param, allowed in params.items():
        if not isinstance(allowed, list):
            raise at.error(f"{field}.{name}.{param}", "expected a list of allowed values")
        found, value = first_allowed(allowed)
        if found:
            arguments[param] = value
    return ToolCall(name, arguments)


def first_allowed(allowed: list[Any]) -> tuple[bool, Any]:
    """(True, the first allowed value that is not `""`), or (False, None) if there is none."""
    for value in allowed:
        if value != "":
            return True, resolve(value)
    return False, None


def resolve(value: Any) -> Any:
    """Nested dicts (and lists of dicts) list allowed values per key too: pick the first of each."""
    if isinstance(value, dict) and value and all(isinstance(v, list) for v in value.values()):
        chosen = {key: first_allowed(allowed) for key, allowed in value.items()}
        return {key: v for key, (found, v) in chosen.items() if found}
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        return [resolve(v) for v in value]
    return value
