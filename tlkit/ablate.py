"""`tlkit ablate`: the paper's ablation table. Trains and tests every row (one YAML each in
`experiments/ablations/`), for one or more seeds, resumes finished stages, and writes
`<out>/table.md` and `<out>/chart.png`.

Each stage runs `tlkit fit`, then `tlkit test` on the model it exported, in its own process, and
records the test metrics in `<out>/<row>/seed<k>/<sft|ppo>/done.json`; a stage with a `done.json`
is skipped on the next run.
"""

from __future__ import annotations

import argparse
import codecs
import json
import os
import re
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, NamedTuple

import yaml

CONFIGS = Path("experiments/ablations")
TEST_CONFIG = CONFIGS / "base_sft.yaml"  # every row is tested the same way: WeightedSFT over its hf_model/
STAGES = ("sft", "ppo", "test")
METRICS = ("TS", "PI", "CF")
# Teacher-forced over every test set's gold answers: readable while generation still fails (small models).
TEACHER_FORCED = "teacher-forced"
TEACHER_FORCED_METRICS = ("key acc", "CE")


class Row(NamedTuple):
    """A row of the table: the SFT row it trains (or starts from), and whether PPO (IRM) follows."""

    sft: str
    ppo: bool = False


# The paper's ablation table, in its order. An IRM row starts PPO from the matching SFT row's model.
ROWS = {
    "none": Row("none"),
    "mae": Row("mae"),
    "pkt": Row("pkt"),
    "irm": Row("none", ppo=True),
    "mae_pkt": Row("mae_pkt"),
    "mae_irm": Row("mae", ppo=True),
    "pkt_irm": Row("pkt", ppo=True),
    "all": Row("mae_pkt", ppo=True),
}


class Stage(NamedTuple):
    """One training run and its test: `kind` is sft or ppo; `source` is the SFT stage PPO starts from."""

    row: str
    seed: int
    kind: str
    folder: Path
    source: Path | None = None

    @property
    def config(self) -> Path:
        return CONFIGS / f"{self.row}.yaml"

    @property
    def label(self) -> str:
        return f"{self.row} seed{self.seed} {self.kind}"


def fail(message: str) -> SystemExit:
    """An error for the person at the console, without a traceback."""
    return SystemExit(f"tlkit ablate: error: {message}")


def parse_args(args: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="tlkit ablate",
        description="Train and test the rows of the paper's ablation table (experiments/ablations/*.yaml), "
        "then write <out>/table.md and <out>/chart.png. Run from the repository root. Finished stages "
        "(a done.json in their folder) are skipped, so an interrupted run resumes.",
    )
    parser.add_argument("--rows", default=",".join(ROWS),
                        help=f"comma-separated rows, of: {', '.join(ROWS)} (default: all)")
    parser.add_argument("--out", default="runs/ablations", help="output folder (default: runs/ablations)")
    parser.add_argument("--seeds", default="0", help="comma-separated seeds, e.g. 0,1,2 (default: 0)")
    parser.add_argument(
        "--override", action="append", default=[], metavar="[STAGE:]KEY=VALUE",
        help="a config override for every stage, e.g. trainer.max_steps=4 (repeatable); prefix sft:, ppo: or "
        "test: to apply it to one kind of stage only, e.g. ppo:model.init_args.ppo_epochs=1",
    )
    return parser.parse_args(args)


def parse_rows(text: str) -> list[str]:
    rows = [r.strip() for r in text.split(",") if r.strip()]
    unknown = [r for r in rows if r not in ROWS]
    if unknown or not rows:
        raise fail(f"--rows {text!r}: unknown row(s) {', '.join(unknown) or '(none given)'}; "
                   f"the rows are {', '.join(ROWS)}")
    return [r for r in ROWS if r in rows]  # the table's order, whatever the order given


def parse_seeds(text: str) -> list[int]:
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise fail(f"--seeds {text!r}: expected comma-separated integers, e.g. 0,1,2") from None
    if not seeds:
        raise fail("--seeds: give at least one seed")
    return list(dict.fromkeys(seeds))


def parse_overrides(items: list[str]) -> dict[str, list[str]]:
    """`[STAGE:]KEY=VALUE` items as command-line arguments per kind of stage."""
    per_stage: dict[str, list[str]] = {stage: [] for stage in STAGES}
    for item in items:
        match = re.fullmatch(r"(?:(sft|ppo|test):)?([A-Za-z_][\w.]*)=(.*)", item, re.DOTALL)
        if match is None:
            raise fail(f"--override {item!r}: expected KEY=VALUE or STAGE:KEY=VALUE (STAGE: sft, ppo or test), "
                       "e.g. trainer.max_steps=4")
        stage, key, value = match.groups()
        for name in [stage] if stage else STAGES:
            per_stage[name].append(f"--{key}={value}")
    return per_stage


