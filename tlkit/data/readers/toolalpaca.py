"""`toolalpaca`: the ToolAlpaca evaluation sets (`eval_simulated.json`, `eval_real.json`).

A JSON list of API objects. `Function_Description` maps each function to text with a
`Parameters: {json}` line whose values read "Required. string. What it is."; `Instructions` and
`Golden_Answers` run in parallel, one call sequence `[{Action, Action_Input (JSON text)}]` per
instruction. One record per instruction, id `<API Name>/<index>`: the instruction, then each gold
call as its own assistant turn (the set has no tool replies); `meta["golden_answers"]` holds the
sequence as `[{name, arguments}]`.

The gold is reference text for a judge, not always JSON: `${x from f}` placeholders (a value taken
from an earlier step) are read as strings, and the 5 inputs that still do not parse are kept as
`{name, arguments: None, raw_arguments}` in meta, the assistant turns stopping before them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tlkit.data.readers._common import JSON_ERRORS, At, json_problem, load_json, object_schema, type_schema
from tlkit.records import Message, Tool, ToolCall, Trajectory

PARAMETERS_LINE = re.compile(r"^Parameters:[ \t]*", re.MULTILINE)
PLACEHOLDER = re.compile(r'"?\$\{[^{}"]*\}"?')
ARRAY = re.compile(r"Array\[(.*)\]")


def read_toolalpaca(path: str | Path) -> Iterator[Trajectory]:
    """One record per instruction, with its golden call sequence."""
    for api, at, tools in api_objects(path):
        instructions = at.get(api, "Instructions", list, "Instructions")
        answers = at.get(api, "Golden_Answers", list, "Golden_Answers")
        if len(answers) != len(instructions):
            raise at.error("Golden_Answers", f"expected one per instruction ({len(instructions)}), got {len(answers)}")
        for i in range(len(instructions)):
            record = At(at.source, f"{at.record}/{i}")
            messages = [Message("user", record.get(instructions, i, str, f"Instructions[{i}]"))]
            sequence = record.get(answers, i, list, f"Golden_Answers[{i}]")
            steps = [golden_step(step, record, f"Golden_Answers[{i}][{k}]") for k, step in enumerate(sequence)]
            for step in steps:
                if step["arguments"] is None:
                    break
                messages.append(Message("assistant", "", (ToolCall(step["name"], step["arguments"]),)))
            yield Trajectory(record.record, tools, tuple(messages), {"golden_answers": steps})


def api_objects(path: str | Path) -> Iterator[tuple[dict[str, Any], At, tuple[Tool, ...]]]:
    """(API object, its location named by `Name`, its tools) for each API of the file."""
    data = load_json(path)
    if not isinstance(data, list):
        raise At(str(path), "<file>").error("<root>", "expected a JSON list of API objects")
    for index, api in enumerate(data):
        name = At(str(path), f"API {index}").get(api, "Name", str, "Name")
        at = At(str(path), name)
        descriptions = at.get(api, "Function_Description", dict, "Function_Description")
        # `components` holds shared output schemas (`#Name: Object{...}`), not a function.
        fields = {f: f"Function_Description.{f}" for f in descriptions if f != "components"}
        tools = tuple(parse_function(f, at.get(descriptions, f, str, where), at, where) for f, where in fields.items())
        yield api, at, tools


def parse_function(name: str, text: str, at: At, field: str) -> Tool:
    """A tool from "description\\nParameters: {json}\\nOutput: ..."; the rest stays as description."""
    match = PARAMETERS_LINE.search(text)
    if match is None:
        raise at.error(field, "expected a 'Parameters: {...}' line")
    try:
        parameters, end = json.JSONDecoder().raw_decode(text, match.end())
    except JSON_ERRORS as e:
        raise at.error(f"{field}.Parameters", f"expected a JSON object ({json_problem(e)})") from None
    if not isinstance(parameters, dict):
        raise at.error(f"{field}.Parameters", "expected a JSON object")
    properties, required = {}, []
    for parameter in parameters:
        schema, is_required = parse_parameter(at.get(parameters, parameter, str, f"{field}.Parameters.{parameter}"))
        properties[parameter] = schema
        if is_required:
            required.append(parameter)
    description = (text[: match.start()] + text[end:]).strip()
    return Tool(name, description, object_schema(properties, required))


def parse_parameter(text: str) -> tuple[dict[str, Any], bool]:
    """"Required. integer. The page." -> ({"type": "integer", "description": "The page."}, True)."""
    required = text.startswith("Required.")
    type_text, description = split_type(text.removeprefix("Required.").strip())
    return {**alpaca_type(type_text), "description": description}, required


def split_type(text: str) -> tuple[str, str]:
    """Split at the first '.' outside brackets: `Array[Object{a, b}]. Items.`."""
    depth = 0
    for i, char in enumerate(text):
        depth += (char in "[{(") - (char in "]})")
        if char == "." and depth == 0:
            return text[:i].strip(), text[i + 1 :].strip()
    return text.strip(), ""


def alpaca_type(text: str) -> dict[str, Any]:
    """`string`, `integer`, `Object{...}`, `Array[string]` -> a JSON schema type."""
    array = ARRAY.fullmatch(text)
    if array:
        return {"type": "array", "items": alpaca_type(array.group(1))}
    return {"type": "object"} if text.startswith("Object") else type_schema(text)


def golden_step(step: Any, at: At, field: str) -> dict[str, Any]:
    """`{Action, Action_Input}` -> `{name, arguments}` (arguments None, plus raw text, if unreadable)."""
    name = at.get(step, "Action", str, f"{field}.Action")
    text = at.get(step, "Action_Input", str, f"{field}.Action_Input")
    for candidate in (text, PLACEHOLDER.sub(lambda m: json.dumps(m.group(0).strip('"')), text)):
        try:
            arguments = json.loads(candidate)
        except JSON_ERRORS:
            continue
        if isinstance(arguments, dict):
            return {"name": name, "arguments": arguments}
    return {"name": name, "arguments": None, "raw_arguments": text}
