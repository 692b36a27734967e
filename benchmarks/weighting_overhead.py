"""What PKT costs: WeightedSFT's step time with `KeyTokenLoss(w_max=9)` (PKT) versus `w_max=1` (plain SFT),
on identical batches.

    python benchmarks/weighting_overhead.py [--datasets bfcl_simple toolalpaca_golden] [--repeats 3]

One WeightedSFT module (the tiny Llama, or --hidden / --layers, float32, CPU, AdamW) and the
first `--batches` batches of ToolCallDataModule's training loader (length-grouped, MAE on); for
every batch, in every repeat, one training step (forward, PKT loss with per-turn reduction,
backward, AdamW step, called directly, no Trainer) with each loss, the module's
`loss` swapped between steps, the order alternating (A B, B A, ...). Reports the median step
time of each and the overhead, and, free of step noise, the time of the weighting call alone.
Target: PKT costs at most 3% over plain SFT.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (DATASETS, MACHINE, add_common_arguments, data_path, describe_model,  # noqa: E402
                     model_folder, quiet, set_threads, today)


def weighting_inputs(batch):
    """The shifted masks `WeightedSFT.losses` hands its weighting strategy."""
    return batch["turn_ids"][:, 1:], batch["key_mask"][:, 1:], batch["argument_end_mask"][:, 1:]


def call_seconds(strategy, batches, calls: int) -> float:
    """Median over batches of the mean time of one weighting call."""
    per_batch = []
    for batch in batches:
        inputs = weighting_inputs(batch)
        strategy.weights(*inputs)
        started = time.perf_counter()
        for _ in range(calls):
            strategy.weights(*inputs)
        per_batch.append((time.perf_counter() - started) / calls)
    return statistics.median(per_batch)


def measure(args, dataset: str) -> dict:
    import torch

    from tlkit import DataFile, KeyTokenLoss, ToolCallDataModule, WeightedSFT

    path, reader = data_path(args.data_root, dataset)
    dm = ToolCallDataModule(str(args.model), train=[DataFile(path, reader)], max_length=args.max_length,
                            batch_size=args.batch_size, cache_dir=args.cache_dir, seed=0)
    dm.setup("fit")
    batches = [b for _, b in zip(range(args.batches), dm.train_dataloader())]
    torch.manual_seed(0)
    module = WeightedSFT(str(args.model), tokenizer=dm.tokenizer, eval_generation=False, export=False)
    module.train()
    optimizer = torch.optim.AdamW(module.parameters(), lr=2e-3, weight_decay=0.01)
    strategies = {"plain": KeyTokenLoss(w_max=1), "PKT": KeyTokenLoss(w_max=9)}  # plain SFT, PKT

    def step(batch, strategy) -> float:
        module.loss = strategy
        started = time.perf_counter()
        module.losses(batch)["loss"].backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return time.perf_counter() - started

    for strategy in strategies.values():  # warm-up
        step(batches[0], strategy)
    times = {name: [] for name in strategies}
    ratios = []
    for r in range(args.repeats):
        for i, batch in enumerate(batches):
            order = list(strategies) if (r + i) % 2 == 0 else list(strategies)[::-1]
            pair = {name: step(batch, strategies[name]) for name in order}
            for name, seconds in pair.items():
                times[name].append(seconds)
            ratios.append(pair["PKT"] / pair["plain"] - 1)

    supervised = sum(int((b["turn_ids"][:, 1:] >= 0).sum()) for b in batches)
    key = sum(int((b["key_mask"][:, 1:] & (b["turn_ids"][:, 1:] >= 0)).sum()) for b in batches)
    weights = [strategies["PKT"].weights(*weighting_inputs(b)) for b in batches]
    key_weights = torch.cat([w[(b["key_mask"][:, 1:]) & (b["turn_ids"][:, 1:] >= 0)] for w, b in zip(weights, batches)])
    median = {name: statistics.median(t) for name, t in times.items()}
    quartiles = statistics.quantiles(ratios, n=4)
    calls = {name: call_seconds(s, batches, args.calls) for name, s in strategies.items()}
    return {
        "dataset": dataset, "batches": len(batches), "steps": len(ratios),
        "tokens": sum(int(b["attention_mask"].sum()) for b in batches) / len(batches),
        "uniform": median["plain"], "key": median["PKT"],
        "overhead": median["PKT"] / median["plain"] - 1,
        "paired": statistics.median(ratios), "q1": quartiles[0], "q3": quartiles[2],
        "call_uniform": calls["plain"], "call_key": calls["PKT"],
        "call_share": (calls["PKT"] - calls["plain"]) / median["plain"],
        "key_share": key / max(supervised, 1), "key_weight": float(key_weights.mean()) if len(key_weights) else 1.0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", choices=list(DATASETS), default=["bfcl_simple", "toolalpaca_golden"])
    add_common_arguments(parser)
    parser.add_argument("--max-length", type=int, default=1024)
    parser.add_argument("--batches", type=int, default=8, help="distinct batches per data set")
    parser.add_argument("--repeats", type=int, default=3,
                        help="passes over those batches (each step runs once per strategy)")
    parser.add_argument("--calls", type=int, default=200, help="weighting calls per batch in the call-alone timing")
    args = parser.parse_args()
    set_threads(args.threads)
    quiet()
    import torch

    with tempfile.TemporaryDirectory(prefix="tlkit-bench-") as tmp:
        args.model = model_folder(args.hidden, args.layers, Path(tmp) / "model")
        args.cache_dir = str(Path(tmp) / "cache")
        print(f"PKT weighting overhead, {today()}, {MACHINE}; {args.threads} torch thread(s); "
              f"torch {torch.__version__}.")
        print(f"{describe_model(args.model)}; float32; batch {args.batch_size}; max length {args.max_length}; "
              f"one step = WeightedSFT.losses (reduction `turn`) + backward + AdamW step, called directly; "
              f"{args.batches} batches x {args.repeats} repeats per strategy, alternating.\n")
        rows = [measure(args, dataset) for dataset in args.datasets]
    print("| data set | real tokens / batch | key tokens (share of supervised, mean weight) | median step, plain (ms) "
          "| median step, PKT (ms) | overhead (medians) | overhead (median of paired steps, IQR) "
          "| weighting call alone: plain / PKT (µs) | call-alone difference, % of a step |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['dataset']} | {r['tokens']:,.0f} | {r['key_share']:.1%}, {r['key_weight']:.1f} "
              f"| {r['uniform'] * 1e3:.0f} | {r['key'] * 1e3:.0f} | {r['overhead']:+.1%} "
              f"| {r['paired']:+.1%} ({r['q1']:+.1%} to {r['q3']:+.1%}) "
              f"| {r['call_uniform'] * 1e6:.0f} / {r['call_key'] * 1e6:.0f} | {r['call_share']:.2%} |")
    worst = max(max(r["overhead"], r["paired"]) for r in rows)
    print(f"\nTarget: at most +3%. Largest measured overhead: {worst:+.1%}; the weighting call itself costs "
          f"{max(r['call_share'] for r in rows):.2%} of a step at most "
          "(step-to-step noise on a shared machine is larger).")


if __name__ == "__main__":
    main()
