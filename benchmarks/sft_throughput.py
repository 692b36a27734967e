"""SFT throughput: tlkit WeightedSFT vs TRL's SFTTrainer vs a bare PyTorch loop, on one model and data.

    python benchmarks/sft_throughput.py [--datasets bfcl_simple toolalpaca_golden] [--hidden 512 --layers 8]
    python benchmarks/sft_throughput.py --datasets bfcl_simple --systems tlkit-trainer tlkit-direct bare
    python benchmarks/sft_throughput.py --device cuda --precision bf16 --hidden 2048 --layers 16 \
        --intermediate 8192 --heads 32 --kv-heads 8    # a GPU; Llama 3.2 1B's shape, tlkit's 4096-token vocabulary
    python benchmarks/sft_throughput.py --source smollm2-135m-instruct --lora [--base-dtype bfloat16] \
        [--precision bf16 --batch-size 4 --max-length 768]   # a real model with LoRA, as experiments/sft.yaml
    python benchmarks/sft_throughput.py --source experiments/models/tiny-llama --lora --datasets bfcl_simple \
        --rounds 1 --steps 2 --warmup 1                       # a quick check of the LoRA path

Every system trains the same model, CPU unless --device cuda, with AdamW (same lr, weight decay),
gradient clipping at 1.0, the same batch size and max length, on the same real data
(tests/fixtures/public_data), rendered in tlkit's `paper` format with MAE on. The model is, by
default, a Llama built from experiments/models/tiny-llama/config.json (or another shape with
--hidden / --layers / --intermediate / --heads / --kv-heads), fresh weights from the same seed,
float32, every weight trained (full fine-tuning). `--source NAME_OR_PATH` takes a real model
instead (not together with the shape options): a Hugging Face folder, a .gguf file or a bundled
short name (`smollm2-135m-instruct`), resolved once by `tlkit.models.resolve_model_source` to a plain
Hugging Face folder (a GGUF is converted once, into tlkit's cache) that every system loads with
`tlkit.models.load_causal_lm`: its pretrained weights (a folder with only a config.json: fresh
weights from the same seed), in float32, and its own tokenizer for the data (the DataModule's, and
TRL's). `--lora` trains a peft LoRA adapter with experiments/sft.yaml's settings (r 16, lora_alpha
32, target_modules all-linear: every linear layer but the LM head; `LORA` below) in every system,
the base frozen; each optimiser gets the trainable (adapter) parameters only. `--base-dtype
bfloat16` (with --lora only) loads the frozen base in bf16, as sft.yaml's `dtype: bfloat16` (peft
keeps the adapter in float32); the default keeps it float32. `--precision bf16` runs every system in
bf16 mixed precision: float32 trained weights, gradients and AdamW states, the forward pass and
loss under bf16 autocast (Lightning's `precision="bf16-mixed"`, `torch.autocast` in the plain loops,
TRL's `bf16=True`). The header names the model (source, folder, parameters, trainable parameters)
and whether LoRA is on; under each table, every system's own count of all / trainable / optimised
parameters and the dtypes of its frozen and trained weights, so a system that differs shows.

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

With --lora and --base-dtype, each system does the following (all load the model the same way,
`load_causal_lm(folder, base_dtype)` after `torch.manual_seed(0)`, then add the adapter):
- the tlkit rows: `WeightedSFT(folder, lora=LORA, dtype=base_dtype)`, which does exactly that
  (`tlkit.models.apply_lora`: peft `get_peft_model` with `LoraConfig(task_type="CAUSAL_LM", **LORA)`);
  AdamW over `requires_grad` parameters (`WeightedSFT.configure_optimizers`);
- the bare loop: peft `get_peft_model(model, LoraConfig(task_type="CAUSAL_LM", **LORA))` itself;
  AdamW over the `requires_grad` parameters;
- both TRL rows: the model, loaded as above, goes to `SFTTrainer(model=..., peft_config=LoraConfig(...))`
  (the same LoraConfig), which wraps it with `get_peft_model` and keeps an instantiated model's dtype,
  so a bf16 base stays bf16 there too; the HF Trainer's AdamW takes the `requires_grad` parameters only.
  (TRL under DeepSpeed ZeRO-3 would keep the adapter in bf16: not a setting here.)
Gradient checkpointing stays as without LoRA: off, but on at TRL's defaults (with peft, TRL turns
on input gradients for it, `enable_input_require_grads`); sft.yaml turns it on for tlkit.

Each system runs in its own process (peak memory is that process's `ru_maxrss`). After a
warm-up block each, the systems take turns running blocks of steps (A B C, C B A, ...). A step
is timed from the end of the previous one, so data loading, the loss, backward, the optimiser
step and the trainer's own bookkeeping are all in (on a GPU, up to a `torch.cuda.synchronize`).
Real tokens are non-pad tokens. On a GPU the table adds model FLOPs utilisation (MFU: see
`_common.model_flops` for the count; with --lora, 4 N per token for the frozen weights, which need
input gradients but no weight gradients, plus 6 per trainable adapter weight) against
`--peak-tflops`, and each process's peak GPU memory.
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
                     cycle, data_path, describe_model, model_and_cache, model_flops, parameter_counts,
                     quiet, run_workers, set_threads, today, totals, versions)

SYSTEMS = {
    "tlkit-trainer": "tlkit WeightedSFT (Trainer)",
    "tlkit-direct": "tlkit WeightedSFT (direct)",
    "bare": "bare PyTorch loop",
    "trl": "TRL SFTTrainer (random batches, grad. checkpointing: its defaults)",
    "trl-matched": "TRL SFTTrainer, matched (length-grouped, no checkpointing)",
}
LR, WEIGHT_DECAY, CLIP = 2e-3, 0.01, 1.0
LORA = {"r": 16, "lora_alpha": 32, "target_modules": "all-linear"}  # experiments/sft.yaml's model.init_args.lora
SHAPE_OPTIONS = ("hidden", "layers", "intermediate", "heads", "kv_heads")
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


def lora_config():
    """The peft LoraConfig of --lora: what `tlkit.models.apply_lora` builds from WeightedSFT's `lora=LORA`."""
    from peft import LoraConfig

    return LoraConfig(task_type="CAUSAL_LM", **LORA)


