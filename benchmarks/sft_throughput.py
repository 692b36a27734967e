"""SFT throughput: tlkit WeightedSFT vs TRL's SFTTrainer vs a bare PyTorch loop, on one model and data.

    python benchmarks/sft_throughput.py [--datasets bfcl_simple toolalpaca_golden] [--hidden 512 --layers 8]
    python benchmarks/sft_throughput.py --datasets bfcl_simple --systems tlkit-trainer tlkit-direct bare

Every system trains the same Llama (built from experiments/models/tiny-llama/config.json, or
wider / deeper with --hidden / --layers, same seed, float32, CPU) with AdamW (same lr, weight
decay), gradient clipping at 1.0, the same batch size and max length, on the same real data
(/work/shared/data), rendered in tlkit's `paper` format with MAE on:

- `tlkit WeightedSFT (Trainer)`: `lightning.Trainer.fit` with `ToolCallDataModule` (length-grouped
  batches) and WeightedSFT (PKT key-token weights, per-turn reduction): what `tlkit fit` runs,
  without logger, checkpoints or progress bar;
- `tlkit WeightedSFT (direct)`: the same module's `losses` + backward + clip + AdamW step in a
  plain loop, on the same batches (shows what the Trainer costs);
- `bare PyTorch loop`: the exact batches tlkit's DataModule yields (same collate, same length
  grouping, checked by a fingerprint), plain masked cross-entropy on the HF model's logits;
- `TRL SFTTrainer`: prompt / completion pairs (the rendered text up to each trained assistant
  turn, and that turn's target text), `completion_only_loss=True`, `packing=False`, float32 and
  torch's AdamW like the others, otherwise its defaults: random batches and gradient (activation)
  checkpointing; `TRL SFTTrainer, matched` turns checkpointing off and groups batches by length
  (`train_sampling_strategy="group_by_length"`), as close to the others as TRL gets.

Each system runs in its own process (peak memory is that process's `ru_maxrss`). After a
warm-up block each, the systems take turns running blocks of steps (A B C, C B A, ...). A step
is timed from the end of the previous one, so data loading, the loss, backward, the optimiser
step and the trainer's own bookkeeping are all in. Real tokens are non-pad tokens.
Prints one markdown table per data set.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from collections import deque
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    add_common_arguments,
    DATASETS, MACHINE, Blocks, Worker, cycle, data_path, describe_model, model_folder, quiet,
    run_alternating, set_threads, today, totals,
)

SYSTEMS = {
    "tlkit-trainer": "tlkit WeightedSFT (Trainer)",
    "tlkit-direct": "tlkit WeightedSFT (direct)",
    "bare": "bare PyTorch loop",
    "trl": "TRL SFTTrainer (random batches, grad. checkpointing: its defaults)",
    "trl-matched": "TRL SFTTrainer, matched (length-grouped, no checkpointing)",
}
LR, WEIGHT_DECAY, CLIP = 2e-3, 0.01, 1.0


# ---------------------------------------------------------------------------------------------
# Workers: one system each, in its own process


def tlkit_data(args):
    from tlkit import DataFile, ToolCallDataModule

    path, reader = data_path(args.data_root, args.dataset)
    dm = ToolCallDataModule(args.model, train=[DataFile(path, reader)], format="paper", max_length=args.max_length,
                            batch_size=args.batch_size, cache_dir=args.cache_dir, seed=0)
    dm.setup("fit")
    return dm


def tlkit_counts(batch):
    return batch["attention_mask"].sum(), batch["input_ids"].numel(), (batch["turn_ids"][:, 1:] >= 0).sum()


def epoch_info(dm):
    return {"epoch_tokens": sum(dm.features["train"]["length"]), "samples": len(dm.features["train"])}


def worker_tlkit(args, blocks: Blocks, trainer: bool) -> None:
    import lightning as L
    import torch

    from tlkit import WeightedSFT

    dm = tlkit_data(args)
    torch.manual_seed(0)
    module = WeightedSFT(args.model, tokenizer=dm.tokenizer, eval_generation=False, export=False,
                         optimizer=partial(torch.optim.AdamW, lr=LR, weight_decay=WEIGHT_DECAY))
    if trainer:
        class Pause(L.Callback):
            def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
                blocks.step_done(*tlkit_counts(batch), batch["input_ids"])

        fit = L.Trainer(accelerator="cpu", devices=1, max_steps=args.total_steps, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, gradient_clip_val=CLIP,
                        limit_val_batches=0, num_sanity_val_steps=0, callbacks=[Pause()])
        blocks.ready(**epoch_info(dm))
        fit.fit(module, datamodule=dm)
        return
    optimizer = module.configure_optimizers()
    module.train()
    batches = cycle(dm.train_dataloader())
    blocks.ready(**epoch_info(dm))
    while not blocks.stopped:
        batch = next(batches)
        module.losses(batch)["loss"].backward()
        torch.nn.utils.clip_grad_norm_(module.parameters(), CLIP)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        blocks.step_done(*tlkit_counts(batch), batch["input_ids"])


def worker_bare(args, blocks: Blocks) -> None:
    import torch
    import torch.nn.functional as F

    from tlkit.models import load_causal_lm

    dm = tlkit_data(args)
    torch.manual_seed(0)
    model = load_causal_lm(args.model)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=WEIGHT_DECAY)
    batches = cycle(dm.train_dataloader())
    blocks.ready(**epoch_info(dm))
    while not blocks.stopped:
        batch = next(batches)
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], use_cache=False).logits
        labels = batch["input_ids"][:, 1:].masked_fill(batch["turn_ids"][:, 1:] < 0, -100)
        loss = F.cross_entropy(logits[:, :-1].flatten(0, 1), labels.flatten(), ignore_index=-100)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), CLIP)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        blocks.step_done(*tlkit_counts(batch), batch["input_ids"])


def prompt_completion_pairs(path: str, reader: str, tokenizer) -> list[dict[str, str]]:
    """One pair per assistant turn tlkit trains (MAE on): the text before it, and its target text."""
    from tlkit.data.mae import ErrorDetector, masked_turns
    from tlkit.data.readers import read_trajectories
    from tlkit.data.render import render

    detector, pairs = ErrorDetector(), []
    for trajectory in read_trajectories(path, reader):
        rendered = render(trajectory, "paper", tokenizer)
        masked = masked_turns(trajectory, detector)
        for target in rendered.targets:
            if target.message_index not in masked:
                pairs.append({"prompt": rendered.text[: target.start], "completion": rendered.text[target.start : target.end]})
    return pairs


def worker_trl(args, blocks: Blocks, matched: bool) -> None:
    import dataclasses

    import datasets
    import torch
    from transformers import TrainerCallback
    from trl import SFTConfig, SFTTrainer

    from tlkit.models import load_causal_lm, load_tokenizer

    tokenizer = load_tokenizer(args.model)
    path, reader = data_path(args.data_root, args.dataset)
    dataset = datasets.Dataset.from_list(prompt_completion_pairs(path, reader, tokenizer))
    torch.manual_seed(0)
    model = load_causal_lm(args.model)
    names = {f.name for f in dataclasses.fields(SFTConfig)}
    checkpointing = "activation_checkpointing" if "activation_checkpointing" in names else "gradient_checkpointing"
    config = SFTConfig(
        output_dir=str(Path(args.cache_dir).parent / f"trl-{args.worker}"),  # inside the parent's temporary folder
        per_device_train_batch_size=args.batch_size,
        max_length=args.max_length, packing=False, completion_only_loss=True, max_steps=args.total_steps,
        learning_rate=LR, weight_decay=WEIGHT_DECAY, max_grad_norm=CLIP, lr_scheduler_type="constant",
        optim="adamw_torch", bf16=False, fp16=False, use_cpu=True, report_to="none", save_strategy="no",
        disable_tqdm=True, seed=0, dataloader_num_workers=0,
        train_sampling_strategy="group_by_length" if matched else "random",
        **({checkpointing: False} if matched else {}),
    )
    counts: deque = deque()  # per collated batch, in order (the loader may run one batch ahead)

    class Pause(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            blocks.step_done(*counts.popleft())

    trainer = SFTTrainer(model=model, args=config, train_dataset=dataset, processing_class=tokenizer, callbacks=[Pause()])
    collate = trainer.data_collator

    def counting_collate(examples):
        batch = collate(examples)
        counts.append((batch["attention_mask"].sum(), batch["input_ids"].numel(), (batch["labels"][:, 1:] != -100).sum()))
        return batch

    trainer.data_collator = counting_collate
    lengths = [min(len(ids), args.max_length) for ids in trainer.train_dataset["input_ids"]]
    blocks.ready(epoch_tokens=sum(lengths), samples=len(lengths))
    trainer.train()


def worker(args) -> None:
    set_threads(args.threads)
    quiet()
    blocks = Blocks()
    if args.worker in ("tlkit-trainer", "tlkit-direct"):
        worker_tlkit(args, blocks, trainer=args.worker == "tlkit-trainer")
    elif args.worker == "bare":
        worker_bare(args, blocks)
    else:
        worker_trl(args, blocks, matched=args.worker == "trl-matched")
    blocks.finish()


# ---------------------------------------------------------------------------------------------
# Parent


def measure(args, dataset: str) -> list[dict]:
    common = ["--dataset", dataset, "--model", str(args.model), "--data-root", str(args.data_root),
              "--batch-size", str(args.batch_size), "--max-length", str(args.max_length), "--threads", str(args.threads),
              "--total-steps", str(args.warmup + args.rounds * args.steps), "--cache-dir", args.cache_dir]
    workers = {s: Worker(s, [sys.executable, __file__, "--worker", s, *common]) for s in args.systems}
    try:
        ready = {s: w.receive() for s, w in workers.items()}
        blocks = run_alternating(workers, args.warmup, args.rounds, args.steps)
        finals = {s: w.close() for s, w in workers.items()}
    finally:
        for w in workers.values():
            if w.proc.poll() is None:
                w.proc.kill()
    rows = []
    for s in args.systems:
        t = totals(blocks[s])
        rows.append({
            "system": s, "steps_s": t["steps"] / t["seconds"], "tok_s": t["real"] / t["seconds"],
            "tok_s_min": min(t["round_tok_s"]), "tok_s_max": max(t["round_tok_s"]),
            "sup_s": t["supervised"] / t["seconds"], "padding": 1 - t["real"] / t["positions"],
            "samples": ready[s]["samples"], "epoch_tokens": ready[s]["epoch_tokens"],
            "epoch_s": ready[s]["epoch_tokens"] / (t["real"] / t["seconds"]),
            "median_step": statistics.median(t["step_seconds"]),
            "peak": finals[s]["peak_rss_mib"], "rise": finals[s]["peak_rss_mib"] - ready[s]["rss_mib"],
            "digest": [b["digest"] for b in blocks[s]],
        })
    return rows


def print_table(dataset: str, rows: list[dict], args) -> None:
    print(f"\n### {dataset} ({DATASETS[dataset][0]})\n")
    print("| system | steps/s | real tok/s (rounds min-max) | supervised tok/s | padding | samples / epoch | real tokens / epoch | epoch, est. (s) | peak RSS (MiB) | RSS rise in training (MiB) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {SYSTEMS[r['system']]} | {r['steps_s']:.2f} | {r['tok_s']:,.0f} ({r['tok_s_min']:,.0f}-{r['tok_s_max']:,.0f}) "
              f"| {r['sup_s']:,.0f} | {r['padding']:.1%} | {r['samples']} | {r['epoch_tokens']:,} | {r['epoch_s']:.0f} "
              f"| {r['peak']:,.0f} | {r['rise']:,.0f} |")
    by = {r["system"]: r for r in rows}
    same = [s for s in ("tlkit-trainer", "tlkit-direct", "bare") if s in by]
    if len(same) > 1:
        identical = all(by[s]["digest"] == by[same[0]]["digest"] for s in same)
        print(f"\nIdentical batches for {', '.join(SYSTEMS[s] for s in same)}: {'yes' if identical else 'NO'} (fingerprint of every timed batch).")
    if "tlkit-trainer" in by:
        ours = by["tlkit-trainer"]
        ratios = [f"{ours['tok_s'] / by[s]['tok_s']:.2f}x {SYSTEMS[s]}" for s in by if s != "tlkit-trainer"]
        epochs = [f"{by[s]['epoch_s'] / ours['epoch_s']:.2f}x ({SYSTEMS[s]})" for s in by if s.startswith("trl")]
        print(f"WeightedSFT (Trainer) real tokens/s = {', '.join(ratios)}.")
        if epochs:
            print(f"Epoch time of TRL relative to WeightedSFT (Trainer): {', '.join(epochs)}.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", choices=list(DATASETS), default=["bfcl_simple", "toolalpaca_golden"])
    parser.add_argument("--systems", nargs="+", choices=list(SYSTEMS), default=[s for s in SYSTEMS if s != "tlkit-direct"],
                        help="systems to run (default: all but tlkit-direct, which shows what the Trainer costs)")
    add_common_arguments(parser)
    parser.add_argument("--max-length", type=int, default=1024)
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps per system before the rounds (>= 1)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of alternating blocks")
    parser.add_argument("--steps", type=int, default=3, help="steps per block")
    parser.add_argument("--worker", choices=list(SYSTEMS), help=argparse.SUPPRESS)
    parser.add_argument("--dataset", help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--total-steps", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--cache-dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)
    args.warmup = max(1, args.warmup)  # the first block also pays for the trainer's start-up
    with tempfile.TemporaryDirectory(prefix="tlkit-bench-") as tmp:
        args.model = model_folder(args.hidden, args.layers, Path(tmp) / "model")
        args.cache_dir = str(Path(tmp) / "cache")
        import torch
        import transformers

        try:
            import trl

            trl_version = trl.__version__
        except ImportError:
            trl_version = "not installed"
            args.systems = [s for s in args.systems if not s.startswith("trl")]
        print(f"SFT throughput, {today()}, {MACHINE}; {args.threads} torch thread(s) per process.")
        print(f"{describe_model(args.model)}; float32; batch {args.batch_size}; max length {args.max_length}; "
              f"AdamW lr {LR}, clip {CLIP}; {args.warmup} warm-up steps, then {args.rounds} rounds x {args.steps} steps per system, alternating.")
        print(f"torch {torch.__version__}, transformers {transformers.__version__}, trl {trl_version}.")
        for dataset in args.datasets:
            print_table(dataset, measure(args, dataset), args)
    print("\nreal tok/s: non-pad tokens per second of training-step wall time; supervised: tokens with a loss; "
          "padding: pad share of the batch positions; epoch, est.: real tokens / epoch divided by real tok/s; "
          "peak RSS: ru_maxrss of the system's own process (imports and data included); "
          "RSS rise: that peak minus the resident memory just before the first step.")


if __name__ == "__main__":
    main()