def plan(rows: list[str], seed: int, out: Path) -> list[Stage]:
    """The stages of one seed, in the table's order, each SFT stage before the PPO stage that needs it."""
    stages: dict[Path, Stage] = {}
    for name in rows:
        row = ROWS[name]
        sft = Stage(row.sft, seed, "sft", out / row.sft / f"seed{seed}" / "sft")
        stages.setdefault(sft.folder, sft)
        if row.ppo:
            ppo = Stage(name, seed, "ppo", out / name / f"seed{seed}" / "ppo", source=sft.folder)
            stages[ppo.folder] = ppo
    return list(stages.values())


def final_folder(row: str, seed: int, out: Path) -> Path:
    """The stage whose model a row reports: its PPO stage, or its SFT stage."""
    return out / row / f"seed{seed}" / ("ppo" if ROWS[row].ppo else "sft")


def check_configs(rows: list[str]) -> None:
    """Every YAML the rows need exists (the runner reads them relative to the repository root)."""
    names = {TEST_CONFIG.stem, *rows, *(ROWS[r].sft for r in rows)}
    missing = [str(CONFIGS / f"{n}.yaml") for n in sorted(names) if not (CONFIGS / f"{n}.yaml").is_file()]
    if missing:
        raise fail(f"{', '.join(missing)} not found (in {Path.cwd()}): run tlkit ablate from the repository root, "
                   "where the YAMLs and the data paths they name are")


def logger_args(save_dir: Path, name: str) -> list[str]:
    """Point the run's TensorBoard logger at exactly `<save_dir>/<name>/` (no version_N below it)."""
    return [f"--trainer.logger.init_args.save_dir={save_dir}", f"--trainer.logger.init_args.name={name}",
            "--trainer.logger.init_args.version="]


def fit_command(stage: Stage, overrides: dict[str, list[str]]) -> list[str]:
    start = [f"--model.init_args.model={stage.source / 'hf_model'}"] if stage.source else []
    return ["fit", "--config", str(stage.config), *start, *logger_args(stage.folder.parent, stage.folder.name),
            f"--seed_everything={stage.seed}", f"--data.seed={stage.seed}", *overrides[stage.kind]]


def evaluate_command(stage: Stage, overrides: dict[str, list[str]]) -> list[str]:
    return ["test", "--config", str(TEST_CONFIG), f"--model.init_args.model={stage.folder / 'hf_model'}",
            *logger_args(stage.folder, "test"), f"--seed_everything={stage.seed}", *overrides["test"]]


def run_logged(command: list[str], log: Path) -> int:
    """Run `python -m tlkit.cli COMMAND` in its own process, its output to the console and to `log`."""
    argv = [sys.executable, "-m", "tlkit.cli", *command]
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as file:
        file.write(f"$ tlkit {shlex.join(command)}\n".encode())
        process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   env={**os.environ, "PYTHONUNBUFFERED": "1"})
        assert process.stdout is not None
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")  # a chunk may end inside a character
        for chunk in iter(lambda: process.stdout.read1(65536), b""):
            file.write(chunk)
            sys.stdout.write(decoder.decode(chunk))
            sys.stdout.flush()
        return process.wait()


def test_prediction_files(folder: Path) -> list[tuple[str, Path]]:
    """(eval set, file) of every prediction file `tlkit test` wrote into `folder/predictions/`."""
    from tlkit.modules.evaluation import PREDICTION_FILE

    matches = ((PREDICTION_FILE.fullmatch(p.name), p) for p in sorted((folder / "predictions").glob("*.jsonl")))
    return [(m["name"], p) for m, p in matches if m and m["stage"] == "test"]


def read_test_metrics(folder: Path) -> dict[str, dict[str, float]]:
    """TS / PI / CF (percent) and n per eval set, from the prediction files `tlkit test` wrote."""
    rows: dict[str, list[dict[str, Any]]] = {}
    for name, path in test_prediction_files(folder):
        rows.setdefault(name, []).extend(json.loads(line) for line in path.read_text().splitlines() if line)
    order = eval_set_names(folder)
    metrics = {}
    for name in sorted(rows, key=lambda n: (order.index(n) if n in order else len(order), n)):
        # once per record: under DDP each rank writes its rows, and Lightning's sampler repeats a few
        scored = list({r.get("index", i): r for i, r in enumerate(rows[name]) if "ts" in r}.values())
        if scored:
            metrics[name] = {"n": len(scored),
                             **{m: 100 * sum(r[m.lower()] for r in scored) / len(scored) for m in METRICS}}
    if not metrics:
        raise fail(f"no test predictions in {folder / 'predictions'}: does the test config list data.test files?")
    return metrics


