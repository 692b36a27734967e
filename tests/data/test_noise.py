"""RoTBench-style noise (`add_noise`) on real BFCL v3, Seal-Tools and RoTBench records."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import pytest

from tlkit.calls import parse_calls, render_calls
from tlkit.data.noise import NOISE_LEVELS, add_noise, derange, slight_edit
from tlkit.data.readers import read_trajectories
from tlkit.irm import Category, classify_call
from tlkit.records import ToolCall, Trajectory, gold_calls
from tlkit.score import score_records
from tlkit.scoring.bfcl import check_bfcl
from tlkit.scoring.rotbench import score_rotbench
from tlkit.scoring.rules import bfcl_functions, react_text

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
RENAMING = ("slight", "medium", "union")  # levels under which every gold tool is renamed


@pytest.fixture(scope="module")
def data(public_data) -> dict[str, list[Trajectory]]:
    read = lambda path, fmt: list(read_trajectories(str(public_data / path), fmt))
    return {
        "simple": read("bfcl_v3/BFCL_v3_simple.json", "bfcl"),
        "multiple": read("bfcl_v3/BFCL_v3_multiple.json", "bfcl"),
        "seal_tools": read("seal_tools/test_in_domain.jsonl", "seal_tools")[:300],
    }


def tool_names(record: Trajectory) -> list[str]:
    return [t.name for t in record.tools]


def test_deterministic_per_record_level_and_seed(data):
    for record in data["multiple"][:50]:
        for level in NOISE_LEVELS:
            assert add_noise(record, level, 0) == add_noise(record, level, 0)
    # another seed, or another level, gives other names
    records = data["multiple"][:50]
    assert sum(tool_names(add_noise(r, "slight", 0)) != tool_names(add_noise(r, "slight", 1)) for r in records) >= 45
    assert sum(tool_names(add_noise(r, "slight", 0)) != tool_names(add_noise(r, "medium", 0)) for r in records) >= 45


def test_clean_record_is_unchanged(data):
    for name in data:
        for record in data[name][:40]:
            before = record.to_json()
            for level in NOISE_LEVELS:
                add_noise(record, level, 3)
            assert record.to_json() == before


@pytest.mark.parametrize("level", RENAMING)
@pytest.mark.parametrize("name", ["simple", "multiple", "seal_tools"])
def test_gold_tools_and_gold_parameters_always_change(data, name, level):
    for record in data[name]:
        clean, noisy = gold_calls(record), gold_calls(add_noise(record, level, 0))
        offered = set(tool_names(record))
        for before, after in zip(clean, noisy):
            if before.name not in offered:  # simple_363's gold names a function that is not offered
                continue
            assert after.name != before.name, (record.id, level)
            if level != "union":  # under union a lone heavy-drawn parameter stays (its tool gains one instead)
                assert not set(before.arguments) & set(after.arguments), (record.id, level)


def test_heavy_shuffles_tool_names_where_there_are_several(data):
    for record in data["multiple"]:  # two to four tools each
        noisy = add_noise(record, "heavy", 0)
        assert sorted(tool_names(noisy)) == sorted(tool_names(record))  # the same names, moved around
        assert gold_calls(noisy)[0].name != gold_calls(record)[0].name
    for record in data["simple"]:  # one tool: its name stays, its parameters carry the noise
        noisy = add_noise(record, "heavy", 0)
        assert tool_names(noisy) == tool_names(record)
        before, after = record.tools[0].parameters, noisy.tools[0].parameters
        added = set(after["properties"]) - set(before["properties"])
        if added:  # a new required parameter, with its fixed value in the description and in the gold call
            (extra,) = added
            value = after["properties"][extra]["description"].split("'")[1]
            assert extra in after["required"] and gold_calls(noisy)[0].arguments[extra] == value
        else:  # shuffled parameter names: every chosen one moves
            assert list(after["properties"]) != list(before["properties"])
            assert sorted(after["properties"]) == sorted(before["properties"])


def test_about_half_of_the_other_tools_and_parameters(data):
    for level, (low, high) in {
        "slight": (0.45, 0.55),
        "medium": (0.45, 0.55),
        "heavy": (0.5, 0.7),
        "union": (0.5, 0.7),
    }.items():
        tools, params = Counter(), Counter()
        for record in data["multiple"]:
            noisy = add_noise(record, level, 0)
            gold = gold_calls(record)[0]
            for before, after in zip(record.tools, noisy.tools):
                if before.name != gold.name:
                    tools[before.name != after.name] += 1
                if level in ("slight", "medium"):  # the parameters no gold call uses, on every tool
                    rest = [p for p in before.parameter_names if before.name != gold.name or p not in gold.arguments]
                    renamed = dict(zip(before.parameter_names, after.parameter_names))
                    params.update(renamed[p] != p for p in rest)
        # heavy swaps a lone chosen tool with one more: a little over half
        assert low <= tools[True] / sum(tools.values()) <= high, (level, tools)
        if level in ("slight", "medium"):
            assert 0.45 <= params[True] / sum(params.values()) <= 0.55, (level, params)


def test_names_stay_unique(data):
    for name in data:
        for record in data[name]:
            for level in NOISE_LEVELS:
                noisy = add_noise(record, level, 0)
                assert len(set(tool_names(noisy))) == len(set(tool_names(record)))
                for before, after in zip(record.tools, noisy.tools):
                    grown = len(after.parameter_names) - len(before.parameter_names)
                    assert grown in (0, 1)  # no two parameters merged into one
                    required = after.parameters.get("required", [])
                    assert len(set(required)) == len(required) and set(required) <= set(after.parameter_names)


@pytest.mark.parametrize("level", NOISE_LEVELS)
def test_noisy_gold_stays_correct(data, level):
    for name in data:
        for record in data[name]:
            noisy = add_noise(record, level, 0)
            gold, clean_gold = gold_calls(noisy), gold_calls(record)
            if classify_call(clean_gold, clean_gold[0], record.tools) is not Category.CORRECT:
                continue  # simple_363: the gold names a function that is not offered
            assert all(classify_call([call], call, noisy.tools) is Category.CORRECT for call in gold), (
                record.id,
                level,
            )
            if name in ("simple", "multiple"):
                for r in (record, noisy):
                    answer = r.meta["possible_answer"]
                    assert check_bfcl(list(gold_calls(r)), answer, bfcl_functions(r.tools), name) == (True, ""), r.id
                # a name that was callable stays callable: the gold renders as Python and parses back
                assert parse_calls(render_calls(gold)[0]) == list(gold)


def test_noisy_bfcl_gold_scores_full_marks_and_clean_gold_does_not(data):
    records = data["multiple"][:40]
    noisy = [add_noise(r, "medium", 0) for r in records]
    gold = [{"id": r.id, "prediction": render_calls(gold_calls(r))[0]} for r in noisy]
    _, summary = score_records(noisy, gold, data_format="bfcl")
    assert (summary["TS"], summary["PI"], summary["CF"]) == (100.0, 100.0, 100.0)
    stale = [{"id": r.id, "prediction": render_calls(gold_calls(r))[0]} for r in records]  # the clean names
    _, summary = score_records(noisy, stale, data_format="bfcl")
    assert summary["TS"] == 0.0 and summary["categories"]["tool_hallucination"] == 100.0


@pytest.mark.parametrize("level", NOISE_LEVELS)
def test_rotbench_alternatives_follow_the_noise(level):
    for file in ("First_Turn_clean.json", "Third_Turn_clean.json"):
        (record,) = read_trajectories(str(FIXTURES / "rotbench" / file), "rotbench")
        noisy = add_noise(record, level, 0)
        alternatives = [ToolCall(a["name"], a["arguments"]) for a in noisy.meta["alternatives"]]
        assert alternatives[0] == gold_calls(noisy)[0]
        assert alternatives[0].name != record.meta["alternatives"][0]["name"] or level == "heavy"
        texts = [react_text(a) for a in alternatives]
        for text in texts:  # each acceptable answer, written by a model, passes RoTBench's rules on the noisy tools
            assert score_rotbench(text, texts, noisy.tools) == (True, True, True)
        if level != "heavy":  # (heavy moves the clean names onto other tools)
            assert score_rotbench(react_text(gold_calls(record)[0]), texts, noisy.tools)[0] is False  # clean names fail


def test_small_pieces():
    rng = random.Random(0)
    mapping = derange(["a", "b", "c", "d"], rng)
    assert sorted(mapping.values()) == ["a", "b", "c", "d"] and all(k != v for k, v in mapping.items())
    edits = [slight_edit("get_weather", random.Random(i)) for i in range(50)]
    assert all(abs(len(e) - len("get_weather")) <= 2 for e in edits)
    assert sum(sum(a != b for a, b in zip(e, "get_weather")) <= 2 for e in edits if len(e) == len("get_weather")) > 0
    with pytest.raises(ValueError, match="unknown noise level 'loud': expected one of slight, medium, heavy, union"):
        add_noise(Trajectory("x", (), ()), "loud", 0)  # type: ignore[arg-type]
