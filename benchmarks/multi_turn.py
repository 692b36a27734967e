"""Multi-turn cost: tlkit's one pass per trajectory versus the reference's one sample per assistant turn.

    python benchmarks/multi_turn.py [--datasets toolalpaca_golden glaive] [--batches 8]

For each data set (paper format, MAE on, the same max length):
- `one pass (tlkit)`: each trajectory once, every unmasked assistant turn trained, exactly the
  features ToolCallDataModule trains on (`tlkit.data.features.encode`, which feeds no token after a
  trajectory's last trained one; trajectories MAE leaves with no trained turn are dropped);
- `per-turn expansion (reference)`: for every assistant turn tlkit trains, one sample holding the
  trajectory up to and including that turn, only that last turn trained.

Tokens are counted exactly over the whole epoch. Time per epoch is estimated from a fixed number
of training steps: both setups are batched the same way (ToolCallDataModule's collate and
length-grouped sampler, same batch size); `--batches` batches of each epoch, evenly spaced in
size order, each get one step (WeightedSFT.losses with KeyTokenLoss, backward, AdamW step,
same model, called directly), the setups alternating; the epoch time is their mean times the
epoch's batch count. Target: one pass needs at most half the tokens of the expansion.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (DATASETS, MACHINE, add_common_arguments, data_path, describe_model,  # noqa: E402
                     model_folder, quiet, set_threads, today)

FEATURES = ("input_ids", "turn_ids", "key_mask", "argument_end_mask")


def build_rows(path: str, reader: str, tokenizer, max_length: int):
    """One-pass rows and per-turn expansion rows of one file."""
    from tlkit.data.features import encode
    from tlkit.data.readers import read_trajectories
    from tlkit.data.render import render
    from tlkit.mae import ErrorDetector, mark_untrained
    from tlkit.records import Trajectory

    detector = ErrorDetector()
    one_pass, expanded = [], []
    for trajectory in read_trajectories(path, reader):
        trajectory = mark_untrained(trajectory, detector)
        row = encode(trajectory, tokenizer, "paper", max_length)
        if row["n_turns"]:  # as the DataModule: nothing to train, not fed
            one_pass.append(row)
        for target in render(trajectory, "paper", tokenizer).targets:
            if trajectory.messages[target.message_index].untrained is not None:
                continue
            prefix = Trajectory(trajectory.id, trajectory.tools, trajectory.messages[: target.message_index + 1],
                                trajectory.meta)
            row = encode(prefix, tokenizer, "paper", max_length)
            last = row["n_turns"] - 1  # the prefix ends with this turn: train it alone
            keep = [t == last for t in row["turn_ids"]]
            row["turn_ids"] = [0 if k else -1 for k in keep]
            row["key_mask"] = [m and k for m, k in zip(row["key_mask"], keep)]
            row["argument_end_mask"] = [m and k for m, k in zip(row["argument_end_mask"], keep)]
            row["n_turns"] = 1
            expanded.append(row)
    return one_pass, expanded


def epoch_batches(rows, batch_size: int) -> list[list[int]]:
    from tlkit.data.datamodule import LengthGroupedSampler

    order = list(LengthGroupedSampler([r["length"] for r in rows], batch_size, seed=0))
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def summary(rows, batch_size: int) -> dict:
    batches = epoch_batches(rows, batch_size)
    positions = sum(len(b) * max(rows[i]["length"] for i in b) for b in batches)
    tokens = sum(r["length"] for r in rows)
    return {
        "samples": len(rows), "turns": sum(r["n_turns"] for r in rows), "tokens": tokens,
        "supervised": sum(sum(t >= 0 for t in r["turn_ids"][1:]) for r in rows),
        "padding": 1 - tokens / positions if positions else 0.0, "batches": len(batches),
        "cut": sum(bool(r.get("truncated")) for r in rows),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", choices=list(DATASETS), default=["toolalpaca_golden", "glaive"])
    add_common_arguments(parser)
    parser.add_argument("--max-length", type=int, default=2048)
    parser.add_argument("--batches", type=int, default=8,
                        help="timed batches per setup and data set (0: count tokens only)")
    args = parser.parse_args()
    set_threads(args.threads)
    quiet()
    import torch

    from tlkit import ToolCallDataModule, WeightedSFT

    with tempfile.TemporaryDirectory(prefix="tlkit-bench-") as tmp:
        model = model_folder(args.hidden, args.layers, Path(tmp) / "model")
        dm = ToolCallDataModule(str(model), max_length=args.max_length, batch_size=args.batch_size)
        torch.manual_seed(0)
        module = WeightedSFT(str(model), tokenizer=dm.tokenizer, eval_generation=False, export=False)
        module.train()
        optimizer = torch.optim.AdamW(module.parameters(), lr=2e-3, weight_decay=0.01)

        def step(rows, batch) -> float:
            collated = dm.collate([{key: rows[i][key] for key in FEATURES} for i in batch])
            started = time.perf_counter()
            module.losses(collated)["loss"].backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            return time.perf_counter() - started

        print(f"Multi-turn cost, {today()}, {MACHINE}; {args.threads} torch thread(s); torch {torch.__version__}.")
        print(f"{describe_model(model)}; float32; batch {args.batch_size}; max length {args.max_length}; "
              f"time per epoch from {args.batches} steps per setup (forward + PKT loss + backward + AdamW), "
              "alternating.\n")
        print("| data set | setup | samples | trained turns | real tokens / epoch | supervised tokens | padding "
              "| batches / epoch | cut at max length | time / epoch, est. (s) | tokens vs one pass |")
        print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        verdicts = []
        for dataset in args.datasets:
            path, reader = data_path(args.data_root, dataset)
            one_pass, expanded = build_rows(path, reader, dm.tokenizer, args.max_length)
            setups = {"one pass (tlkit)": one_pass, "per-turn expansion (reference)": expanded}
            seconds = {name: None for name in setups}
            if args.batches:
                picks = {}
                for name, rows in setups.items():
                    batches = sorted(epoch_batches(rows, args.batch_size),
                                     key=lambda b: sum(rows[i]["length"] for i in b))
                    count = min(args.batches, len(batches))
                    picks[name] = [batches[round(k * (len(batches) - 1) / max(count - 1, 1))] for k in range(count)]
                    step(rows, picks[name][len(picks[name]) // 2])  # warm-up
                times = {name: [] for name in setups}
                for k in range(max(len(p) for p in picks.values())):
                    for name in (list(setups) if k % 2 == 0 else list(setups)[::-1]):
                        if k < len(picks[name]):
                            times[name].append(step(setups[name], picks[name][k]))
                for name, rows in setups.items():
                    seconds[name] = sum(times[name]) / len(times[name]) * math.ceil(len(rows) / args.batch_size)
            stats = {name: summary(rows, args.batch_size) for name, rows in setups.items()}
            base = stats["one pass (tlkit)"]["tokens"]
            for name, s in stats.items():
                time_text = f"{seconds[name]:.0f}" if seconds.get(name) is not None else "-"
                print(f"| {dataset} | {name} | {s['samples']} | {s['turns']} | {s['tokens']:,} | {s['supervised']:,} "
                      f"| {s['padding']:.1%} | {s['batches']} | {s['cut']} | {time_text} | {s['tokens'] / base:.2f}x |")
            ratio = base / stats["per-turn expansion (reference)"]["tokens"]
            turns = stats["one pass (tlkit)"]["turns"] / stats["one pass (tlkit)"]["samples"]
            verdicts.append(f"{dataset}: one pass needs {ratio:.2f}x the expansion's tokens "
                            f"({'meets' if ratio <= 0.5 else 'misses'} the <= 0.50x target), "
                            f"{turns:.2f} trained turns per trajectory.")
        print("\nTarget: one pass needs at most half the tokens of the per-turn expansion.")
        for line in verdicts:
            print(line)


if __name__ == "__main__":
    main()
