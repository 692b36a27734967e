"""The console tables of tool-call scores, one place for all of them: the end of `tlkit test` (one line per
eval set), the before / after summary that closes a fit, and `tlkit score`'s report."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from tlkit.irm import Category, ErrorCategoryReward


def top_categories(metrics: dict[str, float], k: int = 3) -> str:
    """The `k` largest shares among `category/<name>` keys, e.g. `wrong_tool 30%, correct 25%`; `-` if none."""
    shares = sorted(((v, name.split("/", 1)[1]) for name, v in metrics.items() if name.startswith("category/")),
                    reverse=True)
    return ", ".join(f"{name} {100 * v:.0f}%" for v, name in shares[:k] if v > 0) or "-"


def eval_sets_table(table: list[tuple[str, int, dict[str, Any]]]) -> str:
    """One row per eval set `(name, n, {ts, pi, cf, category/<name>: share})`: TS / PI / CF in percent and
    the commonest error categories."""
    lines = [f"{'eval set':32s} {'n':>5s} {'TS':>6s} {'PI':>6s} {'CF':>6s}  top categories"]
    for name, n, values in table:
        values = {k: float(v) for k, v in values.items()}
        scores = " ".join(f"{100 * values[m]:6.1f}" for m in ("ts", "pi", "cf"))
        lines.append(f"{name:32s} {n:5d} {scores}  {top_categories(values)}")
    return "\n".join(lines)


Evaluation = tuple[int, dict[str, dict[str, float]]]  # (step, {eval set: {metric: value}})


def before_after_table(first: Evaluation, last: Evaluation) -> str:
    """Per eval set: TS / PI / CF at the first and the last validation (each set by its benchmark's
    rule; where no call is right, the share of answers with none), and the commonest error categories."""
    (step0, before), (step1, after) = first, last
    lines = [f"tool calls on the validation sets, step {step0} -> step {step1} (%):",
             f"{'eval set':28s} {'TS':>14s} {'PI':>14s} {'CF':>14s}  top categories (before | after)"]
    for name in sorted(set(before) | set(after)):
        b, a = before.get(name, {}), after.get(name, {})
        cells = " ".join(f"{percent(b.get(m)):>5s} -> {percent(a.get(m)):>5s}" for m in ("ts", "pi", "cf"))
        lines.append(f"{name[:28]:28s}  {cells}  {top_categories(b)} | {top_categories(a)}")
    rewarded = [name for name in sorted(set(before) & set(after))
                if "reward" in before[name].keys() & after[name].keys()]
    if rewarded:  # PPO: its reward on the same prompts, greedy, unlike the rollouts' (new prompts, sampled)
        lines.append("mean reward of the greedy answers, the same prompts: " + ", ".join(
            f"{name} {before[name]['reward']:+.2f} -> {after[name]['reward']:+.2f}" for name in rewarded))
    return "\n".join(lines)


def score_report(summary: dict, rows: Sequence[dict]) -> str:
    """`tlkit score`'s report on one file: TS / PI / CF, and each category's count, share and reward."""
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


def percent(value: float | None) -> str:
    """A 0-1 share in percent with one decimal; `-` where there is none."""
    return "-" if value is None else f"{100 * value:.1f}"
