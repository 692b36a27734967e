"""`tlkit score` run as a user runs it (`main([...])`), on real BFCL v3, Seal-Tools and RoTBench records."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tlkit.calls import render_calls
from tlkit.data.argument_types import normalise_calls
from tlkit.data.readers import read_trajectories
from tlkit.irm import Category
from tlkit.records import ToolCall, Trajectory, gold_calls
from tlkit.score import main, score_records

FIXTURES = Path(__file__).resolve().parent / "fixtures"
N = 20  # BFCL records per test: the first N of the file


def bfcl_subset(public_data: Path, tmp_path: Path, category: str, n: int = N) -> Path:
    """The first `n` questions of a BFCL v3 file (and their gold, where there is some), under tmp_path."""
    name = f"BFCL_v3_{category}.json"
    root = public_data / "bfcl_v3"
    (tmp_path / "possible_answer").mkdir(exist_ok=True)
    for sub in ("", "possible_answer/"):
        if (root / sub / name).exists():
            lines = (root / sub / name).read_text().splitlines()[:n]
            (tmp_path / sub / name).write_text("\n".join(lines) + "\n")
    return tmp_path / name


def records_of(path: Path, data_format: str) -> list[Trajectory]:
    return list(read_trajectories(str(path), data_format))


def python_text(calls: list[ToolCall] | tuple[ToolCall, ...]) -> str:
    return render_calls(tuple(calls), "python")[0]


def write_predictions(path: Path, pairs: list[tuple[str, str]]) -> Path:
    path.write_text("".join(json.dumps({"id": i, "prediction": p}) + "\n" for i, p in pairs))
    return path


def score(
    capsys, data: Path, data_format: str, predictions: Path, out: Path, *extra: str
) -> tuple[dict, list[dict], str, str]:
    """Run `tlkit score`; (summary returned, result rows, stdout, stderr), checking the last stdout line is the
    summary."""
    summary = main(
        [
            "--data",
            str(data),
            "--data-format",
            data_format,
            "--predictions",
            str(predictions),
            "--out",
            str(out),
            *extra,
        ]
    )
    captured = capsys.readouterr()
    assert json.loads(captured.out.strip().splitlines()[-1]) == summary
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    return summary, rows, captured.out, captured.err


def categories(**percent: float) -> dict[str, float]:
    """The full category table: the given shares, every other category 0."""
    names = [category.value for category in Category]
    return {name: percent.get(name, 0.0) for name in names}


# --- BFCL v3 ---------------------------------------------------------------------------------


@pytest.mark.parametrize("category", ["simple", "parallel", "multiple"])
def test_bfcl_gold_predictions_score_full_marks(public_data, tmp_path, capsys, category):
    data = bfcl_subset(public_data, tmp_path, category)
    records = records_of(data, "bfcl")
    predictions = write_predictions(tmp_path / "pred.jsonl", [(r.id, python_text(gold_calls(r))) for r in records])
    summary, rows, out, err = score(capsys, data, "bfcl", predictions, tmp_path / "results.jsonl")
    assert summary == {
        "n": N,
        "TS": 100.0,
        "PI": 100.0,
        "CF": 100.0,
        "categories": categories(correct=100.0),
        "missing": 0,
    }
    assert rows[0] == {"id": f"{category}_0", "category": "correct", "reward": 1.0, "ts": True, "pi": True, "cf": True}
    assert [r["id"] for r in rows] == [r.id for r in records]
    assert "TS      100.00" in out and err == ""


def perturbed_simple(
    records: list[Trajectory],
) -> tuple[list[tuple[str, str]], dict[str, tuple[str, bool, bool, bool]]]:
    """Predictions for BFCL simple_0.. with the first few perturbed, and each perturbed record's expected row."""
    calls = {r.id: gold_calls(r)[0] for r in records}
    c0, c1, c2, c3 = (calls[f"simple_{i}"] for i in range(4))
    changed = {
        # simple offers one function, so another name is never on offer: a tool hallucination
        "simple_0": (ToolCall("calculate_circle_area", c0.arguments), ("tool_hallucination", False, False, False)),
        # `number` is required
        "simple_1": (ToolCall(c1.name, {}), ("redundant_or_missing", True, False, False)),
        "simple_2": (ToolCall(c2.name, {**c2.arguments, "x": 40}), ("content_error", True, True, False)),
        "simple_3": (ToolCall(c3.name, {**c3.arguments, "d": 1}), ("param_hallucination", True, False, False)),
        # `unit` may be omitted (BFCL allows ""), so this is still right
        "simple_5": (None, ("correct", True, True, True)),
    }
    predictions = []
    for record in records:
        if record.id == "simple_4":
            predictions.append((record.id, "The factorial of 5 is 120."))  # text, no call
        elif record.id in changed and changed[record.id][0] is not None:
            predictions.append((record.id, python_text([changed[record.id][0]])))
        else:
            predictions.append((record.id, python_text([calls[record.id]])))
    expected = {i: row for i, (_, row) in changed.items()}
    expected["simple_4"] = ("format_error", False, False, False)
    return predictions, expected


