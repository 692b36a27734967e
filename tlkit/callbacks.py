"""What a user sees while a run goes and when it ends: one progress bar for the whole run, and a summary."""

from __future__ import annotations

import re
import resource
import sys
import time
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback, TQDMProgressBar

from tlkit.scoring.report import before_after_table, top_categories

# `val/<eval set>/<metric>`: what generation-based evaluation logs per eval set.
EVAL_KEY = re.compile(r"^val/(?P<set>[^/]+)/(?P<metric>ts|pi|cf|reward|category/.+)$")
# What ErrorAwarePPO logs of each rollout: its mean reward and the share of each error category.
ROLLOUT_KEY = re.compile(r"^ppo/(?P<metric>reward_mean|category/.+)$")


def peak_memory_gb() -> float:
    """Peak resident memory of this process so far, in GB (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak * (1 if sys.platform == "darwin" else 1024) / 1e9


class StepProgressBar(TQDMProgressBar):
    """One training bar for the whole run: training steps out of the run's total, with the run's ETA
    (Lightning's own bar restarts each epoch, and shows `Epoch 0/-2` when only `max_steps` is set).
    A step is an optimiser step; under manual optimisation (PPO: several optimiser steps per rollout)
    it is a training batch, as Lightning's total counts it."""

    @staticmethod
    def steps_done(trainer: L.Trainer, pl_module: L.LightningModule) -> int:
        if pl_module.automatic_optimization:
            return trainer.global_step
        return trainer.fit_loop.epoch_loop.batch_progress.total.processed  # this batch included

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        bar, total = self.train_progress_bar, int(trainer.estimated_stepping_batches)
        if bar.total != total:  # once per run (or after a resume): later epochs keep the rate and the ETA
            bar.reset(total=total)
            bar.initial = bar.n = self.steps_done(trainer, pl_module)
            bar.set_description("Training steps" if pl_module.automatic_optimization else "Training batches")
            bar.refresh()

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        bar, step = self.train_progress_bar, self.steps_done(trainer, pl_module)
        if step != bar.n and self._should_update(step, bar.total):
            bar.n = step
            bar.set_postfix(self.get_metrics(trainer, pl_module))  # refreshes the bar

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.train_progress_bar.set_postfix(self.get_metrics(trainer, pl_module))


class RunSummary(Callback):
    """Collects each eval set's scores at every validation; `report()` compares the first with the last."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.evaluations: list[tuple[int, dict[str, dict[str, float]]]] = []  # (step, {set: {metric: value}})
        self.rollouts: list[dict[str, float]] = []  # PPO: {metric: value} of each rollout
        self.log_dir: str | None = None

    def on_train_batch_end(self, trainer: L.Trainer, *_: Any) -> None:
        rollout = {m["metric"]: float(v) for k, v in trainer.callback_metrics.items() if (m := ROLLOUT_KEY.match(k))}
        if rollout:
            self.rollouts.append(rollout)

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.log_dir = trainer.log_dir  # every rank asks here: it is a collective under DDP, the report is not

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        scores: dict[str, dict[str, float]] = {}
        for key, value in trainer.callback_metrics.items():
            if match := EVAL_KEY.match(key):
                scores.setdefault(match["set"], {})[match["metric"]] = float(value)
        if scores:
            self.evaluations.append((trainer.global_step, scores))

    def report(self, trainer: L.Trainer) -> str:
        lines = []
        if self.rollouts:
            lines += [format_rollouts(self.rollouts), ""]
        if self.evaluations:
            lines += [before_after_table(self.evaluations[0], self.evaluations[-1]), ""]
        lines.append(f"wall time {format_seconds(time.perf_counter() - self.started)}, "
                     f"peak memory {peak_memory_gb():.2f} GB (resident, this process)")
        if self.log_dir:
            lines.append(f"logs:       {self.log_dir}  (tensorboard --logdir {Path(self.log_dir).parent.parent})")
        checkpoint = getattr(trainer.checkpoint_callback, "last_model_path", "") or getattr(
            trainer.checkpoint_callback, "best_model_path", "")
        if checkpoint:
            lines.append(f"checkpoint: {checkpoint}")
        if self.log_dir and (Path(self.log_dir) / "hf_model").is_dir():
            lines.append(f"export:     {Path(self.log_dir) / 'hf_model'}")
        return "\n".join(lines)


def format_seconds(seconds: float) -> str:
    minutes, seconds = divmod(round(seconds), 60)
    return f"{minutes} min {seconds:02d} s"


def format_rollouts(rollouts: list[dict[str, float]]) -> str:
    """Mean reward and commonest categories of the first quarter of the rollouts against the last
    (a quarter, at least one: a single rollout of a few prompts is noisy)."""
    k = max(1, len(rollouts) // 4)

    def mean(part: list[dict[str, float]]) -> dict[str, float]:
        return {key: sum(r.get(key, 0.0) for r in part) / len(part) for key in part[0]}

    first, last = mean(rollouts[:k]), mean(rollouts[-k:])
    span = "rollout" if k == 1 else f"{k} rollouts"
    return (f"rollouts ({len(rollouts)}), first {span} -> last {span}: mean reward {first['reward_mean']:+.2f} -> "
            f"{last['reward_mean']:+.2f}; {top_categories(first)} | {top_categories(last)}")


