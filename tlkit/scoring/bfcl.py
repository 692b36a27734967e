"""BFCL v3's AST checker for one prediction (simple, multiple, parallel, parallel_multiple,
irrelevance), as pure functions, by the rules docs/metrics.md states ("BFCL v3's AST rules", from the
scoring notes of the data tlkit was built with). Where they leave a point open, the docstrings say how
it is read here; where BFCL's own checker differs from them, the docstring says so.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from tlkit.records import ToolCall

OK = ""
# Failure reasons start with one of these codes, then ": " and the detail.
UNDECODABLE, WRONG_COUNT, NO_SCHEMA, WRONG_NAME = "undecodable", "wrong_count", "no_schema", "wrong_func_name"
MISSING_REQUIRED, UNEXPECTED_PARAM, TYPE_ERROR = "missing_required", "unexpected_param", "type_error"
VALUE_ERROR, MISSING_PARAM, NO_MATCH, IRRELEVANCE_CALL = "value_error", "missing_param", "no_match", "irrelevance_call"

_PUNCTUATION = re.compile(r"[ ,./\-_*^]")


def normalize_string(text: str) -> str:
    """BFCL's string normalisation: drop spaces and `,./-_*^`, lower-case, read `'` as `"`."""
    return _PUNCTUATION.sub("", text).lower().replace("'", '"')


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# BFCL schema type -> does a Python value have it. An int is accepted for a float, a tuple for a list.
_TYPE_CHECKS = {
    "integer": _is_int,
    "float": lambda v: _is_int(v) or isinstance(v, float),
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "array": lambda v: isinstance(v, (list, tuple)),
    "tuple": lambda v: isinstance(v, (list, tuple)),
    "dict": lambda v: isinstance(v, dict),
    "any": lambda v: True,
}


def _like_gold(value: Any, allowed: list) -> bool:
    """The value has the exact type of the first non-"" allowed value (BFCL's "variable" escape)."""
    gold = next((a for a in allowed if a != ""), "")
    return gold != "" and type(value) is type(gold)


def _type_ok(value: Any, allowed: list, schema: dict) -> bool:
    """The value has the schema's type, or the type the gold's allowed values have.

    The second way is BFCL's "variable" escape: some gold values disagree with their own schema
    (simple_307 allows `True` for a string, parallel_152 `None` for a float, parallel_multiple_21
    the string "data['sales']" for an array, parallel_multiple_94 strings for integer items).
    Array items are checked one level deep, against the items' type or the allowed lists' item
    types. An unknown type name is not checked (BFCL v3 uses only the names in `_TYPE_CHECKS`).
    """
    kind = schema.get("type")
    if not _TYPE_CHECKS.get(kind, _TYPE_CHECKS["any"])(value):
        return _like_gold(value, allowed)
    item_kind = (schema.get("items") or {}).get("type") if kind in ("array", "tuple") else None
    if item_kind is None:
        return True
    item_check = _TYPE_CHECKS.get(item_kind, _TYPE_CHECKS["any"])
    gold_lists = [a for a in allowed if isinstance(a, list)]
    return all(item_check(item) or any(_like_gold(item, a) for a in gold_lists) for item in value)


def _normalized(value: Any) -> Any:
    """Strings normalised; a list or tuple becomes a list with its string items normalised."""
    if isinstance(value, str):
        return normalize_string(value)
    if isinstance(value, (list, tuple)):
        return [normalize_string(v) if isinstance(v, str) else v for v in value]
    return value


def _same(value: Any, allowed: Any) -> bool:
    """Equality after normalisation; a bool never equals a number (BFCL's type check keeps them apart)."""
    if isinstance(value, bool) != isinstance(allowed, bool) or isinstance(value, str) != isinstance(allowed, str):
        return False
    return _normalized(value) == _normalized(allowed)


def _dict_ok(value: dict, allowed: Any) -> bool:
    """A dict against one allowed `{key: [allowed values]}`: no unknown key, values allowed, no required key missing."""
    if not isinstance(allowed, dict) or not isinstance(value, dict):
        return False
    if any(key not in allowed or not any(_same(v, a) for a in allowed[key]) for key, v in value.items()):
        return False
    return all(key in value or "" in options for key, options in allowed.items())


def _value_ok(value: Any, allowed: list, schema: dict) -> bool:
    """The value is one of the allowed values: dicts and lists of dicts key by key, lists in order.

    An explicit "" passes where "" is allowed, as in BFCL (the string compares equal to it).
    """
    kind = schema.get("type")
    item_kind = (schema.get("items") or {}).get("type")
    if kind == "dict" and isinstance(value, dict):
        return any(_dict_ok(value, a) for a in allowed)
    if kind in ("array", "tuple") and item_kind == "dict" and isinstance(value, (list, tuple)):
        return any(isinstance(a, list) and len(a) == len(value) and all(map(_dict_ok, value, a)) for a in allowed)
    return any(_same(value, a) for a in allowed)