def model_info(model) -> dict:
    """A system's own count of its model's parameters (all, trainable) and the dtypes of its frozen and
    trained weights, for the check under the table."""
    params = list(model.parameters())  # tied weights once

    def dtypes(group):
        return "+".join(sorted({str(p.dtype).removeprefix("torch.") for p in group})) or "none"

    return {"parameters": sum(p.numel() for p in params),
            "trainable": sum(p.numel() for p in params if p.requires_grad),
            "dtypes": f"frozen {dtypes([p for p in params if not p.requires_grad])}, "
                      f"trained {dtypes([p for p in params if p.requires_grad])}"}


def optimised(optimizer) -> dict:
    """How many parameters the optimiser updates (the trainable ones only, in every system)."""
    return {"optimised": sum(p.numel() for group in optimizer.param_groups for p in group["params"])}


def worker_tlkit(args, blocks: Blocks, trainer: bool) -> dict:
    import lightning as L
    import torch

    from tlkit import WeightedSFT

    dm = tlkit_data(args)
    torch.manual_seed(0)
    module = WeightedSFT(args.model, tokenizer=dm.tokenizer, eval_generation=False, export=False,
                         lora=dict(LORA) if args.lora else None, dtype=args.base_dtype,
                         optimizer=partial(torch.optim.AdamW, lr=LR, weight_decay=WEIGHT_DECAY))
    info = model_info(module)
    if trainer:
        final: dict = {}

        class Pause(L.Callback):
            def on_train_start(self, trainer, pl_module):
                final.update(optimised(trainer.optimizers[0]))

            def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
                blocks.step_done(*tlkit_counts(batch), batch["input_ids"], squares(batch["attention_mask"]))

        fit = L.Trainer(accelerator="gpu" if args.device == "cuda" else "cpu", devices=1,
                        precision="bf16-mixed" if args.precision == "bf16" else "32-true", max_steps=args.total_steps,
                        logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        gradient_clip_val=CLIP,
                        limit_val_batches=0, num_sanity_val_steps=0, callbacks=[Pause()])
        blocks.ready(**epoch_info(dm), **info)
        fit.fit(module, datamodule=dm)
        return final
    from lightning.fabric.utilities.apply_func import move_data_to_device

    module.to(args.device)
    optimizer = module.configure_optimizers()
    trained = [p for p in module.parameters() if p.requires_grad]
    module.train()
    batches = cycle(dm.train_dataloader())
    blocks.ready(**epoch_info(dm), **info)
    while not blocks.stopped:
        batch = next(batches)
        with autocast(args):
            loss = module.losses(move_data_to_device(batch, args.device))["loss"]
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trained, CLIP)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        blocks.step_done(*tlkit_counts(batch), batch["input_ids"], squares(batch["attention_mask"]))
    return optimised(optimizer)