def test_bfcl_simple_perturbed_predictions(public_data, tmp_path, capsys):
    data = bfcl_subset(public_data, tmp_path, "simple")
    records = records_of(data, "bfcl")
    predictions, expected = perturbed_simple(records)
    summary, rows, out, _ = score(
        capsys, data, "bfcl", write_predictions(tmp_path / "p.jsonl", predictions), tmp_path / "r.jsonl"
    )
    got = {r["id"]: (r["category"], r["ts"], r["pi"], r["cf"]) for r in rows}
    for record_id, row in expected.items():
        assert got[record_id] == row, record_id
    assert {
        r["id"]: r["reward"] for r in rows if r["id"] in ("simple_0", "simple_1", "simple_2", "simple_3", "simple_4")
    } == {
        "simple_0": -2.0,
        "simple_1": -0.5,
        "simple_2": -0.25,
        "simple_3": -0.8,
        "simple_4": -2.0,
    }
    # 15 right + simple_1, _2, _3 select the tool; of those only simple_2 names the arguments right
    assert summary == {
        "n": 20,
        "TS": 90.0,
        "PI": 80.0,
        "CF": 75.0,
        "missing": 0,
        "categories": categories(
            correct=75.0,
            format_error=5.0,
            tool_hallucination=5.0,
            redundant_or_missing=5.0,
            content_error=5.0,
            param_hallucination=5.0,
        ),
    }
    assert "tool_hallucination" in out and "content_error" in out


def test_bfcl_multiple_wrong_offered_tool(public_data, tmp_path, capsys):
    data = bfcl_subset(public_data, tmp_path, "multiple", n=2)
    records = records_of(data, "bfcl")  # multiple_0 offers triangle_properties.get (gold) and circle_properties.get
    predictions = [
        ("multiple_0", "circle_properties.get(radius=5)"),
        ("multiple_1", python_text(gold_calls(records[1]))),
    ]
    summary, rows, _, _ = score(
        capsys, data, "bfcl", write_predictions(tmp_path / "p.jsonl", predictions), tmp_path / "r.jsonl"
    )
    assert rows[0] == {
        "id": "multiple_0",
        "category": "wrong_tool",
        "reward": -1.5,
        "ts": False,
        "pi": False,
        "cf": False,
    }
    assert (summary["TS"], summary["PI"], summary["CF"]) == (50.0, 50.0, 50.0)


def test_bfcl_parallel_perturbed_predictions(public_data, tmp_path, capsys):
    data = bfcl_subset(public_data, tmp_path, "parallel")
    records = {r.id: r for r in records_of(data, "bfcl")}
    gold = {i: list(gold_calls(r)) for i, r in records.items()}
    p0, p1, p2, p3 = (gold[f"parallel_{i}"] for i in range(4))
    changed = {
        "parallel_0": p0[:1],  # one of two calls: a missing call fails tool selection
        "parallel_1": p1[::-1],  # order does not matter
        "parallel_2": [p2[0], ToolCall(p2[1].name, {**p2[1].arguments, "length": 6})],
        "parallel_3": [
            ToolCall(p3[0].name, {**p3[0].arguments, "protein_name": "HbA1c"}),
            *p3[1:],
        ],  # BFCL's other allowed value
        "parallel_4": [ToolCall(gold["parallel_4"][0].name, {}), *gold["parallel_4"][1:]],
    }
    predictions = [(i, python_text(changed.get(i, gold[i]))) for i in records]
    summary, rows, _, _ = score(
        capsys, data, "bfcl", write_predictions(tmp_path / "p.jsonl", predictions), tmp_path / "r.jsonl"
    )
    got = {r["id"]: (r["category"], r["ts"], r["pi"], r["cf"]) for r in rows}
    assert [got[f"parallel_{i}"] for i in range(5)] == [
        ("missing_or_extra_call", False, False, False),
        ("correct", True, True, True),
        ("content_error", True, True, False),
        ("correct", True, True, True),
        ("redundant_or_missing", True, False, False),
    ]
    assert (summary["TS"], summary["PI"], summary["CF"]) == (95.0, 90.0, 85.0)