def read_item_scores(folder: Path) -> dict[str, dict[int, float]]:
    """CF (0 or 1) of each test record, per eval set, keyed by the record's index in its set."""
    scores: dict[str, dict[int, float]] = {}
    for name, path in test_prediction_files(folder):
        for i, line in enumerate(path.read_text().splitlines()):
            record = json.loads(line) if line else {}
            if "cf" in record:
                scores.setdefault(name, {})[int(record.get("index", i))] = float(record["cf"])
    return scores


def paired_bootstrap(row: list[float], base: list[float], resamples: int = 10_000,
                     seed: int = 0) -> tuple[float, float, float]:
    """Mean of `row - base` over paired items, with its 95% percentile bootstrap interval (items resampled
    with replacement, both scores of an item together)."""
    import torch

    if len(row) != len(base) or not row:
        raise ValueError(f"paired bootstrap needs two equally long, non-empty lists (got {len(row)} and {len(base)})")
    diff = torch.tensor(row, dtype=torch.float64) - torch.tensor(base, dtype=torch.float64)
    picks = torch.randint(len(diff), (resamples, len(diff)), generator=torch.Generator().manual_seed(seed))
    means = diff[picks].mean(dim=1)
    low, high = torch.quantile(means, torch.tensor([0.025, 0.975], dtype=torch.float64)).tolist()
    return diff.mean().item(), low, high


def read_teacher_forced(folder: Path) -> dict[str, float]:
    """Key-token accuracy (percent) and plain cross-entropy of the test run, from its TensorBoard events."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(folder), size_guidance={"scalars": 0}).Reload()
    tags = set(events.Tags()["scalars"])
    values = {}
    from tlkit.modules.sft import CROSS_ENTROPY, KEY_ACCURACY

    for name, tag, scale in (("key acc", f"test/{KEY_ACCURACY}", 100.0), ("CE", f"test/{CROSS_ENTROPY}", 1.0)):
        if tag in tags:
            values[name] = scale * events.Scalars(tag)[-1].value
    return values


def eval_set_names(folder: Path) -> list[str]:
    """The eval sets of a test run in the order its `data.test` lists them (from its saved config.yaml)."""
    path = folder / "config.yaml"
    if not path.is_file():
        return []
    from tlkit.data.loading import DataFile

    files = ((yaml.safe_load(path.read_text()) or {}).get("data") or {}).get("test") or []
    return [DataFile(**f).name for f in files]


def set_aside(folder: Path) -> None:
    """Move an unfinished stage's folder out of the way (nothing is deleted)."""
    k = 1
    while folder.with_name(f"{folder.name}.incomplete-{k}").exists():
        k += 1
    target = folder.with_name(f"{folder.name}.incomplete-{k}")
    folder.rename(target)
    print(f"tlkit ablate: {folder} has no done.json (an interrupted run): moved to {target}, starting the stage again")


def run_stage(stage: Stage, overrides: dict[str, list[str]]) -> dict[str, Any]:
    """Fit, export, test, and write `done.json`; a stage that has one is skipped."""
    done = stage.folder / "done.json"
    commands = [fit_command(stage, overrides), evaluate_command(stage, overrides)]
    if done.is_file():
        record = json.loads(done.read_text())
        note = ("" if record.get("commands") == commands
                else " (it ran with other options: delete the folder to run it again)")
        print(f"tlkit ablate: {stage.label}: done, skipped ({done}){note}")
        return record
    if stage.source is not None and not (stage.source / "done.json").is_file():
        raise fail(f"{stage.label} starts from {stage.source}, which is not finished")
    if stage.folder.exists():
        set_aside(stage.folder)
    started = time.time()
    log = stage.folder / "stage.log"
    for command in commands:
        print(f"tlkit ablate: {stage.label}: tlkit {shlex.join(command)}", flush=True)
        if run_logged(command, log) != 0:
            raise fail(f"{stage.label} failed (tlkit {command[0]}): see the output above, also in {log}; "
                       "run tlkit ablate again to retry it, finished stages are kept")
    record = {"row": stage.row, "seed": stage.seed, "stage": stage.kind, "commands": commands,
              "hf_model": str(stage.folder / "hf_model"), "seconds": round(time.time() - started, 1),
              "metrics": read_test_metrics(stage.folder / "test"),
              "teacher_forced": read_teacher_forced(stage.folder / "test"),
              "items": read_item_scores(stage.folder / "test")}
    done.with_suffix(".tmp").write_text(json.dumps(record, indent=2) + "\n")
    done.with_suffix(".tmp").replace(done)  # atomic: a done.json is always complete
    return record


