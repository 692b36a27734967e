"""SFT throughput: tlkit WeightedSFT vs TRL's SFTTrainer vs a bare PyTorch loop, on one model and data.

    python benchmarks/sft_throughput.py [--datasets bfcl_simple toolalpaca_golden] [--hidden 512 --layers 8]
    python benchmarks/sft_throughput.py --datasets bfcl_simple --systems tlkit-trainer tlkit-direct bare
    python benchmarks/sft_throughput.py --device cuda --precision bf16 --hidden 2048 --layers 16 \
        --intermediate 8192 --heads 32 --kv-heads 8    # a GPU; Llama 3.2 1B's shape, tlkit's 4096-token vocabulary

Every system trains the same Llama (built from experiments/models/tiny-llama/config.json, or
another shape with --hidden / --layers / --intermediate / --heads / --kv-heads, same seed, float32,
CPU unless --device cuda) with AdamW (same lr, weight decay), gradient clipping at 1.0, the same
batch size and max length, on the same real data (tests/fixtures/public_data), rendered in tlkit's `paper`
format with MAE on. `--precision bf16` runs every system in bf16 mixed precision: float32 weights,
gradients and AdamW states, the forward pass and loss under bf16 autocast (Lightning's
`precision="bf16-mixed"`, `torch.autocast` in the plain loops, TRL's `bf16=True`).

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
step and the trainer's own bookkeeping are all in (on a GPU, up to a `torch.cuda.synchronize`).
Real tokens are non-pad tokens. On a GPU the table adds model FLOPs utilisation (MFU: see
`_common.model_flops` for the count) against `--peak-tflops`, and each process's peak GPU memory.
Prints one markdown table per data set.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from collections import deque
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (DATASETS, MACHINE, Blocks, add_common_arguments, add_lockstep_arguments,  # noqa: E402
                     cycle, data_path, describe_model, model_and_cache, model_flops, quiet,
                     run_workers, set_threads, today, totals, versions)

SYSTEMS = {
    "tlkit-trainer": "tlkit WeightedSFT (Trainer)",
    "tlkit-direct": "tlkit WeightedSFT (direct)",
    "bare": "bare PyTorch loop",
    "trl": "TRL SFTTrainer (random batches, grad. checkpointing: its defaults)",
    "trl-matched": "TRL SFTTrainer, matched (length-grouped, no checkpointing)",
}
LR, WEIGHT_DECAY, CLIP = 2e-3, 0.01, 1.0
H200_BF16_TFLOPS = 989.0  # dense bf16 tensor-core peak of an H100 / H200 SXM, NVIDIA's datasheet


# ---------------------------------------------------------------------------------------------
# Workers: one system each, in its own process


def tlkit_data(args):
    from tlkit import DataFile, ToolCallDataModule

    path, reader = data_path(args.data_root, args.dataset)
    dm = ToolCallDataModule(args.model, train=[DataFile(path, reader)], prompt_format="paper",
                            max_length=args.max_length, batch_size=args.batch_size, cache_dir=args.cache_dir, seed=0)
    dm.setup("fit")
    return dm


def tlkit_counts(batch):
    return batch["attention_mask"].sum(), batch["input_ids"].numel(), (batch["turn_ids"][:, 1:] >= 0).sum()


def squares(attention_mask):
    """The sum of the squared real lengths of a batch's sequences (the attention term of its FLOPs)."""
    return (attention_mask.sum(1) ** 2).sum()


def autocast(args):
    """bf16 autocast with --precision bf16 (what Lightning's "bf16-mixed" does), else nothing."""
    import torch

    return torch.autocast(args.device, dtype=torch.bfloat16, enabled=args.precision == "bf16")


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
                blocks.step_done(*tlkit_counts(batch), batch["input_ids"], squares(batch["attention_mask"]))

        fit = L.Trainer(accelerator="gpu" if args.device == "cuda" else "cpu", devices=1,
                        precision="bf16-mixed" if args.precision == "bf16" else "32-true", max_steps=args.total_steps,
                        logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        gradient_clip_val=CLIP,
                        limit_val_batches=0, num_sanity_val_steps=0, callbacks=[Pause()])
        blocks.ready(**epoch_info(dm))
        fit.fit(module, datamodule=dm)
        return
    from lightning.fabric.utilities.apply_func import move_data_to_device

    module.to(args.device)
    optimizer = module.configure_optimizers()
    module.train()
    batches = cycle(dm.train_dataloader())
    blocks.ready(**epoch_info(dm))
    while not blocks.stopped:
        batch = next(batches)
        with autocast(args):
            loss = module.losses(move_data_to_device(batch, args.device))["loss"]
        loss.backward()
        torch.nn.utils.clip_grad_norm_(module.parameters(), CLIP)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        blocks.step_done(*tlkit_counts(batch), batch["input_ids"], squares(batch["attention_mask"]))


