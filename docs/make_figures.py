"""Draw docs/img/tensorboard.png from the TensorBoard event files of the default SFT and PPO runs.

    tlkit fit --config experiments/sft.yaml && tlkit fit --config experiments/ppo.yaml
    python docs/make_figures.py                      # or --sft DIR --ppo DIR --out FILE

The same scalars TensorBoard shows, read with its own EventAccumulator (needs matplotlib).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402


def scalars(run: str) -> dict[str, tuple[list[int], list[float]]]:
    """Every scalar tag of a run folder: (steps, values)."""
    events = EventAccumulator(run, size_guidance={"scalars": 0}).Reload()
    return {tag: ([e.step for e in events.Scalars(tag)], [e.value for e in events.Scalars(tag)])
            for tag in events.Tags()["scalars"]}


def plot(ax, logged: dict, tags: list[str], title: str, xlabel: str) -> None:
    """One panel: the tags that exist, as lines (markers where there are few points)."""
    for tag in tags:
        if tag in logged:
            steps, values = logged[tag]
            ax.plot(steps, values, marker="o" if len(steps) < 8 else None, label=tag)
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(xlabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sft", default="runs/sft/version_0")
    parser.add_argument("--ppo", default="runs/ppo/version_0")
    parser.add_argument("--out", default="docs/img/tensorboard.png")
    args = parser.parse_args()
    sft, ppo = scalars(args.sft), scalars(args.ppo)

    fig, axes = plt.subplots(2, 3, figsize=(14, 7.5))
    plot(axes[0, 0], sft, ["train/loss", "train/ce", "val/loss", "val/ce"], "SFT: losses", "step")
    plot(axes[0, 1], sft, ["train/key_weight"], "SFT: mean key-token weight (PKT)", "step")
    plot(axes[0, 2], sft, ["lr-AdamW"], "SFT: learning rate (LearningRateMonitor)", "step")
    plot(axes[1, 0], ppo, ["ppo/reward_mean", "ppo/category/format_error", "ppo/category/correct"],
         "PPO: reward and category shares", "rollout batch")
    plot(axes[1, 1], ppo, ["ppo/kl", "ppo/kl_coef", "ppo/entropy"],
         "PPO: KL to the reference, beta, entropy", "rollout batch")
    plot(axes[1, 2], ppo, ["ppo/value_loss", "ppo/clip_fraction", "ppo/explained_variance"],
         "PPO: critic and clipping", "rollout batch")
    fig.suptitle(f"Scalars logged by {args.sft} and {args.ppo} (read from their TensorBoard event files)", fontsize=11)
    fig.tight_layout()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=90)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