def summarise(values: list[float], digits: int = 1) -> str:
    """`12.5`, or `12.5 ± 1.3` (sample std) over several seeds."""
    mean = statistics.fmean(values)
    return f"{mean:.{digits}f}" if len(values) == 1 else f"{mean:.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def collect(rows: list[str], seeds: list[int], out: Path) -> dict[str, dict[str, dict[str, list[float]]]]:
    """row -> eval set (and `teacher-forced`) -> metric -> one value per seed, from the done.json files."""
    table: dict[str, dict[str, dict[str, list[float]]]] = {}
    for row in rows:
        for seed in seeds:
            record = json.loads((final_folder(row, seed, out) / "done.json").read_text())
            for name, values in [*record["metrics"].items(), (TEACHER_FORCED, record.get("teacher_forced", {}))]:
                for metric, value in values.items():
                    table.setdefault(row, {}).setdefault(name, {}).setdefault(metric, []).append(value)
    return table


def eval_sets(table: dict[str, dict[str, dict[str, list[float]]]]) -> list[str]:
    """Every eval set of the table, clean sets first, in a stable order (not `teacher-forced`)."""
    return list(dict.fromkeys(name for sets in table.values() for name in sets if name != TEACHER_FORCED))


def markdown_table(table: dict[str, dict[str, dict[str, list[float]]]], seeds: list[int]) -> str:
    """Markdown: one line per row, one column per eval set, each cell `TS / PI / CF` in percent."""
    sets = eval_sets(table)
    spread = "mean ± sample std over seeds " + ", ".join(map(str, seeds)) if len(seeds) > 1 else f"seed {seeds[0]}"
    lines = [
        "# Ablation table",
        "",
        f"TS / PI / CF in percent per eval set ({spread}); n = scored records. "
        "`+heavy`: the same set with RoTBench-style heavy noise on tool and parameter names.",
        "Rows: MAE = no loss on calls whose feedback shows an error, PKT = key-token weighting, IRM = error-aware PPO.",
        "Teacher-forced, over the gold answers of all test sets: key acc = top-1 accuracy (percent) at PKT's key "
        "tokens of the tool names, CE = plain cross-entropy (nats per token, the mean over test batches).",
        "",
    ]
    ns = {name: next(int(table[r][name]["n"][0]) for r in table if name in table[r]) for name in sets}
    forced = any(table[r].get(TEACHER_FORCED) for r in table)
    lines.append("| row | " + " | ".join(f"{name} (n={ns[name]})" for name in sets)
                 + (" | key acc / CE |" if forced else " |"))
    lines.append("|---|" + "---:|" * (len(sets) + forced))
    for row, cells in table.items():
        values = [" / ".join(summarise(cells[name][m]) for m in METRICS) if name in cells else "–" for name in sets]
        if forced:
            teacher = cells.get(TEACHER_FORCED, {})
            values.append(" / ".join(summarise(teacher[m], 2 if m == "CE" else 1) if m in teacher else "–"
                                     for m in TEACHER_FORCED_METRICS))
        lines.append(f"| {row} | " + " | ".join(values) + " |")
    return "\n".join(lines) + "\n"


def compare_with_none(rows: list[str], seeds: list[int], out: Path) -> dict[str, dict[str, tuple[float, float, float]]]:
    """row -> eval set -> CF difference against row `none` in points, with its 95% paired bootstrap interval;
    items are (seed, record) pairs present in both rows."""
    def items(row: str, seed: int) -> dict[str, dict[str, float]]:
        return json.loads((final_folder(row, seed, out) / "done.json").read_text()).get("items", {})

    comparison: dict[str, dict[str, tuple[float, float, float]]] = {}
    if "none" not in rows:
        return comparison
    base = {seed: items("none", seed) for seed in seeds}
    for row in rows:
        if row == "none":
            continue
        for seed in seeds:
            for name, scores in items(row, seed).items():
                pairs = comparison.setdefault(row, {}).setdefault(name, [])  # type: ignore[arg-type]
                pairs += [(v, base[seed][name][k]) for k, v in scores.items() if k in base[seed].get(name, {})]
        for name, pairs in comparison.get(row, {}).items():
            mean, low, high = paired_bootstrap([a for a, _ in pairs], [b for _, b in pairs])
            comparison[row][name] = (100 * mean, 100 * low, 100 * high)
    return comparison