def worker_bare(args, blocks: Blocks) -> None:
    import torch
    import torch.nn.functional as F

    from tlkit.models import load_causal_lm

    dm = tlkit_data(args)
    torch.manual_seed(0)
    model = load_causal_lm(args.model).to(args.device)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=WEIGHT_DECAY)
    batches = cycle(dm.train_dataloader())
    blocks.ready(**epoch_info(dm))
    while not blocks.stopped:
        batch = next(batches)
        input_ids, turn_ids = batch["input_ids"].to(args.device), batch["turn_ids"].to(args.device)
        with autocast(args):
            logits = model(input_ids=input_ids, attention_mask=batch["attention_mask"].to(args.device),
                           use_cache=False).logits
            labels = input_ids[:, 1:].masked_fill(turn_ids[:, 1:] < 0, -100)
            loss = F.cross_entropy(logits[:, :-1].flatten(0, 1), labels.flatten(), ignore_index=-100)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), CLIP)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        blocks.step_done(*tlkit_counts(batch), batch["input_ids"], squares(batch["attention_mask"]))


def prompt_completion_pairs(path: str, reader: str, tokenizer) -> list[dict[str, str]]:
    """One pair per assistant turn tlkit trains (MAE on): the text before it, and its target text."""
    from tlkit.data.readers import read_trajectories
    from tlkit.data.render import render
    from tlkit.mae import ErrorDetector, masked_turns

    detector, pairs = ErrorDetector(), []
    for trajectory in read_trajectories(path, reader):
        rendered = render(trajectory, "paper", tokenizer)
        masked = masked_turns(trajectory, detector)
        for target in rendered.targets:
            if target.message_index not in masked:
                pairs.append({"prompt": rendered.text[: target.start],
                              "completion": rendered.text[target.start : target.end]})
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
        optim="adamw_torch", bf16=args.precision == "bf16", fp16=False, use_cpu=args.device == "cpu",
        report_to="none", save_strategy="no",
        disable_tqdm=True, seed=0, dataloader_num_workers=0,
        train_sampling_strategy="group_by_length" if matched else "random",
        **({checkpointing: False} if matched else {}),
    )
    counts: deque = deque()  # per collated batch, in order (the loader may run one batch ahead)

    class Pause(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            blocks.step_done(*counts.popleft())

    trainer = SFTTrainer(model=model, args=config, train_dataset=dataset, processing_class=tokenizer,
                         callbacks=[Pause()])
    collate = trainer.data_collator

    def counting_collate(examples):
        batch = collate(examples)
        counts.append((batch["attention_mask"].sum(), batch["input_ids"].numel(),
                       (batch["labels"][:, 1:] != -100).sum(), None, squares(batch["attention_mask"])))
        return batch

    trainer.data_collator = counting_collate
    lengths = [min(len(ids), args.max_length) for ids in trainer.train_dataset["input_ids"]]
    blocks.ready(epoch_tokens=sum(lengths), samples=len(lengths))
    trainer.train()


def worker(args) -> None:
    import torch

    set_threads(args.threads)
    quiet()
    cuda = args.device == "cuda"
    blocks = Blocks(sync=torch.cuda.synchronize if cuda else None)
    if args.worker in ("tlkit-trainer", "tlkit-direct"):
        worker_tlkit(args, blocks, trainer=args.worker == "tlkit-trainer")
    elif args.worker == "bare":
        worker_bare(args, blocks)
    else:
        worker_trl(args, blocks, matched=args.worker == "trl-matched")
    blocks.finish(**({"peak_gpu_mib": torch.cuda.max_memory_allocated() / 2**20} if cuda else {}))


# ---------------------------------------------------------------------------------------------
# Parent


def measure(args, dataset: str) -> list[dict]:
    options = ["--dataset", dataset, "--data-root", str(args.data_root), "--batch-size", str(args.batch_size),
               "--max-length", str(args.max_length), "--device", args.device, "--precision", args.precision]
    weights, attention = model_flops(args.model)
    ready, blocks, finals = run_workers(__file__, args.systems, args, options)
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
            "tflops": (6 * weights * t["real"] + attention * t["squares"]) / t["seconds"] / 1e12,
            "peak_gpu": finals[s].get("peak_gpu_mib"),
        })
    return rows


