"""Where a WeightedSFT step spends its time, what its supervised-only LM head saves, and padding.

    python benchmarks/sft_step_profile.py [--dataset bfcl_simple] [--batches 6]

1. `torch.profiler` over a few training steps (WeightedSFT.losses + backward + AdamW, called
   directly): the top operators, and the share of the LM head (matmuls with a vocabulary-wide
   operand) and of log-softmax / NLL.
2. WeightedSFT's forward + backward (the LM head at supervised positions only, as TRL's fused head
   does) against the same loss on logits of every position (tlkit before it kept only the
   supervised ones), alternating on the same batches.
3. Padding of `LengthGroupedSampler`'s batches as the DataLoader cuts them (its flat index stream in
   runs of `batch_size`) versus the batches it builds internally, for every data set.
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


def sampler_padding(lengths: list[int], batch_size: int, seed: int) -> tuple[float, float]:
    """(padding as the DataLoader batches the sampler's stream, padding of the sampler's own batches)."""
    import torch

    from tlkit.data.datamodule import LengthGroupedSampler

    sampler = LengthGroupedSampler(lengths, batch_size, seed=seed)
    stream = list(sampler)
    as_loaded = [stream[i : i + batch_size] for i in range(0, len(stream), batch_size)]
    generator = torch.Generator().manual_seed(seed)  # the sampler's own construction, before its shuffle of batches
    order = torch.randperm(len(lengths), generator=generator).tolist()
    size, intended = batch_size * sampler.group, []
    for start in range(0, len(order), size):
        chunk = sorted(order[start : start + size], key=lambda i: -lengths[i])
        intended += [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]

    def padding(batches):
        return 1 - sum(lengths) / sum(len(b) * max(lengths[i] for i in b) for b in batches)

    return padding(as_loaded), padding(intended)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", choices=list(DATASETS), default="bfcl_simple")
    add_common_arguments(parser)
    parser.add_argument("--max-length", type=int, default=1024)
    parser.add_argument("--batches", type=int, default=6)
    args = parser.parse_args()
    set_threads(args.threads)
    quiet()
    import torch
    from torch.profiler import ProfilerActivity, profile, record_function

    from tlkit import DataFile, ToolCallDataModule, WeightedSFT
    from tlkit.pkt import weighted_cross_entropy

    with tempfile.TemporaryDirectory(prefix="tlkit-bench-") as tmp:
        model = model_folder(args.hidden, args.layers, Path(tmp) / "model")
        path, reader = data_path(args.data_root, args.dataset)
        dm = ToolCallDataModule(str(model), train=[DataFile(path, reader)], max_length=args.max_length,
                                batch_size=args.batch_size, cache_dir=str(Path(tmp) / "cache"))
        dm.setup("fit")
        batches = [b for _, b in zip(range(args.batches + 2), dm.train_dataloader())]
        torch.manual_seed(0)
        module = WeightedSFT(str(model), tokenizer=dm.tokenizer, eval_generation=False, export=False)
        module.train()
        optimizer = torch.optim.AdamW(module.parameters(), lr=2e-3)
        vocab = module.policy.get_output_embeddings().weight.shape[0]
        print(f"WeightedSFT step profile, {today()}, {MACHINE}; {args.threads} torch thread(s); "
              f"torch {torch.__version__}.")
        print(f"{describe_model(model)}; {args.dataset}; batch {args.batch_size}; {args.batches} profiled steps.\n")

        for batch in batches[:2]:  # warm-up
            module.losses(batch)["loss"].backward()
            optimizer.zero_grad(set_to_none=True)
        timed = batches[2:]
        with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
            for batch in timed:
                with record_function("forward + loss"):
                    loss = module.losses(batch)["loss"]
                with record_function("backward"):
                    loss.backward()
                with record_function("optimizer"):
                    optimizer.step()
                    optimizer.zero_grad(set_to_none=True)
        events = prof.key_averages()
        total = sum(e.self_cpu_time_total for e in events)
        lm_head = sum(e.self_cpu_time_total for e in prof.key_averages(group_by_input_shape=True)
                      if e.key in ("aten::mm", "aten::addmm", "aten::matmul") and str(vocab) in str(e.input_shapes))
        softmax = sum(e.self_cpu_time_total for e in events if "log_softmax" in e.key or "nll_loss" in e.key)
        phases = {e.key: e.cpu_time_total for e in events if e.key in ("forward + loss", "backward", "optimizer")}
        supervised = sum(int((b["turn_ids"][:, 1:] >= 0).sum()) for b in timed)
        positions = sum(b["turn_ids"][:, 1:].numel() for b in timed)
        print("| phase | ms per step |\n|---|---:|")
        for key in ("forward + loss", "backward", "optimizer"):
            print(f"| {key} | {phases[key] / 1e3 / len(timed):.0f} |")
        print("\n| operator (self CPU) | share |\n|---|---:|")
        for e in sorted(events, key=lambda e: -e.self_cpu_time_total)[:8]:
            print(f"| {e.key} | {e.self_cpu_time_total / total:.1%} |")
        print(f"\nLM head matmuls (a {vocab}-wide operand, forward + backward): {lm_head / total:.1%} of the step; "
              f"log-softmax + NLL: {softmax / total:.1%}; supervised positions: {supervised / positions:.1%} of all.")

        def every_position(batch):  # the whole LM head, then the same weighted loss
            logits = module(batch["input_ids"], batch["attention_mask"])[:, :-1]
            turn_ids = batch["turn_ids"][:, 1:]
            weights = module.loss.weights(turn_ids, batch["key_mask"][:, 1:], batch["argument_end_mask"][:, 1:])
            return weighted_cross_entropy(logits[turn_ids >= 0], batch["input_ids"][:, 1:], weights, turn_ids,
                                          module.loss.reduction)[0]

        variants = {"WeightedSFT.losses (LM head at supervised positions)": lambda b: module.losses(b)["loss"],
                    "the same loss, LM head at every position": every_position}
        times = {name: [] for name in variants}
        for r in range(3):
            for i, batch in enumerate(timed):
                for name in (list(variants) if (r + i) % 2 == 0 else list(variants)[::-1]):
                    started = time.perf_counter()
                    variants[name](batch).backward()
                    times[name].append(time.perf_counter() - started)
                    optimizer.zero_grad(set_to_none=True)
        base = statistics.median(times[next(iter(variants))])
        print("\n| forward + backward | median (ms) | vs losses |\n|---|---:|---:|")
        for name, t in times.items():
            print(f"| {name} | {statistics.median(t) * 1e3:.0f} | {statistics.median(t) / base:.2f}x |")

        print("\n| data set | size | padding, batches as the DataLoader cuts the stream (seeds 0/1/2) "
              "| padding, the sampler's own batches |")
        print("|---|---:|---|---:|")
        for name in DATASETS:
            p, r = data_path(args.data_root, name)
            lengths = ToolCallDataModule(str(model), train=[DataFile(p, r)], max_length=args.max_length,
                                         batch_size=args.batch_size, cache_dir=str(Path(tmp) / "cache"))
            lengths.setup("fit")
            lengths = lengths.features["train"]["length"]
            results = [sampler_padding(lengths, args.batch_size, seed) for seed in range(3)]
            print(f"| {name} | {len(lengths)} | {' / '.join(f'{a:.1%}' for a, _ in results)} | {results[0][1]:.1%} |")


if __name__ == "__main__":
    main()
