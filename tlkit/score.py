"""`tlkit score`: TS / PI / CF and error categories of predictions made anywhere (vLLM, an API, another kit).

`tlkit score --data FILE --data-format FORMAT --predictions PRED.jsonl --out RESULTS.jsonl`
reads the records with tlkit's reader for FORMAT (gold argument values in their declared types where
that loses nothing, as in training; `--keep-types` keeps them as written) and one `{"id", "prediction"}`
line per record, scores each record on its target turn (its last assistant turn with tool calls), writes
one result line per record and prints a table, then the summary as one JSON line (the last line of stdout).

Each record is judged by `tlkit.scoring.rules.judge`, the rule the reward and `tlkit test` use too, picked
by `--data-format`: `bfcl` by BFCL v3's AST check (irrelevance: right when the output makes no
call), `rotbench` by RoTBench's own TS / PI / CF, any other format by tlkit's generic rule. Turns
with several calls are matched one-to-one to the gold calls in any order; a missing or extra call
is a `missing_or_extra_call` (see `tlkit/scoring/rules.py`). A record without a prediction fails all three,
as a format error.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from jsonargparse import ArgumentParser

from tlkit.calls import ParseFormat
from tlkit.data.argument_types import normalise_calls
from tlkit.data.readers import READERS, read_trajectories
from tlkit.data.readers._common import read_text
from tlkit.irm import Category, ErrorCategoryReward
from tlkit.records import RecordError, Trajectory, gold_calls
from tlkit.scoring.report import score_report
from tlkit.scoring.rules import AnswerKeyError, Verdict, judge

MatchBy = Literal["id", "position"]
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
            f"{len(unknown)} prediction(s) name ids not in the data, ignored: "
            f"{', '.join(map(repr, unknown[:SHOWN_IDS]))}"
        )
    return [by_id.get(i) for i in record_ids]


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
            verdict = Verdict(Category.FORMAT_ERROR, False, False, False)
        else:
            try:
                verdict = judge(text, gold_calls(record), record.tools, record.meta, data_format, call_format, strict)
            except AnswerKeyError as e:
                raise RecordError(source, record.id, e.field, e.problem) from None
        row = {"id": record.id, "category": verdict.category.value, "reward": reward(verdict.category)}
        row.update(ts=verdict.ts, pi=verdict.pi, cf=verdict.cf)
        if text is None:
            row["missing"] = True
        rows.append(row)
    missing = [row["id"] for row in rows if row.get("missing")]
    if missing:
        shown = ", ".join(map(repr, missing[:SHOWN_IDS])) + (", ..." if len(missing) > SHOWN_IDS else "")
        note(f"{len(missing)} of {len(rows)} records have no prediction (counted wrong, as format errors): {shown}")
    return rows, summarize(rows)


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
        help="Where to write one result line per record (id, category, reward, ts, pi, cf, missing); "
        "never overwritten.",
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
    parser.add_argument(
        "--keep-types",
        action="store_true",
        help="Score against gold argument values as the file writes them. Default: a value written as text "
        "becomes the type its schema declares where nothing is lost ('63' -> 63), as in training "
        "(the DataModule's normalize_types).",
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
    keep_types: bool = False,
) -> tuple[list[dict], dict]:
    """Read, score, write `out`; returns the rows and the summary."""
    if data_format not in READERS:
        raise ScoreError(f"unknown --data-format {data_format!r}; known formats: {', '.join(READERS)}")
    if Path(out).exists():
        raise ScoreError(f"{out} exists: tlkit score never overwrites results; choose another --out or remove it")
    if not Path(data).exists():
        raise ScoreError(f"--data {data} does not exist")
    records = list(read_trajectories(data, data_format))
    if not keep_types:
        records = [normalise_calls(record)[0] for record in records]
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
            config.keep_types,
        )
    except (RecordError, ScoreError, OSError) as error:  # bad input: say what and where, no traceback
        raise SystemExit(f"tlkit: error: {error}") from None
    print(score_report(summary, rows))
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