def test_bfcl_irrelevance_call_versus_text(public_data, tmp_path, capsys):
    data = bfcl_subset(public_data, tmp_path, "irrelevance")
    records = records_of(data, "bfcl")
    predictions = []
    for k, record in enumerate(records):
        if k < 10:
            predictions.append((record.id, "None of the functions can answer this."))
        elif k < 15:
            predictions.append((record.id, f"{record.tools[0].name}()"))  # an offered tool, where none is due
        else:
            predictions.append((record.id, "search_the_web(query='x')"))  # not offered either
    summary, rows, _, _ = score(
        capsys, data, "bfcl", write_predictions(tmp_path / "p.jsonl", predictions), tmp_path / "r.jsonl"
    )
    assert summary == {
        "n": 20,
        "TS": 50.0,
        "PI": 50.0,
        "CF": 50.0,
        "missing": 0,
        "categories": categories(correct=50.0, missing_or_extra_call=25.0, tool_hallucination=25.0),
    }
    assert rows[0]["category"] == "correct" and rows[10]["category"] == "missing_or_extra_call"


def test_missing_predictions_count_wrong_and_are_reported(public_data, tmp_path, capsys):
    data = bfcl_subset(public_data, tmp_path, "simple")
    records = records_of(data, "bfcl")
    kept = [(r.id, python_text(gold_calls(r))) for r in records if r.id not in ("simple_3", "simple_7", "simple_11")]
    summary, rows, _, err = score(
        capsys, data, "bfcl", write_predictions(tmp_path / "p.jsonl", kept), tmp_path / "r.jsonl"
    )
    assert summary == {
        "n": 20,
        "TS": 85.0,
        "PI": 85.0,
        "CF": 85.0,
        "missing": 3,
        "categories": categories(correct=85.0, format_error=15.0),
    }
    assert rows[3] == {
        "id": "simple_3",
        "category": "format_error",
        "reward": -2.0,
        "ts": False,
        "pi": False,
        "cf": False,
        "missing": True,
    }
    assert "3 of 20 records have no prediction" in err and "'simple_3', 'simple_7', 'simple_11'" in err


def test_existing_out_is_never_overwritten(public_data, tmp_path, capsys):
    data = bfcl_subset(public_data, tmp_path, "simple", n=2)
    predictions = write_predictions(tmp_path / "p.jsonl", [("simple_0", "x()"), ("simple_1", "y()")])
    out = tmp_path / "results.jsonl"
    out.write_text("earlier results\n")
    with pytest.raises(SystemExit, match="results.jsonl exists: tlkit score never overwrites"):
        main(["--data", str(data), "--data-format", "bfcl", "--predictions", str(predictions), "--out", str(out)])
    assert out.read_text() == "earlier results\n"


@pytest.mark.parametrize(
    "line, field",
    [
        ('{"id": "simple_0", "prediction": "f()"', "'<json>'"),
        ('["simple_0", "f()"]', "'<line>'"),
        ('{"prediction": "f()"}', "'id'"),
        ('{"id": "simple_0", "prediction": null}', "'prediction'"),
        ('{"id": "simple_0", "output": "f()"}', "'prediction'"),
    ],
)
def test_malformed_prediction_lines_are_named(public_data, tmp_path, line, field):
    data = bfcl_subset(public_data, tmp_path, "simple", n=2)
    predictions = tmp_path / "p.jsonl"
    predictions.write_text('{"id": "simple_1", "prediction": "f()"}\n\n' + line + "\n")
    with pytest.raises(SystemExit) as error:
        main(
            [
                "--data",
                str(data),
                "--data-format",
                "bfcl",
                "--predictions",
                str(predictions),
                "--out",
                str(tmp_path / "r.jsonl"),
            ]
        )
    message = str(error.value)
    assert f"{predictions}: record line 3: field {field}" in message
    assert not (tmp_path / "r.jsonl").exists()


