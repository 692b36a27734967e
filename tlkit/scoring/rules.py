"""How an answer turn is judged against its gold: one rule, used by the reward, the metrics and `tlkit score`.

`judge(text, gold, tools, meta, data_format, call_format)` -> `Verdict(category, ts, pi, cf)`.
`ErrorCategoryReward.score` (PPO), `GenerationEvaluation` (validation, `tlkit test`, `tlkit
ablate`) and `tlkit score` all call it, so a number means the same on every path. The rule
follows the format the gold was read from:
- `bfcl`: BFCL v3's AST check (`check_bfcl_call` per call, the number BFCL reports). TS: the
  called names equal the gold functions' names as a multiset. PI: the calls can also be matched
  one-to-one to gold entries whose argument names they get right: no name outside the function's
  schema or the gold entry, none that the schema requires or the gold may not omit (no `""`
  allowed) left out. Irrelevance (no call is right): all three pass exactly when the output makes
  no call, and text that does not decode into calls is no call (BFCL's `relevance_file_runner`).
  BFCL decodes the whole output, so text before the calls is a format error.
- `rotbench`: RoTBench's own TS / PI / CF (`score_rotbench`, one call per output) against the
  record's acceptable answers (`meta["alternatives"]`); the category is the best one over them.
- any other format: per call, `call_levels` (same name; same argument names; every gold value
  matches) and `classify_call`; a thought may precede the calls (`parse_turn`).

Turns with several calls (`judge_calls`, for `bfcl` and the generic rule): predicted and gold
calls are matched one-to-one regardless of order. A level passes when the counts are equal and
some matching pairs every call with a gold call it passes at that level (so CF ⊆ PI ⊆ TS). A
missing or extra call is its own category, `missing_or_extra_call` (a name not on offer is still
a `tool_hallucination`); with equal counts the category is that of the worst pair, under the
matching whose worst pair is best. The reward is that category's reward (`ErrorCategoryReward`),
so only a turn whose every call is right earns +1. With no gold call (irrelevance), making no
call is right and any call is an extra one. The category always agrees with the levels
(`reconcile`): `correct` iff CF, `content_error` iff PI without CF.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from tlkit.calls import ParseFormat, parse_calls, parse_react, parse_turn
from tlkit.irm import Category, argument_category, classify_call, values_match
from tlkit.records import Tool, ToolCall
from tlkit.scoring.bfcl import OK, check_bfcl_call, function_schema, perfect_matching
from tlkit.scoring.rotbench import score_rotbench

Levels = tuple[bool, bool, bool]
WRONG: Levels = (False, False, False)
RANK = {category: i for i, category in enumerate(Category)}  # rule order: lower is worse
TOOL_LEVEL = {Category.FORMAT_ERROR, Category.TOOL_HALLUCINATION, Category.MISSING_OR_EXTRA_CALL, Category.WRONG_TOOL}
ARGUMENT_LEVEL = set(Category) - TOOL_LEVEL - {Category.CONTENT_ERROR, Category.CORRECT}
# Schema type names as tlkit's readers write them -> BFCL's own (its checker reads BFCL's).
BFCL_TYPES = {"number": "float", "object": "dict"}
BFCL_KINDS = ("irrelevance", "parallel", "multiple", "simple")


class Verdict(NamedTuple):
    """The error category of an answer turn and whether it passes TS, PI and CF."""

    category: Category
    ts: bool
    pi: bool
    cf: bool


class AnswerKeyError(ValueError):
    """A record's gold that a benchmark's rule cannot read; callers add the file and record."""

    def __init__(self, field: str, problem: str):
        self.field, self.problem = field, problem
        super().__init__(f"field '{field}': {problem}")


# ---------------------------------------------------------------------------------------------
# The multi-call rule


def has_matching(fits: list[list[bool]]) -> bool:
    """Every row (gold call) can be given its own column (predicted call) it fits."""
    return all(j is not None for j in perfect_matching(fits))


def best_worst_category(categories: list[list[Category]]) -> Category:
    """Over one-to-one matchings of a square table (gold x predicted), the best category the worst pair can have."""
    for category in reversed(Category):  # best first: the first threshold some matching meets
        if has_matching([[RANK[c] >= RANK[category] for c in row] for row in categories]):
            return category
    raise AssertionError("unreachable: every matching meets the lowest category")


def reconcile(category: Category, ts: bool, pi: bool, cf: bool) -> Category:
    """The category made consistent with the levels (which win): correct iff CF, content error iff PI only."""
    if cf:
        return Category.CORRECT
    if pi:
        return Category.CONTENT_ERROR
    if ts:
        return category if category in ARGUMENT_LEVEL else Category.REDUNDANT_OR_MISSING
    return category if category in TOOL_LEVEL else Category.WRONG_TOOL


def judge_calls(
    predicted: Sequence[ToolCall] | None, n_gold: int, tools: Sequence[Tool], pair: Callable[[int, int], Verdict]
) -> Verdict:
    """The multi-call rule (module docstring); `pair(i, j)` judges prediction j against gold call i."""
    if not predicted:
        return Verdict(Category.FORMAT_ERROR, *WRONG) if n_gold else Verdict(Category.CORRECT, True, True, True)
    if len(predicted) != n_gold:
        offered = {tool.name for tool in tools}
        unknown = any(call.name not in offered for call in predicted)
        return Verdict(Category.TOOL_HALLUCINATION if unknown else Category.MISSING_OR_EXTRA_CALL, *WRONG)
    pairs = [[pair(i, j) for j in range(len(predicted))] for i in range(n_gold)]
    ts, pi, cf = (has_matching([[verdict[level] for verdict in row] for row in pairs]) for level in (1, 2, 3))
    category = best_worst_category([[verdict.category for verdict in row] for row in pairs])
    return Verdict(reconcile(category, ts, pi, cf), ts, pi, cf)


# ---------------------------------------------------------------------------------------------
# The generic rule


def call_levels(call: ToolCall, gold: ToolCall, strict: bool = False) -> Levels:
    """(TS, PI, CF) of one call: same name; and same argument names; and every value matches."""
    ts = call.name == gold.name
    pi = ts and call.arguments.keys() == gold.arguments.keys()
    cf = pi and all(values_match(call.arguments[name], value, strict) for name, value in gold.arguments.items())
    return ts, pi, cf


def judge_generic(
    predicted: Sequence[ToolCall] | None, gold: Sequence[ToolCall], tools: Sequence[Tool], strict: bool = False
) -> Verdict:
    """`call_levels` and `classify_call` per pair, under the multi-call rule."""

    def pair(i: int, j: int) -> Verdict:
        call = predicted[j]
        return Verdict(classify_call([call], gold[i], tools, strict), *call_levels(call, gold[i], strict))

    return judge_calls(predicted, len(gold), tools, pair)


# ---------------------------------------------------------------------------------------------
# BFCL v3


def bfcl_functions(tools: Sequence[Tool]) -> list[dict[str, Any]]:
    """BFCL `function` entries for tlkit tools, with BFCL's type names (`float`, `dict`) restored."""

    def restore(schema: Any) -> Any:
        if not isinstance(schema, dict):
            return schema
        out = {key: restore(value) for key, value in schema.items() if key not in ("type", "properties")}
        if "type" in schema:
            out["type"] = BFCL_TYPES.get(schema["type"], schema["type"])
        if isinstance(schema.get("properties"), dict):
            out["properties"] = {name: restore(value) for name, value in schema["properties"].items()}
        return out

    return [{"name": t.name, "description": t.description, "parameters": restore(t.parameters)} for t in tools]


