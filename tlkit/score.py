"""`tlkit score`: TS / PI / CF and error categories of predictions made anywhere (vLLM, an API, another kit).

`tlkit score --data FILE --data-format FORMAT --predictions PRED.jsonl --out RESULTS.jsonl`
reads the records with tlkit's reader for FORMAT and one `{"id", "prediction"}` line per record,
scores each record on its target turn (its last assistant turn with tool calls), writes one result
line per record and prints a table, then the summary as one JSON line (the last line of stdout).

Which rules score a record depends on `--data-format`:
- `rotbench`: RoTBench's own TS / PI / CF (`score_rotbench`) against the record's acceptable
  answers (`meta["alternatives"]`); the category is the best one over the alternatives.
- `bfcl`: CF is BFCL v3's AST check (`check_bfcl`, the number BFCL reports). TS: the called names
  equal the gold functions' names as a multiset (so simple and multiple need exactly one call, and
  parallel the gold's number of calls). PI: TS, and the calls can be matched one-to-one to gold
  entries whose argument names they get right: no name outside the function's schema or the gold
  entry, none that the schema requires or the gold may not omit (no `""` allowed) left out.
  Irrelevance records (no call is right): all three pass exactly when the output makes no call
  (text that is not a call is no call). The category follows the same facts: hallucinated = a
  name outside the schema, redundant = in the schema but not in the gold entry, missing = required
  or not omittable; a content error is a call with the right names that fails the AST check.
- any other format: `tool_call_levels` and `classify_call` against the gold calls. One gold call:
  the prediction's first call is judged (the paper scores one call per turn). Several gold calls
  (Seal-Tools, parallel data): the prediction needs the same number of calls, matched one-to-one
  to the gold calls in any order, each passing the level. A record without a target turn passes
  when the output makes no call.
Everywhere: a wrong number of calls, or a call where none is due, is a tool-selection error
(`wrong_tool`, or `tool_hallucination` when a called name is not offered); with several calls the
category is the worst (first in rule order) over the calls, paired greedily with the gold calls;
where a category and the benchmark's own levels disagree, the levels win (`reconcile`), so that
`correct` always means CF and CF ⊆ PI ⊆ TS. A record without a prediction fails all three, as a
format error.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

from jsonargparse import ArgumentParser

from tlkit.benchmarks import OK, _perfect_matching, check_bfcl, check_bfcl_call, score_rotbench
from tlkit.calls import ParseFormat, parse_calls, parse_react
from tlkit.classify import Category, argument_category, classify_call
from tlkit.data.datamodule import target_message_index
from tlkit.data.readers import READERS, read_trajectories
from tlkit.data.readers._common import read_text
from tlkit.data.records import RecordError, Tool, ToolCall, Trajectory
from tlkit.metrics import tool_call_levels
from tlkit.rewards import ErrorCategoryReward

MatchBy = Literal["id", "position"]
Levels = tuple[bool, bool, bool]
WRONG: Levels = (False, False, False)
RANK = {category: i for i, category in enumerate(Category)}  # rule order: lower is worse
TOOL_LEVEL = {Category.FORMAT_ERROR, Category.TOOL_HALLUCINATION, Category.WRONG_TOOL}
ARGUMENT_LEVEL = set(Category) - TOOL_LEVEL - {Category.CONTENT_ERROR, Category.CORRECT}
# Schema type names as tlkit's readers write them -> BFCL's own (its checker reads BFCL's).
BFCL_TYPES = {"number": "float", "object": "dict"}
SHOWN_IDS = 5  # how many missing or unknown ids stderr lists


class ScoreError(ValueError):
    """Input that `tlkit score` cannot work with; the message says what to change."""


def note(message: str) -> None:
    print(f"tlkit score: {message}", file=sys.stderr)


# ---------------------------------------------------------------------------------------------
# Predictions and matching


def read_predictions(path: str) -> list[dict[str, Any]]:
    """The `{"id", "prediction"}` lines of a predictions file; errors name the line and field."""
    predictions = []
    for number, line in enumerate(read_text(path).split("\n"), start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except ValueError as e:
            raise RecordError(path, f"line {number}", "<json>", f"invalid JSON ({e})") from None
        if not isinstance(item, dict):
            raise RecordError(path, f"line {number}", "<line>", 'expected an object {"id": ..., "prediction": "..."}')
        if not isinstance(item.get("id"), (str, int)) or isinstance(item.get("id"), bool) or item["id"] == "":
            raise RecordError(
                path, f"line {number}", "id", "expected the record's id (a non-empty string or an integer)"
            )
        if not isinstance(item.get("prediction"), str):
            got = type(item["prediction"]).__name__ if "prediction" in item else "nothing"
            raise RecordError(path, f"line {number}", "prediction", f"expected the model's raw output text, got {got}")
        predictions.append({"id": str(item["id"]), "prediction": item["prediction"]})
    return predictions


def first_repeat(ids: Sequence[str]) -> str | None:
    seen: set[str] = set()
    for i in ids:
        if i in seen:
            return i
        seen.add(i)
    return None


def match_predictions(
    records: Sequence[Trajectory], predictions: Sequence[dict], match_by: MatchBy | None
) -> list[str | None]:
    """The prediction text of each record (None: missing), matched by id or by position.

    Automatic (`match_by=None`): by id, unless ids repeat in the data or in the predictions
    (RoTBench's noisy files hold each query twice): then by position.
    """
    record_ids = [r.id for r in records]
    prediction_ids = [str(p["id"]) for p in predictions]
    if match_by is None:
        repeated = first_repeat(record_ids) or first_repeat(prediction_ids)
        match_by = "position" if repeated is not None else "id"
        if repeated is not None:
            note(f"id {repeated!r} occurs more than once: matching predictions to records by position")
    if match_by == "position":
        if len(predictions) != len(records):
            raise ScoreError(
                f"matching by position needs one prediction per record: {len(predictions)} predictions "
                f"for {len(records)} records"
            )
        return [p["prediction"] for p in predictions]
    if match_by != "id":
        raise ScoreError(f"unknown --match-by {match_by!r}: expected id or position")
    for ids, where in ((record_ids, "the data"), (prediction_ids, "the predictions")):
        repeated = first_repeat(ids)
        if repeated is not None:
            raise ScoreError(f"id {repeated!r} occurs more than once in {where}: use --match-by position")
    by_id = {p["id"]: p["prediction"] for p in predictions}
    known = set(record_ids)
    unknown = [i for i in prediction_ids if i not in known]
    if unknown:
        note(
            f"{len(unknown)} prediction(s) name ids not in the data, ignored: {', '.join(map(repr, unknown[:SHOWN_IDS]))}"
        )
    return [by_id.get(i) for i in record_ids]


# ---------------------------------------------------------------------------------------------
# Shared pieces


def gold_calls(record: Trajectory) -> tuple[ToolCall, ...]:
    """The calls of the record's target turn; () where no call is right."""
    index = target_message_index(record)
    return () if index is None else record.messages[index].tool_calls


def tool_level_error(predicted: Sequence[ToolCall], tools: Sequence[Tool]) -> Category:
    """The category of calls that select the wrong tools (or any tool where none is due)."""
    offered = {tool.name for tool in tools}
    return Category.TOOL_HALLUCINATION if any(c.name not in offered for c in predicted) else Category.WRONG_TOOL


def reconcile(category: Category, ts: bool, pi: bool, cf: bool) -> Category:
    """The category made consistent with the levels (which win): correct iff CF, content error iff PI only."""
    if cf:
        return Category.CORRECT
    if pi:
        return Category.CONTENT_ERROR
    if ts:
        return category if category in ARGUMENT_LEVEL else Category.REDUNDANT_OR_MISSING
    return category if category in TOOL_LEVEL else Category.WRONG_TOOL


def has_matching(fits: list[list[bool]]) -> bool:
    """Every row (gold call) can be given its own column (predicted call) it fits."""
    return all(j is not None for j in _perfect_matching(fits))


def worst_pairing(n_gold: int, n_predicted: int, judge: Callable[[int, int], Category]) -> Category:
    """Pair each gold call greedily with the unused prediction it judges best; the worst pair's category."""
    unused, categories = set(range(n_predicted)), []
    for i in range(n_gold):
        j, category = max(((j, judge(i, j)) for j in unused), key=lambda pair: RANK[pair[1]])
        unused.discard(j)
        categories.append(category)
    return min(categories, key=RANK.__getitem__)


# ---------------------------------------------------------------------------------------------
# The three rule sets


def score_generic(record: Trajectory, text: str, call_format: ParseFormat, strict: bool) -> tuple[Category, Levels]:
    """`tool_call_levels` and `classify_call` against the gold calls (see the module docstring)."""
    predicted = parse_calls(text, call_format)
    gold = gold_calls(record)
    if not gold:  # no call is right
        return (Category.CORRECT, (True,) * 3) if not predicted else (tool_level_error(predicted, record.tools), WRONG)
    if len(gold) == 1:
        levels = tool_call_levels(predicted, gold[0], strict)
        return reconcile(classify_call(predicted, gold[0], record.tools, strict), *levels), levels
    if not predicted:
        return Category.FORMAT_ERROR, WRONG
    if len(predicted) != len(gold):
        return tool_level_error(predicted, record.tools), WRONG
    passes = [[tool_call_levels([p], g, strict) for p in predicted] for g in gold]
    ts, pi, cf = (has_matching([[row[level] for row in line] for line in passes]) for level in range(3))
    judge = lambda i, j: classify_call([predicted[j]], gold[i], record.tools, strict)
    return reconcile(worst_pairing(len(gold), len(predicted), judge), ts, pi, cf), (ts, pi, cf)


def react_text(call: ToolCall) -> str:
    return f"Action: {call.name}\nAction Input: {json.dumps(call.arguments, ensure_ascii=False)}"


def rotbench_alternatives(record: Trajectory, source: str) -> list[ToolCall]:
    """The record's acceptable answers (`meta["alternatives"]`), else its target turn's calls."""
    alternatives = record.meta.get("alternatives")
    if alternatives is None:
        return list(gold_calls(record))
    ok = isinstance(alternatives, list) and all(
        isinstance(a, dict) and isinstance(a.get("name"), str) and isinstance(a.get("arguments"), dict)
        for a in alternatives
    )
    if not ok:
        raise RecordError(
            source, record.id, "meta.alternatives", 'expected a list of {"name": ..., "arguments": {...}}'
        )
    return [ToolCall(a["name"], a["arguments"]) for a in alternatives]


def score_rotbench_record(
    record: Trajectory, text: str, call_format: ParseFormat, source: str
) -> tuple[Category, Levels]:
    """RoTBench's TS / PI / CF; the category is the best over the acceptable answers."""
    alternatives = rotbench_alternatives(record, source)
    if call_format != "react":  # RoTBench reads ReAct text: rewrite the first call in it
        parsed = parse_calls(text, call_format)
        text = react_text(parsed[0]) if parsed else ""
    levels = score_rotbench(text, [react_text(a) for a in alternatives], record.tools)
    action = parse_react(text)
    if action is None or not isinstance(action[1], dict) or not action[1] or not alternatives:
        return Category.FORMAT_ERROR, levels  # RoTBench: no JSON object, or an empty one, fails all three
    call = [ToolCall(*action)]
    category = max((classify_call(call, gold, record.tools) for gold in alternatives), key=RANK.__getitem__)
    return reconcile(category, *levels), levels


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


def bfcl_schema(functions: Sequence[dict], gold_name: str) -> dict | None:
    """The function a gold entry names; with one function offered, that one (as BFCL's checker reads it)."""
    named = [f for f in functions if f["name"] == gold_name]
    return named[0] if named else (functions[0] if len(functions) == 1 else None)


def bfcl_argument_category(call: ToolCall, entry: dict, schema: dict) -> Category | None:
    """Argument-name errors of a call against one gold entry (BFCL's notion of allowed names); None: names right."""
    ((_, allowed),) = entry.items()
    parameters = schema.get("parameters", {})
    defined, names = set(parameters.get("properties", {})), set(call.arguments)
    needed = set(parameters.get("required", [])) | {name for name, options in allowed.items() if "" not in options}
    return argument_category(names - defined, (names & defined) - set(allowed), needed - names)


def score_bfcl_record(record: Trajectory, text: str, call_format: ParseFormat, source: str) -> tuple[Category, Levels]:
    """BFCL v3: CF is the AST check; TS and PI as the module docstring says."""
    kind = record.meta.get("category")
    if not isinstance(kind, str):
        raise RecordError(
            source, record.id, "meta.category", "expected the BFCL category (simple, parallel, irrelevance, ...)"
        )
    predicted = parse_calls(text, call_format)
    functions = bfcl_functions(record.tools)
    answers: list[dict] = []
    if "irrelevance" not in kind:
        answers = record.meta.get("possible_answer")
        if not isinstance(answers, list) or not all(isinstance(a, dict) and len(a) == 1 for a in answers):
            raise RecordError(
                source,
                record.id,
                "meta.possible_answer",
                "expected BFCL's ground_truth: [{function: {param: [allowed]}}]",
            )
    try:
        passed, _ = check_bfcl(predicted, answers, functions, kind)
    except ValueError as e:
        raise RecordError(source, record.id, "meta.category", str(e)) from None
    if "irrelevance" in kind:
        return (Category.CORRECT if passed else tool_level_error(predicted, record.tools)), (passed,) * 3
    if not predicted:
        return Category.FORMAT_ERROR, WRONG
    schemas = [bfcl_schema(functions, next(iter(entry))) for entry in answers]
    expected = [s["name"] if s else next(iter(e)) for s, e in zip(schemas, answers)]
    ts = Counter(c.name for c in predicted) == Counter(expected)
    fits = [
        [s is not None and c.name == name and bfcl_argument_category(c, e, s) is None for c in predicted]
        for s, name, e in zip(schemas, expected, answers)
    ]
    pi = ts and has_matching(fits)
    ts, pi = ts or passed, pi or passed  # the AST pass implies both; kept explicit so CF ⊆ PI ⊆ TS holds

    def judge(i: int, j: int) -> Category:
        call, schema = predicted[j], schemas[i]
        if schema is None or call.name != expected[i]:
            return Category.WRONG_TOOL
        category = bfcl_argument_category(call, answers[i], schema)
        if category is not None:
            return category
        return Category.CORRECT if check_bfcl_call(call, answers[i], functions) == OK else Category.CONTENT_ERROR

    if not ts:
        category = tool_level_error(predicted, record.tools)
    else:
        category = worst_pairing(len(answers), len(predicted), judge)
    return reconcile(category, ts, pi, passed), (ts, pi, passed)


# ---------------------------------------------------------------------------------------------
# Records -> results


def default_call_format(data_format: str) -> ParseFormat:
    return "react" if data_format == "rotbench" else "python"


def summarize(rows: Sequence[dict]) -> dict[str, Any]:
    """n, TS / PI / CF and each category's share, in percent (2 decimals), and the missing count."""
    n = len(rows)
    percent = lambda count: round(100 * count / n, 2) if n else 0.0
    counts = Counter(row["category"] for row in rows)
    return {
        "n": n,
        "TS": percent(sum(row["ts"] for row in rows)),
        "PI": percent(sum(row["pi"] for row in rows)),
        "CF": percent(sum(row["cf"] for row in rows)),
        "categories": {c.value: percent(counts[c.value]) for c in Category},
        "missing": sum(bool(row.get("missing")) for row in rows),
    }


def score_records(
    records: list[Trajectory],
    predictions: list[dict],
    call_format: ParseFormat | None = None,
    match_by: MatchBy | None = None,
    strict: bool = False,
    data_format: str = "tlkit",
    source: str = "<data>",
) -> tuple[list[dict], dict]:
    """(one result row per record, the summary) for predictions `[{"id", "prediction"}]`."""
    call_format = call_format or default_call_format(data_format)
    reward = ErrorCategoryReward()
    rows = []
    for record, text in zip(records, match_predictions(records, predictions, match_by)):
        if text is None:
            category, levels = Category.FORMAT_ERROR, WRONG
        elif data_format == "bfcl":
            category, levels = score_bfcl_record(record, text, call_format, source)
        elif data_format == "rotbench":
            category, levels = score_rotbench_record(record, text, call_format, source)
        else:
            category, levels = score_generic(record, text, call_format, strict)
        row = {"id": record.id, "category": category.value, "reward": reward(category)}
        row.update(zip(("ts", "pi", "cf"), map(bool, levels)))
        if text is None:
            row["missing"] = True
        rows.append(row)
    missing = [row["id"] for row in rows if row.get("missing")]
    if missing:
        shown = ", ".join(map(repr, missing[:SHOWN_IDS])) + (", ..." if len(missing) > SHOWN_IDS else "")
        note(f"{len(missing)} of {len(rows)} records have no prediction (counted wrong, as format errors): {shown}")
    return rows, summarize(rows)


def format_table(summary: dict, rows: Sequence[dict]) -> str:
    """The human-readable part of the report."""
    reward = ErrorCategoryReward()
    counts = Counter(row["category"] for row in rows)
    mean_reward = sum(row["reward"] for row in rows) / len(rows) if rows else 0.0
    lines = [
        f"records  {summary['n']}   (without a prediction: {summary['missing']})",
        "",
        "metric        %",
        *(f"{name:<6} {summary[name]:>7.2f}" for name in ("TS", "PI", "CF")),
        "",
        f"{'category':<42} {'n':>6} {'%':>7} {'reward':>7}",
        *(
            f"{c.value:<42} {counts[c.value]:>6} {summary['categories'][c.value]:>7.2f} {reward(c):>7.2f}"
            for c in Category
        ),
        f"{'mean reward':<42} {'':>6} {'':>7} {mean_reward:>7.3f}",
    ]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Command line


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(
        prog="tlkit score",
        description="Score a model's raw outputs (made anywhere: vLLM, an API, another kit) on tool-use data: "
        "TS / PI / CF and error categories per record, a table, and a JSON summary as the last line.",
    )
    parser.add_argument("--data", type=str, required=True, help="The data file (or folder) with the gold answers.")
    parser.add_argument(
        "--data-format",
        type=str,
        required=True,
        help=f"The reader for --data: {', '.join(READERS)}. bfcl and rotbench are scored by the benchmark's own rules.",
    )
    parser.add_argument(
        "--predictions",
        type=str,
        required=True,
        help='JSON Lines, one {"id": ..., "prediction": "<raw model output>"} per record.',
    )
    parser.add_argument(
        "--out",
        type=str,
        required=True,
        help="Where to write one result line per record (id, category, reward, ts, pi, cf, missing); never overwritten.",
    )
    parser.add_argument(
        "--call-format",
        type=ParseFormat | None,
        default=None,
        help='How the predictions write calls: python (name(a=1)), json ({"name", "arguments"}), react '
        "(Action: / Action Input:), hermes (<tool_call>, Qwen), llama ({\"name\", \"parameters\"}, <|python_tag|>), "
        "mistral ([TOOL_CALLS]) or auto (detected per answer). Default: react for rotbench, python otherwise.",
    )
    parser.add_argument(
        "--match-by",
        type=Literal["id", "position"] | None,
        default=None,
        help="Pair predictions with records by id or by position (the predictions file then holds one line per "
        "record, in order). Default: by id, by position where ids repeat.",
    )
    parser.add_argument(
        "--strict",
        action="store_true",
        help="Compare values type-exactly (1 != 1.0) in tlkit's generic rules; bfcl and rotbench keep their own. "
        "Default: off.",
    )
    return parser


def run(
    data: str,
    data_format: str,
    predictions: str,
    out: str,
    call_format: ParseFormat | None,
    match_by: MatchBy | None,
    strict: bool,
) -> tuple[list[dict], dict]:
    """Read, score, write `out`; returns the rows and the summary."""
    if data_format not in READERS:
        raise ScoreError(f"unknown --data-format {data_format!r}; known formats: {', '.join(READERS)}")
    if Path(out).exists():
        raise ScoreError(f"{out} exists: tlkit score never overwrites results; choose another --out or remove it")
    if not Path(data).exists():
        raise ScoreError(f"--data {data} does not exist")
    records = list(read_trajectories(data, data_format))
    rows, summary = score_records(
        records, read_predictions(predictions), call_format, match_by, strict, data_format, data
    )
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    with open(out, "x", encoding="utf-8") as file:  # "x": refuse, even if the file appeared meanwhile
        file.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    return rows, summary


def main(args: list[str] | None = None) -> dict:
    """`tlkit score ...`: prints the table, then the summary as one JSON line; returns the summary."""
    config = build_parser().parse_args(args)
    try:
        rows, summary = run(
            config.data,
            config.data_format,
            config.predictions,
            config.out,
            config.call_format,
            config.match_by,
            config.strict,
        )
    except (RecordError, ScoreError, OSError) as error:  # bad input: say what and where, no traceback
        raise SystemExit(f"tlkit score: error: {error}") from None
    print(format_table(summary, rows))
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