def test_unknown_data_format_lists_the_known_ones(public_data, tmp_path):
    predictions = write_predictions(tmp_path / "p.jsonl", [("a", "f()")])
    with pytest.raises(SystemExit, match="unknown --data-format 'bfcl_v3'; known formats: tlkit, bfcl, seal_tools"):
        main(
            [
                "--data",
                "x.json",
                "--data-format",
                "bfcl_v3",
                "--predictions",
                str(predictions),
                "--out",
                str(tmp_path / "r"),
            ]
        )


# --- Seal-Tools ------------------------------------------------------------------------------


def test_seal_tools_json_calls(public_data, tmp_path, capsys):
    data = public_data / "seal_tools" / "test_in_domain.jsonl"
    records = [normalise_calls(r)[0] for r in records_of(data, "seal_tools")]  # the gold as the scorer reads it
    several = [r for r in records if len(gold_calls(r)) >= 2]
    single = [r for r in records if len(gold_calls(r)) == 1 and gold_calls(r)[0].arguments]
    assert (len(records), len(several)) == (700, 500)
    json_text = lambda calls: render_calls(tuple(calls), "json")[0]
    predictions = {r.id: json_text(gold_calls(r)) for r in records}
    a, b, c, d = several[:4]
    predictions[a.id] = json_text(gold_calls(a)[::-1])  # any order
    predictions[b.id] = json_text(gold_calls(b)[:-1])  # a call left out
    first, *rest = gold_calls(c)
    predictions[c.id] = json_text([*rest, ToolCall(first.name, {**first.arguments, "zz_extra": 1})])
    predictions[d.id] = "I will call the tools now."
    s = single[0]
    (call,) = gold_calls(s)
    predictions[s.id] = json_text([ToolCall(call.name, {**call.arguments, next(iter(call.arguments)): "zz"})])
    summary, rows, _, _ = score(
        capsys,
        data,
        "seal_tools",
        write_predictions(tmp_path / "p.jsonl", list(predictions.items())),
        tmp_path / "r.jsonl",
        "--call-format",
        "json",
    )
    got = {r["id"]: (r["category"], r["ts"], r["pi"], r["cf"]) for r in rows}
    assert got[a.id] == ("correct", True, True, True)
    assert got[b.id] == ("missing_or_extra_call", False, False, False)
    assert got[c.id] == ("param_hallucination", True, False, False)
    assert got[d.id] == ("format_error", False, False, False)
    assert got[s.id] == ("content_error", True, True, False)
    assert (summary["TS"], summary["PI"], summary["CF"]) == (99.71, 99.57, 99.43)  # 698, 697, 696 of 700
    assert summary["categories"]["correct"] == 99.43


# --- RoTBench (react) ------------------------------------------------------------------------

NLLB = (
    'Thought: I translate it.\nAction: get_translation_nllb\nAction Input: {"input_text": "See you later", '
    '"tgt_lang": "jpn_Jpan", "src_lang": "eng_Latn", "max_length": 50}'
)
BAIDU = 'Action: get_translation_baidu\nAction Input: {"text": "See you later", "tgt_lang": "jp"}'


@pytest.mark.parametrize(
    "prediction, row",
    [
        (NLLB, ("correct", True, True, True)),  # gold max_length is "None": any value is right
        (BAIDU, ("correct", True, True, True)),  # the second acceptable answer
        (BAIDU.replace('"jp"', '"ja"'), ("content_error", True, True, False)),
        (
            'Action: get_translation_baidu\nAction Input: {"text": "See you later"}',
            ("redundant_or_missing", True, False, False),
        ),
        ('Action: finish\nAction Input: {"answer": "\u307e\u305f\u306d"}', ("wrong_tool", False, False, False)),
        ('Action: get_translation_google\nAction Input: {"text": "x"}', ("tool_hallucination", False, False, False)),
        (
            "Action: get_translation_baidu\nAction Input: {}",
            ("format_error", False, False, False),
        ),  # RoTBench: {} fails
        ("またね", ("format_error", False, False, False)),
    ],
)
def test_rotbench_first_turn(tmp_path, capsys, prediction, row):
    data = FIXTURES / "rotbench" / "First_Turn_clean.json"
    (record,) = records_of(data, "rotbench")
    predictions = write_predictions(tmp_path / "p.jsonl", [(record.id, prediction)])
    summary, rows, _, _ = score(capsys, data, "rotbench", predictions, tmp_path / "r.jsonl")
    assert (rows[0]["category"], rows[0]["ts"], rows[0]["pi"], rows[0]["cf"]) == row
    assert summary["CF"] == (100.0 if row[3] else 0.0)