def bfcl_argument_category(call: ToolCall, entry: dict, schema: dict) -> Category | None:
    """Argument-name errors of a call against one gold entry (BFCL's notion of allowed names); None: names right."""
    ((_, allowed),) = entry.items()
    parameters = schema.get("parameters", {})
    defined, names = set(parameters.get("properties", {})), set(call.arguments)
    needed = set(parameters.get("required", [])) | {name for name, options in allowed.items() if "" not in options}
    return argument_category(names - defined, (names & defined) - set(allowed), needed - names)


def bfcl_answers(meta: dict) -> list[dict]:
    """The record's BFCL ground truth `[{function: {param: [allowed]}}]`; [] for irrelevance."""
    kind = meta.get("category")
    if not isinstance(kind, str) or not any(k in kind for k in BFCL_KINDS):
        raise AnswerKeyError(
            "meta.category", f"expected the BFCL category (simple, multiple, parallel, irrelevance, ...), got {kind!r}"
        )
    if "irrelevance" in kind:
        return []
    answers = meta.get("possible_answer")
    if not isinstance(answers, list) or not answers or not all(isinstance(a, dict) and len(a) == 1 for a in answers):
        raise AnswerKeyError("meta.possible_answer", "expected BFCL's ground_truth: [{function: {param: [allowed]}}]")
    return answers


