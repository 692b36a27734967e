"""The ablation table: every row's YAML parses and changes only what its row says; `tlkit ablate` runs
rows, tests them, tabulates, charts, and resumes."""

import contextlib
import functools
import io
import json
import sys
from pathlib import Path

import pytest
import yaml

from tlkit import ablate
from tlkit.cli import main

ROOT = Path(__file__).resolve().parents[1]
ABLATIONS = ROOT / "experiments/ablations"
CONFIGS = sorted(ABLATIONS.glob("*.yaml"))
PKT = "model.init_args.loss"
# What each row changes against its base (SFT rows: base_sft; IRM rows: base_ppo, which starts from row
# `none` as row `irm` does), as key prefixes.
CHANGES = {
    "none": set(), "mae": {"data.mae"}, "pkt": {PKT}, "mae_pkt": {"data.mae", PKT},
    "irm": set(), "mae_irm": {"model.init_args.model", "data.mae"},
    "pkt_irm": {"model.init_args.model"}, "all": {"model.init_args.model", "data.mae"},
}


@functools.cache
def resolved(name: str) -> dict:
    """The full configuration `tlkit fit --config experiments/ablations/NAME.yaml --print_config` prints."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as exit:
        main(["fit", "--config", str(ABLATIONS / f"{name}.yaml"), "--print_config"])
    assert exit.value.code in (0, None), exit.value.code
    return yaml.safe_load(out.getvalue())


def flatten(config: dict, prefix: str = "") -> dict:
    """`{"a": {"b": 1}}` as `{"a.b": 1}`; lists stay values."""
    flat = {}
    for key, value in config.items():
        if isinstance(value, dict) and value:
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def differences(a: dict, b: dict) -> set[str]:
    flat_a, flat_b = flatten(a), flatten(b)
    return {k for k in flat_a.keys() | flat_b.keys() if flat_a.get(k, "<absent>") != flat_b.get(k, "<absent>")}


def test_the_yamls_are_the_rows_of_the_table():
    assert {p.stem for p in CONFIGS} == {*ablate.ROWS, "base_sft", "base_ppo"}
    assert set(CHANGES) == set(ablate.ROWS)


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: p.stem)
def test_every_ablation_yaml_parses_and_opens_with_its_command(config):
    text = config.read_text()
    assert text.startswith("#")
    comment = "".join(line for line in text.splitlines(keepends=True) if line.startswith("#"))
    assert f"tlkit fit --config experiments/ablations/{config.stem}.yaml" in comment
    if config.stem in ablate.ROWS:
        assert f"tlkit ablate --rows {config.stem}\n" in comment
    printed = resolved(config.stem)
    assert printed["model"]["class_path"].startswith("tlkit.") and "trainer" in printed


@pytest.mark.parametrize("row", list(ablate.ROWS))
def test_each_row_differs_from_its_base_only_in_what_it_changes(row):
    irm = ablate.ROWS[row].ppo
    config, base = resolved(row), resolved("base_ppo" if irm else "base_sft")
    changed = differences(config, base)
    assert {prefix for prefix in CHANGES[row] if any(k.startswith(prefix) for k in changed)} == CHANGES[row]
    assert all(any(k.startswith(prefix) for prefix in CHANGES[row]) for k in changed), changed
    if irm:  # the module changes (PPO after SFT) and starts from the matching SFT row's export
        sft = resolved(ablate.ROWS[row].sft)
        assert (sft["model"]["class_path"], config["model"]["class_path"]) == (
            "tlkit.WeightedSFT", "tlkit.ErrorAwarePPO")
        assert config["model"]["init_args"]["model"] == f"runs/ablations/{ablate.ROWS[row].sft}/seed0/sft/hf_model"
        assert config["data"]["mae"] == sft["data"]["mae"]
    if not irm:  # PKT rows weigh key tokens up to 9, the others are plain SFT (w_max 1)
        assert config["model"]["init_args"]["loss"]["init_args"]["w_max"] == (9.0 if "pkt" in row else 1.0)
    assert config["data"]["mae"] == (row in ("mae", "mae_pkt", "mae_irm", "all"))


def test_both_bases_test_on_the_same_clean_and_noisy_sets():
    sft, ppo = resolved("base_sft")["data"]["test"], resolved("base_ppo")["data"]["test"]
    assert sft == ppo
    assert {f["noise"] for f in sft} == {None, "heavy"}
    assert {f["path"] for f in sft if f["noise"]} == {f["path"] for f in sft if not f["noise"]}


def test_plan_trains_each_sft_row_once_before_the_ppo_that_needs_it(tmp_path):
    stages = ablate.plan(["none", "irm", "pkt_irm", "all"], 1, tmp_path)
    assert [(s.row, s.kind) for s in stages] == [
        ("none", "sft"), ("irm", "ppo"), ("pkt", "sft"), ("pkt_irm", "ppo"), ("mae_pkt", "sft"), ("all", "ppo")]
    assert stages[1].source == stages[0].folder == tmp_path / "none/seed1/sft"
    assert stages[1].folder == tmp_path / "irm/seed1/ppo"


def test_overrides_rows_and_seeds_are_checked():
    overrides = ablate.parse_overrides(["trainer.max_steps=4", "ppo:model.init_args.ppo_epochs=1",
                                        "data.test=[{path: a}]"])
    assert overrides["sft"] == overrides["test"] == ["--trainer.max_steps=4", "--data.test=[{path: a}]"]
    assert overrides["ppo"] == ["--trainer.max_steps=4", "--model.init_args.ppo_epochs=1", "--data.test=[{path: a}]"]
    assert ablate.parse_rows("irm, none") == ["none", "irm"]  # the table's order
    assert ablate.parse_seeds("0,1,1") == [0, 1]
    for call, bad in ((ablate.parse_overrides, ["max_steps"]), (ablate.parse_rows, "none,w/o_mae"),
                      (ablate.parse_seeds, "a")):
        with pytest.raises(SystemExit, match="tlkit ablate: error:"):
            call(bad)


def test_table_gives_mean_and_std_over_seeds():
    table = {"none": {"BFCL": {"TS": [10.0, 20.0], "PI": [5.0, 5.0], "CF": [0.0, 2.0], "n": [50, 50]}},
             "all": {"BFCL": {"TS": [40.0, 50.0], "PI": [30.0, 30.0], "CF": [20.0, 22.0], "n": [50, 50]}}}
    text = ablate.markdown_table(table, [0, 1])
    assert "| row | BFCL (n=50) |" in text
    assert "| none | 15.0 ± 7.1 / 5.0 ± 0.0 / 1.0 ± 1.4 |" in text
    assert "| all | 45.0 ± 7.1 / 30.0 ± 0.0 / 21.0 ± 1.4 |" in text
    assert "| none | 10.0 / 5.0 / 0.0 |" in ablate.markdown_table(
        {"none": {"BFCL": {k: v[:1] for k, v in table["none"]["BFCL"].items()}}}, [0])
    table["none"]["teacher-forced"] = {"key acc": [20.0, 30.0], "CE": [3.0, 3.5]}
    text = ablate.markdown_table(table, [0, 1])
    assert "| row | BFCL (n=50) | key acc / CE |" in text
    assert "| none | 15.0 ± 7.1 / 5.0 ± 0.0 / 1.0 ± 1.4 | 25.0 ± 7.1 / 3.25 ± 0.35 |" in text
    assert "| all | 45.0 ± 7.1 / 30.0 ± 0.0 / 21.0 ± 1.4 | – / – |" in text


def test_paired_bootstrap_interval_of_a_cf_difference():
    # 100 paired items: the row fixes 10 of none's failures and breaks 2 of its successes: +8 points
    base = [1.0] * 40 + [0.0] * 60
    row = [1.0] * 38 + [0.0] * 2 + [1.0] * 10 + [0.0] * 50
    mean, low, high = ablate.paired_bootstrap(row, base)
    assert mean == pytest.approx(0.08)
    # the normal paired interval: sd of the per-item difference 0.337, so 0.08 +- 1.96 * 0.0337 = [0.014, 0.146]
    assert 0.005 < low < 0.03 and 0.13 < high <= 0.16
    assert ablate.paired_bootstrap(base, base) == (0.0, 0.0, 0.0)  # the same answers: no difference, none possible
    # unpaired resampling would see noise here; pairing sees that the two rows agree on all but one item
    mean, low, high = ablate.paired_bootstrap(base[:-1] + [1.0], base)
    assert (mean, low) == (pytest.approx(0.01), 0.0) and high <= 0.03
    with pytest.raises(ValueError, match="equally long"):
        ablate.paired_bootstrap(row[:-1], base)


def test_comparison_marks_rows_whose_interval_excludes_zero():
    text = ablate.markdown_comparison({"pkt": {"BFCL": (8.0, 2.0, 14.0), "Seal": (1.0, -3.0, 5.0)}},
                                      ["BFCL", "Seal", "X"])
    assert "| pkt | +8.0 [+2.0, +14.0]* | +1.0 [-3.0, +5.0] | – |" in text
    assert ablate.markdown_comparison({}, ["BFCL"]) == ""


def test_without_matplotlib_the_chart_is_skipped_with_a_message(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now raises ImportError
    table = {"none": {"BFCL": {"TS": [10.0], "PI": [5.0], "CF": [0.0], "n": [50]}}}
    assert not ablate.write_chart(table, tmp_path / "chart.png")
    assert "pip install matplotlib" in capsys.readouterr().out and not (tmp_path / "chart.png").exists()


def test_ablate_runs_two_rows_tabulates_and_resumes(tmp_path, monkeypatch, capsys):
    pytest.importorskip("matplotlib")
    monkeypatch.chdir(ROOT)
    multiple = "experiments/data/bfcl_v3/BFCL_v3_multiple.json"
    short = [  # a few steps, two tiny test sets (clean and heavy noise), nothing else
        "trainer.max_steps=2", "trainer.limit_train_batches=1", "trainer.limit_val_batches=0",
        "trainer.val_check_interval=1", "trainer.limit_test_batches=1", "data.batch_size=2", "data.eval_batch_size=2",
        "model.init_args.max_new_tokens=8", "data.val=null",
        "data.train=[{path: experiments/data/seal_tools/dev_subset.jsonl, format: seal_tools}]",
        f"data.test=[{{path: {multiple}, format: bfcl}}, {{path: {multiple}, format: bfcl, noise: heavy}}]",
        f"data.cache_dir={tmp_path / 'cache'}",
        "sft:model.init_args.model=experiments/models/tiny-llama",  # PPO starts from the SFT stage's export
    ]
    out = tmp_path / "ablations"
    args = ["--rows", "none,irm", "--out", str(out), *(a for o in short for a in ("--override", o))]
    with monkeypatch.context() as patch, pytest.raises(SystemExit,
                                                       match=r"none seed0 sft failed \(tlkit fit\).*stage.log"):
        patch.setattr(ablate, "run_logged", lambda command, log: 1)  # a stage that fails
        ablate.main(args)
    (out / "none/seed0/sft").mkdir(parents=True)  # and one interrupted: a folder without done.json
    (out / "none/seed0/sft/stage.log").write_text("interrupted")
    ablate.main(args)
    assert (out / "none/seed0/sft.incomplete-1/stage.log").is_file()  # the interrupted attempt, set aside
    done = [out / "none/seed0/sft/done.json", out / "irm/seed0/ppo/done.json"]
    for path in done:
        record = json.loads(path.read_text())
        assert list(record["metrics"]) == ["BFCL_v3_multiple", "BFCL_v3_multiple+heavy"]
        assert set(record["metrics"]["BFCL_v3_multiple"]) == {"n", "TS", "PI", "CF"}
        assert set(record["teacher_forced"]) == {"key acc", "CE"} and record["teacher_forced"]["CE"] > 0
    assert json.loads(done[1].read_text())["commands"][0][3] == (
        f"--model.init_args.model={out / 'none/seed0/sft/hf_model'}")
    table = (out / "table.md").read_text()
    assert "| row | BFCL_v3_multiple (n=2) | BFCL_v3_multiple+heavy (n=2) | key acc / CE |" in table
    assert "\n| none | " in table and "\n| irm | " in table
    assert "CF against row `none`, in points" in table and table.count("\n| irm | ") == 2  # its scores, its difference
    items = json.loads(done[0].read_text())["items"]
    assert sorted(items) == ["BFCL_v3_multiple", "BFCL_v3_multiple+heavy"] and len(items["BFCL_v3_multiple"]) == 2
    assert (out / "chart.png").stat().st_size > 0
    stamps = [p.stat().st_mtime_ns for p in done]
    capsys.readouterr()
    ablate.main(args)  # everything is done: nothing runs again, the table is rewritten
    printed = capsys.readouterr().out
    assert "none seed0 sft: done, skipped" in printed and "irm seed0 ppo: done, skipped" in printed
    assert "tlkit fit" not in printed
    assert [p.stat().st_mtime_ns for p in done] == stamps
    assert (out / "table.md").read_text() == table


def test_test_metrics_count_each_record_once_across_rank_files(tmp_path):
    """Under DDP each rank writes its rows, and Lightning's sampler repeats a record to pad: counted once."""
    folder = tmp_path / "predictions"
    folder.mkdir()
    row = lambda index, ok: json.dumps({"id": f"r{index}", "index": index, "ts": ok, "pi": ok, "cf": ok})
    (folder / "test-step0-BFCL_v3_irrelevance.rank0.jsonl").write_text(row(0, True) + "\n" + row(2, False) + "\n")
    (folder / "test-step0-BFCL_v3_irrelevance.rank1.jsonl").write_text(row(1, True) + "\n" + row(0, True) + "\n")
    assert ablate.read_test_metrics(tmp_path) == {
        "BFCL_v3_irrelevance": {"n": 3, "TS": 200 / 3, "PI": 200 / 3, "CF": 200 / 3}
    }
