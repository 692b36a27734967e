"""The console tables of scores (`tlkit.scoring.report`): the end of a fit, `tlkit test`, `tlkit score`."""

from __future__ import annotations

from tlkit.irm import Category
from tlkit.scoring.report import before_after_table, eval_sets_table, score_report, top_categories


def test_the_comparison_shows_each_set_before_and_after_with_its_commonest_categories():
    before = (0, {"BFCL_v3_simple": {"ts": 0.01, "pi": 0.01, "cf": 0.0, "category/format_error": 0.97,
                                     "category/wrong_tool": 0.02, "category/correct": 0.0}})
    after = (60, {"BFCL_v3_simple": {"ts": 0.89, "pi": 0.8, "cf": 0.45, "category/content_error": 0.3,
                                     "category/correct": 0.45}}, )
    table = before_after_table(before, after).splitlines()
    assert table[0] == "tool calls on the validation sets, step 0 -> step 60 (%):"
    assert table[2].split()[:10] == ["BFCL_v3_simple", "1.0", "->", "89.0", "1.0", "->", "80.0", "0.0", "->", "45.0"]
    assert table[2].endswith("format_error 97%, wrong_tool 2% | correct 45%, content_error 30%")
    assert top_categories({"category/correct": 0.0}) == "-"
    assert not any("mean reward" in line for line in table)  # SFT logs no reward
    priced = before_after_table((0, {"BFCL": {"ts": 0.5, "pi": 0.5, "cf": 0.5, "reward": -0.25}}),
                                (28, {"BFCL": {"ts": 0.6, "pi": 0.6, "cf": 0.6, "reward": 0.1}}))
    assert priced.splitlines()[-1] == "mean reward of the greedy answers, the same prompts: BFCL -0.25 -> +0.10"


def test_the_test_table_has_one_line_per_set_with_its_commonest_categories():
    table = eval_sets_table([("BFCL_v3_simple", 100, {"ts": 0.9, "pi": 0.73, "cf": 0.51, "category/correct": 0.51,
                                                      "category/content_error": 0.22, "category/wrong_tool": 0.0})])
    lines = table.splitlines()
    assert lines[0].split() == ["eval", "set", "n", "TS", "PI", "CF", "top", "categories"]
    assert lines[1].split()[:5] == ["BFCL_v3_simple", "100", "90.0", "73.0", "51.0"]
    assert lines[1].endswith("correct 51%, content_error 22%")


def test_the_score_report_counts_each_category_with_its_reward():
    rows = [{"category": "correct", "reward": 1.0}, {"category": "wrong_tool", "reward": -1.5}]
    summary = {"n": 2, "missing": 0, "TS": 50.0, "PI": 50.0, "CF": 50.0,
               "categories": {c.value: (50.0 if c.value in ("correct", "wrong_tool") else 0.0) for c in Category}}
    report = score_report(summary, rows).splitlines()
    assert report[0].startswith("records  2")
    assert [line.split() for line in report if line.startswith(("wrong_tool", "correct"))] == [
        ["wrong_tool", "1", "50.00", "-1.50"], ["correct", "1", "50.00", "1.00"]]
    assert report[-1].split() == ["mean", "reward", "-0.250"]