def worker_bare(args, blocks: Blocks) -> dict:
    import torch
    import torch.nn.functional as F

    from tlkit.models import load_causal_lm

    dm = tlkit_data(args)
    torch.manual_seed(0)
    model = load_causal_lm(args.model, args.base_dtype)
    if args.lora:
        from peft import get_peft_model

        model = get_peft_model(model, lora_config())
    model.to(args.device)
    model.train()
    trained = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trained, lr=LR, weight_decay=WEIGHT_DECAY)
    batches = cycle(dm.train_dataloader())
    blocks.ready(**epoch_info(dm), **model_info(model))
    while not blocks.stopped:
        batch = next(batches)
        input_ids, turn_ids = batch["input_ids"].to(args.device), batch["turn_ids"].to(args.device)
        with autocast(args):
            logits = model(input_ids=input_ids, attention_mask=batch["attention_mask"].to(args.device),
                           use_cache=False).logits
            labels = input_ids[:, 1:].masked_fill(turn_ids[:, 1:] < 0, -100)
            loss = F.cross_entropy(logits[:, :-1].flatten(0, 1), labels.flatten(), ignore_index=-100)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trained, CLIP)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        blocks.step_done(*tlkit_counts(batch), batch["input_ids"], squares(batch["attention_mask"]))
    return optimised(optimizer)


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


def worker_trl(args, blocks: Blocks, matched: bool) -> dict:
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
    model = load_causal_lm(args.model, args.base_dtype)  # an instantiated model: SFTTrainer keeps its dtype
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
                         callbacks=[Pause()], peft_config=lora_config() if args.lora else None)
    collate = trainer.data_collator

    def counting_collate(examples):
        batch = collate(examples)
        counts.append((batch["attention_mask"].sum(), batch["input_ids"].numel(),
                       (batch["labels"][:, 1:] != -100).sum(), None, squares(batch["attention_mask"])))
        return batch

    trainer.data_collator = counting_collate
    lengths = [min(len(ids), args.max_length) for ids in trainer.train_dataset["input_ids"]]
    blocks.ready(epoch_tokens=sum(lengths), samples=len(lengths), **model_info(trainer.model))
    trainer.train()
    return optimised(trainer.optimizer)


def worker(args) -> None:
    import torch

    set_threads(args.threads)
    quiet()
    cuda = args.device == "cuda"
    blocks = Blocks(sync=torch.cuda.synchronize if cuda else None)
    if args.worker in ("tlkit-trainer", "tlkit-direct"):
        final = worker_tlkit(args, blocks, trainer=args.worker == "tlkit-trainer")
    elif args.worker == "bare":
        final = worker_bare(args, blocks)
    else:
        final = worker_trl(args, blocks, matched=args.worker == "trl-matched")
    blocks.finish(**final, **({"peak_gpu_mib": torch.cuda.max_memory_allocated() / 2**20} if cuda else {}))


# ---------------------------------------------------------------------------------------------
# Parent