def test_rotbench_third_turn_and_python_calls(tmp_path, capsys):
    data = FIXTURES / "rotbench" / "Third_Turn_clean.json"
    (record,) = records_of(data, "rotbench")
    # the third turn's gold fixes max_length to "100": 50 is now a content error
    predictions = write_predictions(tmp_path / "p.jsonl", [(record.id, NLLB)])
    _, rows, _, _ = score(capsys, data, "rotbench", predictions, tmp_path / "r.jsonl")
    assert (rows[0]["category"], rows[0]["ts"], rows[0]["pi"], rows[0]["cf"]) == ("content_error", True, True, False)
    python = write_predictions(
        tmp_path / "q.jsonl", [(record.id, "get_translation_baidu(text='See you later', tgt_lang='jp')")]
    )
    summary, _, _, _ = score(capsys, data, "rotbench", python, tmp_path / "s.jsonl", "--call-format", "python")
    assert (summary["TS"], summary["PI"], summary["CF"]) == (100.0, 100.0, 100.0)


# --- matching --------------------------------------------------------------------------------


def test_repeated_ids_match_by_position(tmp_path, capsys):
    """RoTBench's noisy files hold each query twice: the predictions repeat the id, so position decides."""
    record = json.loads((FIXTURES / "rotbench" / "First_Turn_clean.json").read_text())[0]
    data = tmp_path / "slight.json"
    data.write_text(json.dumps([record, record]))
    assert [r.id for r in records_of(data, "rotbench")] == [record["id"], record["id"] + "#2"]
    predictions = write_predictions(tmp_path / "p.jsonl", [(record["id"], BAIDU), (record["id"], "no call")])
    summary, rows, _, err = score(capsys, data, "rotbench", predictions, tmp_path / "r.jsonl")
    assert "occurs more than once: matching predictions to records by position" in err
    assert [r["cf"] for r in rows] == [True, False] and summary["CF"] == 50.0 and summary["missing"] == 0

    with pytest.raises(SystemExit, match="occurs more than once in the predictions: use --match-by position"):
        main(
            [
                "--data",
                str(data),
                "--data-format",
                "rotbench",
                "--predictions",
                str(predictions),
                "--out",
                str(tmp_path / "r2.jsonl"),
                "--match-by",
                "id",
            ]
        )
    short = write_predictions(tmp_path / "short.jsonl", [(record["id"], BAIDU)])
    with pytest.raises(SystemExit, match="needs one prediction per record: 1 predictions for 2 records"):
        main(
            [
                "--data",
                str(data),
                "--data-format",
                "rotbench",
                "--predictions",
                str(short),
                "--out",
                str(tmp_path / "r3.jsonl"),
                "--match-by",
                "position",
            ]
        )


def test_forced_position_matching_ignores_ids(public_data, tmp_path):
    records = records_of(bfcl_subset(public_data, tmp_path, "simple", n=3), "bfcl")
    predictions = [{"id": f"other_{k}", "prediction": python_text(gold_calls(r))} for k, r in enumerate(records)]
    rows, summary = score_records(records, predictions, match_by="position", data_format="bfcl")
    assert summary["CF"] == 100.0 and [r["id"] for r in rows] == ["simple_0", "simple_1", "simple_2"]
    rows, summary = score_records(records, predictions, match_by="id", data_format="bfcl")
    assert summary["missing"] == 3 and summary["CF"] == 0.0


# --- canonical records (generic rules) -------------------------------------------------------


def test_canonical_records_and_strict_values(public_data, tmp_path, capsys):
    """A BFCL record saved as canonical JSONL is scored by tlkit's generic rules; --strict tells 5.0 from 5."""
    (record,) = [r for r in records_of(bfcl_subset(public_data, tmp_path, "simple", n=2), "bfcl") if r.id == "simple_1"]
    data = tmp_path / "canonical.jsonl"
    data.write_text(record.to_json() + "\n")
    predictions = write_predictions(tmp_path / "p.jsonl", [("simple_1", "math.factorial(number=5.0)")])
    _, rows, _, _ = score(capsys, data, "tlkit", predictions, tmp_path / "loose.jsonl")
    assert rows[0]["category"] == "correct"
    _, rows, _, _ = score(capsys, data, "tlkit", predictions, tmp_path / "strict.jsonl", "--strict")
    assert (rows[0]["category"], rows[0]["pi"], rows[0]["cf"]) == ("content_error", True, False)
