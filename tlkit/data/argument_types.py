"""Call arguments normalised to the type their schema declares, where that loses nothing.

Some sources write every value as text (56 of the 58 Seal-Tools arguments declared integer or
number in the shipped dev subset are strings: `age: '63'`, `speed: '19.0'`), which teaches a model
to write `user_id='7890'` for an integer. A string becomes its declared type only when it is JSON
text of that type and, for a scalar, JSON writes the result back as the very same text: `'63'` ->
63, `'19.0'` -> 19.0, `'true'` -> True; `'007'`, `'1e5'`, `'True'`, `'NaN'` stay as written
(counted as kept). For a converted integer or number `str(new) == old`, so a scorer that compares
`str()` of values (Seal-Tools' own) gives the same verdicts. Lists and objects are walked where
the schema declares their items or properties. Only calls change; `meta` (BFCL's allowed values,
RoTBench's alternatives) is never touched.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from tlkit.records import Trajectory

KINDS = {"integer": (int,), "number": (int, float), "boolean": (bool,), "array": (list,), "object": (dict,)}


def _refuse(constant: str) -> None:
    raise ValueError(f"{constant} is not JSON")


def parse_as(text: str, kind: str) -> tuple[bool, Any]:
    """(True, the value) where `text` is lossless JSON text of a `kind` value, else (False, None)."""
    try:
        value = json.loads(text, parse_constant=_refuse)
    except (ValueError, RecursionError):
        return False, None
    is_kind = isinstance(value, KINDS[kind]) and (kind == "boolean" or not isinstance(value, bool))
    # a container's spacing is formatting; a scalar must write back as the same text ('007' != '7')
    if not is_kind or (kind not in ("array", "object") and json.dumps(value) != text):
        return False, None
    return True, value


def normalise_value(value: Any, schema: Any) -> tuple[Any, list[str]]:
    """`value` in its declared type where lossless, and one outcome per string tried (`integer converted`, ...)."""
    if not isinstance(schema, dict):
        return value, []
    kind, outcomes = schema.get("type"), []
    if isinstance(value, str) and isinstance(kind, str) and kind in KINDS:  # a list of types is left alone
        converted, parsed = parse_as(value, kind)
        if not converted:
            return value, [f"{kind} kept"]
        value, outcomes = parsed, [f"{kind} converted"]
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        pairs = [normalise_value(item, schema["items"]) for item in value]
        value = [v for v, _ in pairs]
        outcomes += [o for _, found in pairs for o in found]
    if isinstance(value, dict) and isinstance(schema.get("properties"), dict):
        pairs = {key: normalise_value(item, schema["properties"].get(key)) for key, item in value.items()}
        value = {key: v for key, (v, _) in pairs.items()}
        outcomes += [o for _, found in pairs.values() for o in found]
    return value, outcomes


def normalise_calls(trajectory: Trajectory) -> tuple[Trajectory, list[str]]:
    """The trajectory with every call's arguments normalised against its tool's schema, and the outcomes."""
    schemas = {tool.name: tool.parameters for tool in trajectory.tools}
    messages, outcomes = [], []
    for message in trajectory.messages:
        calls = []
        for call in message.tool_calls:
            arguments, found = normalise_value(call.arguments, schemas.get(call.name))
            calls.append(replace(call, arguments=arguments))
            outcomes += found
        messages.append(replace(message, tool_calls=tuple(calls)))
    return replace(trajectory, messages=tuple(messages)), outcomes
