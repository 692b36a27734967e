"""Argument values normalised to their declared types: the lossless rule, real counts, the switch, scoring."""

import json
import logging
from collections import Counter
from pathlib import Path

import pytest

from tlkit.calls import render_calls
from tlkit.data.argument_types import normalise_calls, normalise_value
from tlkit.data.datamodule import DataFile, ToolCallDataModule
from tlkit.data.readers import read_trajectories
from tlkit.score import main as score_main

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "experiments/data"
MODEL = str(ROOT / "experiments/models/tiny-llama")
SEAL_DEV = str(DATA / "seal_tools/dev_subset.jsonl")
SEAL_TEST = str(DATA / "seal_tools/test_in_domain_subset.jsonl")


@pytest.mark.parametrize(
    "text, kind, expected",
    [
        ("63", "integer", 63),
        ("-5", "integer", -5),
        ("19.0", "number", 19.0),
        ("19", "number", 19),
        ("0.2", "number", 0.2),
        ("true", "boolean", True),
        ("false", "boolean", False),
        ('["a", "b"]', "array", ["a", "b"]),
        ('{"min": 1}', "object", {"min": 1}),
    ],
)
def test_lossless_text_becomes_the_declared_type(text, kind, expected):
    value, outcomes = normalise_value(text, {"type": kind})
    assert value == expected and type(value) is type(expected) and outcomes == [f"{kind} converted"]


@pytest.mark.parametrize(
    "text, kind",
    [
        ("007", "integer"),  # leading zeros: 7 would lose them
        ("19.0", "integer"),  # an integer's text has no decimal point
        ("-0", "integer"),
        (" 5", "integer"),
        ("1e5", "number"),  # 100000.0 writes back as another text
        ("19.50", "number"),
        ("NaN", "number"),  # not JSON
        ("True", "boolean"),
        ("1", "boolean"),
        ("['Jackie Lee', 'Mike Chen']", "array"),  # API-Bank's Python-literal lists are not JSON
        ('{"a": 1}', "array"),  # JSON, but of the wrong kind
        ("API_call_0", "integer"),  # Seal-Tools' reference to an earlier call's output
    ],
)
def test_text_that_would_lose_something_is_kept(text, kind):
    assert normalise_value(text, {"type": kind}) == (text, [f"{kind} kept"])


def test_strings_typed_values_and_undeclared_types_are_left_alone():
    assert normalise_value("63", {"type": "string"}) == ("63", [])
    assert normalise_value(63, {"type": "string"}) == (63, [])  # only text is converted
    assert normalise_value("63", {"type": ["integer", "null"]}) == ("63", [])
    assert normalise_value("63", None) == ("63", [])


def test_nested_items_and_properties_follow_the_schema():
    schema = {"type": "object", "properties": {
        "ids": {"type": "array", "items": {"type": "integer"}},
        "budget": {"type": "object", "properties": {"min": {"type": "number"}}},
    }}
    value, outcomes = normalise_value({"ids": '["1", "x"]', "budget": {"min": "9.5"}, "other": "2"}, schema)
    assert value == {"ids": [1, "x"], "budget": {"min": 9.5}, "other": "2"}
    assert outcomes == ["array converted", "integer converted", "integer kept", "number converted"]


def test_seal_tools_dev_subset_numbers_become_numbers():
    """The issue's count: 56 of the 58 integer/number arguments of the shipped dev subset are strings."""
    counts, records = Counter(), {}
    for record in read_trajectories(SEAL_DEV, "seal_tools"):
        records[record.id], found = normalise_calls(record)
        counts.update(found)
    assert counts == {"integer converted": 29, "number converted": 27}
    (call,) = records["dev-easy-14"].messages[-1].tool_calls  # the file writes "age": "63"
    assert render_calls((call,))[0].endswith("participant_name='192.168.143.207', age=63)")


def test_api_bank_integers_convert_python_literals_stay():
    counts = Counter()
    for record in read_trajectories(str(DATA / "api_bank"), "api_bank"):
        counts.update(normalise_calls(record)[1])
    assert counts == {"integer converted": 15, "array kept": 5, "object kept": 19}


def test_bfcl_allowed_values_are_never_touched():
    path = str(DATA / "bfcl_v3/BFCL_v3_simple.json")
    for record in read_trajectories(path, "bfcl"):
        assert normalise_calls(record)[0].meta == record.meta


def test_datamodule_counts_per_file_and_the_switch_keeps_values(tmp_path, caplog):
    glaive = DataFile(str(DATA / "glaive_toolcall/glaive_toolcall_en_subset.json"), "glaive")
    files = [DataFile(SEAL_DEV, "seal_tools"), glaive]
    normalised = ToolCallDataModule(MODEL, train=files, cache_dir=str(tmp_path))
    with caplog.at_level(logging.INFO):
        normalised.setup("fit")
    assert normalised.type_counts == {SEAL_DEV: {"integer converted": 29, "number converted": 27}, files[1].path: {}}
    assert "   29  dev_subset.jsonl: integer converted\n     27  dev_subset.jsonl: number converted" in caplog.text
    as_written = ToolCallDataModule(MODEL, train=files, cache_dir=str(tmp_path), normalize_types=False)
    as_written.setup("fit")  # same cache folder: the switch keys the record cache
    assert as_written.type_counts == {SEAL_DEV: {}, files[1].path: {}}
    row = normalised.records["train"][0][1]["id"].index("dev-easy-14")

    def age(dm: ToolCallDataModule):
        record = json.loads(dm.records["train"][0][1][row]["record"])
        return record["messages"][-1]["tool_calls"][0]["arguments"]["age"]

    assert age(normalised) == 63 and age(as_written) == "63"


def test_score_compares_against_the_normalised_gold_unless_keep_types(tmp_path):
    """A prediction of `duration=85` for an integer passes; `duration='85'`, as the file writes it, does not."""
    records = list(read_trajectories(SEAL_TEST, "seal_tools"))

    def predictions(name: str, records: list) -> Path:
        lines = [json.dumps({"id": r.id, "prediction": render_calls(r.messages[-1].tool_calls)[0]}) for r in records]
        (tmp_path / name).write_text("\n".join(lines) + "\n")
        return tmp_path / name

    def run(predictions: Path, *extra: str) -> dict:
        out = tmp_path / f"{predictions.stem}{len(extra)}.out.jsonl"
        return score_main(["--data", SEAL_TEST, "--data-format", "seal_tools", "--predictions", str(predictions),
                           "--out", str(out), *extra])

    as_written = predictions("as_written.jsonl", records)
    typed = predictions("typed.jsonl", [normalise_calls(r)[0] for r in records])
    changed = sum(bool(normalise_calls(r)[1]) for r in records)
    baseline = run(as_written, "--keep-types")["CF"]  # 49 of 50: `createIn-AppMessage(...)` is no Python call
    assert changed == 14 and baseline == 98.0
    assert run(typed)["CF"] == baseline
    assert run(as_written)["CF"] == baseline - 100 * changed / len(records)  # the 14 with a converted value fail