def measure(args, dataset: str) -> list[dict]:
    options = ["--dataset", dataset, "--data-root", str(args.data_root), "--batch-size", str(args.batch_size),
               "--max-length", str(args.max_length), "--device", args.device, "--precision", args.precision,
               "--base-dtype", args.base_dtype, *(["--lora"] if args.lora else [])]
    weights, attention = model_flops(args.model)
    ready, blocks, finals = run_workers(__file__, args.systems, args, options)
    rows = []
    for s in args.systems:
        t = totals(blocks[s])
        # FLOPs per real token: 6 N in full fine-tuning; with LoRA the frozen weights need no weight gradients
        # (forward 2 N, input gradients 2 N) and the adapter's matrices take 6 per weight.
        per_token = 4 * weights + 6 * ready[s]["trainable"] if args.lora else 6 * weights
        rows.append({
            "system": s, "steps_s": t["steps"] / t["seconds"], "tok_s": t["real"] / t["seconds"],
            "tok_s_min": min(t["round_tok_s"]), "tok_s_max": max(t["round_tok_s"]),
            "sup_s": t["supervised"] / t["seconds"], "padding": 1 - t["real"] / t["positions"],
            "samples": ready[s]["samples"], "epoch_tokens": ready[s]["epoch_tokens"],
            "epoch_s": ready[s]["epoch_tokens"] / (t["real"] / t["seconds"]),
            "median_step": statistics.median(t["step_seconds"]),
            "peak": finals[s]["peak_rss_mib"], "rise": finals[s]["peak_rss_mib"] - ready[s]["rss_mib"],
            "digest": [b["digest"] for b in blocks[s]],
            "tflops": (per_token * t["real"] + attention * t["squares"]) / t["seconds"] / 1e12,
            "peak_gpu": finals[s].get("peak_gpu_mib"),
            "parameters": (ready[s]["parameters"], ready[s]["trainable"], finals[s]["optimised"], ready[s]["dtypes"]),
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
    print()
    if len(same) > 1:
        identical = all(by[s]["digest"] == by[same[0]]["digest"] for s in same)
        print(f"Identical batches for {', '.join(SYSTEMS[s] for s in same)}: {'yes' if identical else 'NO'} "
              "(fingerprint of every timed batch).")

    def counted(c):
        return f"{c[0]:,} / {c[1]:,} / {c[2]:,} ({c[3]})"

    what = "Parameters, all / trainable / in the optimiser (weight dtypes), as each system counts them"
    if len({r["parameters"] for r in rows}) == 1:
        print(f"{what}: {counted(rows[0]['parameters'])}, the same in every system.")
    else:
        print(f"{what}: NOT the same in every system: "
              + "; ".join(f"{SYSTEMS[r['system']]} {counted(r['parameters'])}" for r in rows) + ".")
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
                        help="fp32, or bf16 mixed precision (float32 trained weights and optimiser, bf16 autocast) "
                             "for every system")
    parser.add_argument("--peak-tflops", type=float, default=H200_BF16_TFLOPS,
                        help="the GPU's peak TFLOP/s that MFU divides by (default: H100 / H200 SXM dense bf16)")
    parser.add_argument("--source", metavar="NAME_OR_PATH",
                        help="a real model for every system instead of the built Llama: a Hugging Face folder, a "
                             ".gguf file or a bundled short name (smollm2-135m-instruct), resolved once to a plain "
                             "folder; its weights and its own tokenizer (not with --hidden / --layers / "
                             "--intermediate / --heads / --kv-heads)")
    parser.add_argument("--lora", action="store_true",
                        help="train a LoRA adapter (experiments/sft.yaml's: r 16, alpha 32, all-linear) in every "
                             "system, the base frozen (default: full fine-tuning)")
    parser.add_argument("--base-dtype", choices=["float32", "bfloat16"], default="float32",
                        help="dtype of the frozen base with --lora (bfloat16: as sft.yaml's `dtype`; the adapter "
                             "stays float32); without --lora only float32")
    add_lockstep_arguments(parser, list(SYSTEMS), warmup=2, steps=3)
    parser.add_argument("--dataset", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)
    shaped = [f"--{name.replace('_', '-')}" for name in SHAPE_OPTIONS if getattr(args, name) is not None]
    if args.source and shaped:
        parser.error(f"--source loads a model whose shape is its own: {' / '.join(shaped)} set the shape of the "
                     "Llama built from config instead; give --source or shape options, not both")
    if args.base_dtype != "float32" and not args.lora:
        parser.error(f"--base-dtype {args.base_dtype} is for the frozen base of --lora; full fine-tuning trains "
                     "float32 weights (add --lora, or leave --base-dtype out)")
    shape = {"intermediate": args.intermediate, "heads": args.heads, "kv_heads": args.kv_heads}
    with model_and_cache(args.hidden, args.layers, args.source, **shape) as (args.model, args.cache_dir):
        library_versions, args.systems = versions(args.systems)
        cuda = args.device == "cuda"
        print(f"SFT throughput, {today()}, {gpu_machine() if cuda else MACHINE}; "
              f"{args.threads} torch thread(s) per process.")
        if args.precision == "bf16":
            precision = (f"bf16 mixed precision (bf16 autocast; float32 {'adapter ' if args.lora else ''}weights, "
                         "gradients and AdamW states)")
        else:
            precision = ("float32" if args.base_dtype == "float32" else
                         "no autocast (the bf16 base computes in bf16, the float32 adapter in float32)")
        print(f"{model_line(args, shape=cuda or any(shape.values()))}; {training_line(args)}; {precision}; "
              f"batch {args.batch_size}; max length {args.max_length}; AdamW lr {LR}, clip {CLIP}; {args.warmup} "
              f"warm-up steps, then {args.rounds} rounds x {args.steps} steps per system, alternating.")
        print(library_versions if not args.lora else library_versions.removesuffix(".") + f", peft {peft_version()}.")
        for dataset in args.datasets:
            print_table(dataset, measure(args, dataset), args)
    print("\nreal tok/s: non-pad tokens per second of training-step wall time; supervised: tokens with a loss; "
          "padding: pad share of the batch positions; epoch, est.: real tokens / epoch divided by real tok/s; "
          "parameters: each system's own count after setup (trainable: requires_grad; in the optimiser: its "
          "param_groups), tied weights once; "
          "peak RSS: ru_maxrss of the system's own process (imports and data included); "
          + ("model TFLOP/s: " + ("4 N per real token (frozen: forward and input gradients) plus 6 per "
                                   "trainable adapter weight" if args.lora else "6 N per real token")
             + " plus 12 x layers x heads x head_dim x T per token of a T-token "
             "sequence, over step time (N: the layers' and the LM head's matrix weights; _common.model_flops); "
             f"MFU: that over {args.peak_tflops:g} TFLOP/s; peak GPU memory: torch.cuda.max_memory_allocated "
             "of the system's process." if cuda else
             "RSS rise: that peak minus the resident memory just before the first step."))


def model_line(args, shape: bool) -> str:
    """The header's words on the model: its source and folder, or the built Llama's shape."""
    if not args.source:
        return describe_model(args.model, shape=shape) + "; built from its config, fresh weights"
    from transformers import AutoConfig

    from tlkit.models import has_weights

    c = AutoConfig.from_pretrained(args.model, local_files_only=True)
    total, _ = parameter_counts(args.model)
    weights = ("its pretrained weights" if has_weights(str(args.model)) else
               "no weight file there: fresh weights from its config.json, the same seed in every system")
    return (f"Model --source {args.source} ({args.model}): {c.model_type}, {c.num_hidden_layers} layers x "
            f"{c.hidden_size} hidden, vocab {c.vocab_size}, {total:,} parameters ({total / 1e6:.1f}M), "
            f"{weights}; the data tokenised by its own tokenizer")


def training_line(args) -> str:
    """The header's words on what trains: every weight, or the LoRA adapter (how many parameters, which base dtype)."""
    total, trainable = parameter_counts(args.model, LORA if args.lora else None)
    if not args.lora:
        return f"full fine-tuning: all {trainable:,} parameters trained"
    settings = ", ".join(f"{key} {value}" for key, value in LORA.items())
    trl = " (TRL's too: SFTTrainer is given the loaded model)" if any(s.startswith("trl") for s in args.systems) else ""
    return (f"LoRA in every system ({settings}, as experiments/sft.yaml): {trainable:,} trainable parameters "
            f"({trainable / total:.2%} of {total:,} with the adapter), frozen base in {args.base_dtype}{trl}, "
            "adapter float32")


def peft_version() -> str:
    import peft

    return peft.__version__


def gpu_machine() -> str:
    import torch

    gpu = torch.cuda.get_device_properties(0)
    return (f"one {gpu.name} ({gpu.total_memory / 2**30:.0f} GiB), {os.cpu_count()} CPU cores "
            "(the systems' processes hold it together, training in turn)")


if __name__ == "__main__":
    main()