def print_table(dataset: str, rows: list[dict], args) -> None:
    print(f"\n### {dataset} ({os.path.relpath(data_path(args.data_root, dataset)[0], args.data_root)})\n")
    cuda = args.device == "cuda"
    memory = ("model TFLOP/s | MFU | peak GPU memory (MiB) | peak RSS (MiB)" if cuda
              else "peak RSS (MiB) | RSS rise in training (MiB)")
    print("| system | steps/s | real tok/s (rounds min-max) | supervised tok/s | padding | samples / epoch "
          f"| real tokens / epoch | epoch, est. (s) | {memory} |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|" + "---:|" * memory.count("|") + "---:|")
    for r in rows:
        if cuda:
            memory = (f"{r['tflops']:.0f} | {r['tflops'] / args.peak_tflops:.1%} | {r['peak_gpu']:,.0f} "
                      f"| {r['peak']:,.0f}")
        else:
            memory = f"{r['peak']:,.0f} | {r['rise']:,.0f}"
        print(f"| {SYSTEMS[r['system']]} | {r['steps_s']:.2f} "
              f"| {r['tok_s']:,.0f} ({r['tok_s_min']:,.0f}-{r['tok_s_max']:,.0f}) "
              f"| {r['sup_s']:,.0f} | {r['padding']:.1%} | {r['samples']} | {r['epoch_tokens']:,} "
              f"| {r['epoch_s']:.{1 if cuda else 0}f} | {memory} |")
    by = {r["system"]: r for r in rows}
    same = [s for s in ("tlkit-trainer", "tlkit-direct", "bare") if s in by]
    if len(same) > 1:
        identical = all(by[s]["digest"] == by[same[0]]["digest"] for s in same)
        print(f"\nIdentical batches for {', '.join(SYSTEMS[s] for s in same)}: {'yes' if identical else 'NO'} "
              "(fingerprint of every timed batch).")
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
    parser.add_argument("--systems", nargs="+", choices=list(SYSTEMS),
                        default=[s for s in SYSTEMS if s != "tlkit-direct"],
                        help="systems to run (default: all but tlkit-direct, which shows what the Trainer costs)")
    add_common_arguments(parser)
    parser.add_argument("--intermediate", type=int, default=None,
                        help="MLP width (default: 8/3 x hidden, a multiple of 64)")
    parser.add_argument("--heads", type=int, default=None, help="attention heads (default: hidden / 64)")
    parser.add_argument("--kv-heads", type=int, default=None, help="key / value heads (default: --heads)")
    parser.add_argument("--max-length", type=int, default=1024)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu",
                        help="where every system trains (cuda: one GPU)")
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32",
                        help="fp32, or bf16 mixed precision (float32 weights and optimiser, bf16 autocast) "
                             "for every system")
    parser.add_argument("--peak-tflops", type=float, default=H200_BF16_TFLOPS,
                        help="the GPU's peak TFLOP/s that MFU divides by (default: H100 / H200 SXM dense bf16)")
    add_lockstep_arguments(parser, list(SYSTEMS), warmup=2, steps=3)
    parser.add_argument("--dataset", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)
    shape = {"intermediate": args.intermediate, "heads": args.heads, "kv_heads": args.kv_heads}
    with model_and_cache(args.hidden, args.layers, **shape) as (args.model, args.cache_dir):
        library_versions, args.systems = versions(args.systems)
        cuda = args.device == "cuda"
        print(f"SFT throughput, {today()}, {gpu_machine() if cuda else MACHINE}; "
              f"{args.threads} torch thread(s) per process.")
        precision = ("bf16 mixed precision (bf16 autocast; float32 weights, gradients and AdamW states)"
                     if args.precision == "bf16" else "float32")
        print(f"{describe_model(args.model, shape=cuda or any(shape.values()))}; {precision}; batch {args.batch_size}; "
              f"max length {args.max_length}; AdamW lr {LR}, clip {CLIP}; {args.warmup} warm-up steps, "
              f"then {args.rounds} rounds x {args.steps} steps per system, alternating.")
        print(library_versions)
        for dataset in args.datasets:
            print_table(dataset, measure(args, dataset), args)
    print("\nreal tok/s: non-pad tokens per second of training-step wall time; supervised: tokens with a loss; "
          "padding: pad share of the batch positions; epoch, est.: real tokens / epoch divided by real tok/s; "
          "peak RSS: ru_maxrss of the system's own process (imports and data included); "
          + ("model TFLOP/s: 6 N per real token plus 12 x layers x heads x head_dim x T per token of a T-token "
             "sequence, over step time (N: the layers' and the LM head's matrix weights; _common.model_flops); "
             f"MFU: that over {args.peak_tflops:g} TFLOP/s; peak GPU memory: torch.cuda.max_memory_allocated "
             "of the system's process." if cuda else
             "RSS rise: that peak minus the resident memory just before the first step."))


def gpu_machine() -> str:
    import torch

    gpu = torch.cuda.get_device_properties(0)
    return (f"one {gpu.name} ({gpu.total_memory / 2**30:.0f} GiB), {os.cpu_count()} CPU cores "
            "(the systems' processes hold it together, training in turn)")


if __name__ == "__main__":
    main()