def markdown_comparison(comparison: dict[str, dict[str, tuple[float, float, float]]], sets: list[str]) -> str:
    """Markdown: CF of each row minus CF of `none`, in points, with its 95% interval; * where it excludes 0."""
    if not comparison:
        return ""
    lines = ["", "CF against row `none`, in points: mean difference over paired test items [95% paired bootstrap "
             "interval, 10,000 resamples]; * where the interval excludes 0.", "",
             "| row | " + " | ".join(sets) + " |", "|---|" + "---:|" * len(sets)]
    for row, cells in comparison.items():
        values = []
        for name in sets:
            if name not in cells:
                values.append("–")
                continue
            mean, low, high = cells[name]
            values.append(f"{mean:+.1f} [{low:+.1f}, {high:+.1f}]" + ("*" if low > 0 or high < 0 else ""))
        lines.append(f"| {row} | " + " | ".join(values) + " |")
    return "\n".join(lines) + "\n"


def write_chart(table: dict[str, dict[str, dict[str, list[float]]]], path: Path) -> bool:
    """Grouped bars of TS / PI / CF per row, one panel per eval set; False when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print(f"tlkit ablate: matplotlib is not installed, so no {path}: pip install matplotlib, then run "
              "tlkit ablate again (finished stages are skipped, only the table and the chart are redone)")
        return False
    rows = list(table)
    panels = eval_sets(table) + ([TEACHER_FORCED] if any(table[r].get(TEACHER_FORCED) for r in rows) else [])
    columns = min(3, len(panels))
    figure, axes = plt.subplots((len(panels) + columns - 1) // columns, columns, squeeze=False,
                                figsize=(4.5 * columns, 3.2 * ((len(panels) + columns - 1) // columns)))
    for ax, name in zip(axes.flat, panels):
        metrics = ("key acc",) if name == TEACHER_FORCED else METRICS
        width = 0.8 / len(metrics)
        for k, metric in enumerate(metrics):
            values = [table[r][name].get(metric, [0.0]) if name in table[r] else [0.0] for r in rows]
            means = [statistics.fmean(v) for v in values]
            errors = [statistics.stdev(v) if len(v) > 1 else 0.0 for v in values]
            ax.bar([i + (k - (len(metrics) - 1) / 2) * width for i in range(len(rows))], means, width, yerr=errors,
                   label=metric, capsize=2, color=None if name != TEACHER_FORCED else "tab:gray")
        ax.set_title("key-token accuracy, teacher-forced (all test sets)" if name == TEACHER_FORCED else name,
                     fontsize=9)
        ax.set_xticks(range(len(rows)), rows, rotation=45, ha="right", fontsize=8)
        ax.set_ylim(0, 100)
        ax.set_ylabel("%")
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=8)
    several = any(len(v) > 1 for cells in table.values() for cell in cells.values() for v in cell.values())
    title = "TS / PI / CF" + (" and key-token accuracy" if TEACHER_FORCED in panels else "") + " per row"
    figure.suptitle(title + (" (mean ± std over seeds)" if several else ""), fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return True


def main(args: list[str] | None = None) -> None:
    """`tlkit ablate [--rows ...] [--out DIR] [--seeds 0,1,2] [--override [STAGE:]KEY=VALUE ...]`."""
    options = parse_args(args)
    rows, seeds = parse_rows(options.rows), parse_seeds(options.seeds)
    overrides, out = parse_overrides(options.override), Path(options.out)
    check_configs(rows)
    for seed in seeds:
        for stage in plan(rows, seed, out):
            run_stage(stage, overrides)
    table = collect(rows, seeds, out)
    text = markdown_table(table, seeds) + markdown_comparison(compare_with_none(rows, seeds, out), eval_sets(table))
    (out / "table.md").write_text(text)
    print(text)
    print(f"tlkit ablate: wrote {out / 'table.md'}")
    if write_chart(table, out / "chart.png"):
        print(f"tlkit ablate: wrote {out / 'chart.png'}")


if __name__ == "__main__":
    main()