def function_schema(functions: Sequence[dict], gold_name: str) -> dict | None:
    """The offered function the gold call names; with one function offered, that one.

    BFCL's simple checker reads the only function offered, whatever the gold calls it
    (simple_363's gold says `find_closest`, the function is `restaurant_search.find_closest`).
    """
    named = [f for f in functions if f.get("name") == gold_name]
    return named[0] if named else (functions[0] if len(functions) == 1 else None)


def check_bfcl_call(call: ToolCall, gold: dict, functions: Sequence[dict]) -> str:
    """One call against one gold entry `{name: {param: [allowed values]}}`; OK ("") or the failure reason."""
    ((gold_name, allowed),) = gold.items()
    schema = function_schema(functions, gold_name)
    if schema is None:
        return f"{NO_SCHEMA}: no offered function is named {gold_name!r}"
    if call.name != schema["name"]:
        return f"{WRONG_NAME}: expected {schema['name']!r}, got {call.name!r}"
    properties = schema.get("parameters", {}).get("properties", {})
    for name in schema.get("parameters", {}).get("required", []):
        if name not in call.arguments:
            return f"{MISSING_REQUIRED}: {name!r}"
    for name, value in call.arguments.items():
        if name not in properties or name not in allowed:
            return f"{UNEXPECTED_PARAM}: {name!r}"
        if not _type_ok(value, allowed[name], properties[name]):
            return f"{TYPE_ERROR}: {name!r} expects {properties[name].get('type')}, got {value!r}"
        if not _value_ok(value, allowed[name], properties[name]):
            return f"{VALUE_ERROR}: {name!r} = {value!r}, expected one of {allowed[name]!r}"
    for name, options in allowed.items():
        if name not in call.arguments and "" not in options:
            return f"{MISSING_PARAM}: {name!r} may not be omitted"
    return OK


def perfect_matching(fits: list[list[bool]]) -> list[int | None]:
    """For each gold i, the prediction j it is matched to (`fits[i][j]`), maximising the matched count.

    Kuhn's augmenting paths: unlike greedy first-fit, it never strands a gold call that another
    assignment could have served.
    """
    owner: dict[int, int] = {}  # prediction -> gold

    def augment(i: int, seen: set[int]) -> bool:
        for j, fit in enumerate(fits[i]):
            if fit and j not in seen:
                seen.add(j)
                if j not in owner or augment(owner[j], seen):
                    owner[j] = i
                    return True
        return False

    for i in range(len(fits)):
        augment(i, set())
    matched = {i: j for j, i in owner.items()}
    return [matched.get(i) for i in range(len(fits))]


def check_bfcl(
    predicted: Sequence[ToolCall] | None, possible_answer: list[dict], functions: list[dict], category: str
) -> tuple[bool, str]:
    """BFCL v3 AST check of one prediction: (passed, reason); reason is "" on a pass.

    `predicted` is `parse_calls` output (None: not decodable), `possible_answer` the record's
    `ground_truth`, `functions` its `function` list, `category` e.g. "simple" or "parallel_multiple"
    (a name containing "irrelevance", "parallel", "multiple" or "simple").
    Read here:
    - irrelevance: passes with no call, and text that does not decode into calls is no call
      (BFCL does the same; "undecodable is wrong" applies where a call is due);
    - a parameter whose allowed values are all "" may be omitted; a gold parameter without ""
      must be present (BFCL's "optional parameter not provided" check);
    - types as in BFCL: the schema's type (int accepted for float, also inside arrays; a tuple
      or a list for array and tuple; "any" accepts any value) or, BFCL's "variable" escape which
      the stated rules do not mention, the type of the allowed values (four gold answers need it);
    - string normalisation also applies to strings inside lists nested in dict values;
    - parallel: a perfect matching between calls and gold entries (not BFCL's greedy first fit).
    """
    if "irrelevance" in category:
        if predicted:
            return False, f"{IRRELEVANCE_CALL}: {len(predicted)} call(s) where none is due"
        return True, OK
    if not any(kind in category for kind in ("parallel", "multiple", "simple")):
        raise ValueError(
            f"unknown BFCL category {category!r}: expected simple, multiple, parallel, parallel_multiple or irrelevance"
        )
    if predicted is None:
        return False, f"{UNDECODABLE}: the output is not a call"
    if "parallel" not in category:
        if len(predicted) != 1:
            return False, f"{WRONG_COUNT}: expected exactly one call, got {len(predicted)}"
        reason = check_bfcl_call(predicted[0], possible_answer[0], functions)
        return reason == OK, reason
    if len(predicted) != len(possible_answer):
        return False, f"{WRONG_COUNT}: expected {len(possible_answer)} calls, got {len(predicted)}"
    reasons = [[check_bfcl_call(call, gold, functions) for call in predicted] for gold in possible_answer]
    matching = perfect_matching([[reason == OK for reason in row] for row in reasons])
    for i, j in enumerate(matching):
        if j is None:
            ((name, _),) = possible_answer[i].items()
            # Explain with a left-over prediction, a same-named one if any: that is the call meant for it.
            left = [k for k in range(len(predicted)) if k not in matching]
            meant = min(left, key=lambda k: predicted[k].name != name)
            return (
                False,
                f"{NO_MATCH}: gold call {i} ({name}) matches no prediction; prediction {meant}: {reasons[i][meant]}",
            )
    return True, OK