def judge_bfcl(predicted: Sequence[ToolCall] | None, tools: Sequence[Tool], meta: dict) -> Verdict:
    """BFCL v3: CF is the AST check of each matched call, under the multi-call rule (module docstring)."""
    answers = bfcl_answers(meta)
    functions = bfcl_functions(tools)
    schemas = [function_schema(functions, next(iter(entry))) for entry in answers]

    def pair(i: int, j: int) -> Verdict:
        call, schema, entry = predicted[j], schemas[i], answers[i]
        if schema is None or call.name != schema["name"]:
            offered = any(f["name"] == call.name for f in functions)
            return Verdict(Category.WRONG_TOOL if offered else Category.TOOL_HALLUCINATION, *WRONG)
        category = bfcl_argument_category(call, entry, schema)
        if category is not None:
            return Verdict(category, True, False, False)
        if check_bfcl_call(call, entry, functions) != OK:
            return Verdict(Category.CONTENT_ERROR, True, True, False)
        return Verdict(Category.CORRECT, True, True, True)

    return judge_calls(predicted, len(answers), tools, pair)


# ---------------------------------------------------------------------------------------------
# RoTBench


def react_text(call: ToolCall) -> str:
    return f"Action: {call.name}\nAction Input: {json.dumps(call.arguments, ensure_ascii=False)}"


def rotbench_alternatives(gold: Sequence[ToolCall], meta: dict) -> list[ToolCall]:
    """The record's acceptable answers (`meta["alternatives"]`), else its gold calls."""
    alternatives = meta.get("alternatives")
    if alternatives is None:
        return list(gold)
    ok = isinstance(alternatives, list) and all(
        isinstance(a, dict) and isinstance(a.get("name"), str) and isinstance(a.get("arguments"), dict)
        for a in alternatives
    )
    if not ok:
        raise AnswerKeyError("meta.alternatives", 'expected a list of {"name": ..., "arguments": {...}}')
    return [ToolCall(a["name"], a["arguments"]) for a in alternatives]


def judge_rotbench(
    text: str, gold: Sequence[ToolCall], tools: Sequence[Tool], meta: dict, call_format: ParseFormat
) -> Verdict:
    """RoTBench's TS / PI / CF (one call per output); the category is the best over the acceptable answers."""
    alternatives = rotbench_alternatives(gold, meta)
    if call_format != "react":  # RoTBench reads ReAct text: rewrite the first call in it
        parsed = parse_calls(text, call_format)
        text = react_text(parsed[0]) if parsed else ""
    levels = score_rotbench(text, [react_text(a) for a in alternatives], tools)
    action = parse_react(text)
    if action is None or not isinstance(action[1], dict) or not action[1] or not alternatives:
        return Verdict(Category.FORMAT_ERROR, *levels)  # RoTBench: no JSON object, or an empty one, fails all three
    call = [ToolCall(*action)]
    category = max((classify_call(call, g, tools) for g in alternatives), key=RANK.__getitem__)
    return Verdict(reconcile(category, *levels), *levels)


# ---------------------------------------------------------------------------------------------
# Any answer


def judge(
    text: str,
    gold: Sequence[ToolCall],
    tools: Sequence[Tool],
    meta: dict,
    data_format: str = "tlkit",
    call_format: ParseFormat = "python",
    strict: bool = False,
) -> Verdict:
    """The verdict on a model's raw answer `text` by the rule of `data_format` (the reader the gold came from).

    `gold` is the target turn's calls (empty where no call is right), `meta` the record's (BFCL's
    ground truth, RoTBench's alternatives). `strict` compares values type-exactly in the generic
    rule; the benchmarks keep their own. Raises `AnswerKeyError` for a gold the rule cannot read.
    """
    if data_format == "bfcl":
        return judge_bfcl(parse_calls(text, call_format), tools, meta)
    if data_format == "rotbench":
        return judge_rotbench(text, gold, tools, meta, call_format)
    return judge_generic(parse_turn(text, call_format), gold, tools, strict)
