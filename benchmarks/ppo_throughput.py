"""PPO throughput: tlkit ErrorAwarePPO vs TRL's GRPOTrainer, rollout + update on the same prompts.

    python benchmarks/ppo_throughput.py [--prompts 4 --generations 4 --max-new-tokens 48]
    python benchmarks/ppo_throughput.py --rows tlkit-grpo trl-grpo --rounds 4

TRL 1.16 has no PPOTrainer (GRPOTrainer and RLOOTrainer only), so the like-for-like pair is
critic-free, group-relative PPO. Every row starts from the same Llama (experiments/models/tiny-llama,
or wider / deeper with --hidden / --layers, fresh weights, seed 0, float32, CPU) and rolls out the
training prompts tlkit's DataModule makes of experiments/data/seal_tools/dev_subset.jsonl (`paper`
format), in one fixed order, sampling at temperature 1.0 without top-k / top-p, and scores each
answer with tlkit's error-category reward (parse the call, classify it against the gold call):

- `tlkit ErrorAwarePPO, grpo`: experiments/smoke_ppo.yaml with `advantage: grpo`, `group_size` =
  --generations, no KL (`FixedKL(0.0)`), one PPO epoch of one mini-batch (one optimiser step per
  rollout), advantages not whitened again; `lightning.Trainer.fit`, as `tlkit fit` runs it. Per
  step: generate; forward the policy (rollout log-probs) and the reference (KL, computed even at
  coefficient 0); one forward + backward.
- `TRL GRPOTrainer`: the same prompts per step, `num_generations`, `max_completion_length`, AdamW
  (lr, weight decay), clip range and gradient clip as the row above; `beta=0`, `num_iterations=1`,
  one optimiser step per generation batch, `scale_rewards="group"`, `loss_type="dapo"` (a token mean
  over the batch, as tlkit's), `use_vllm=False`, float32 (its default is bf16) and no gradient
  checkpointing (its default is on). tlkit's reward wrapped as a TRL reward function. Per step:
  generate; one forward + backward (TRL skips the old log-probs when they equal the current ones,
  and the reference when beta is 0).
- `tlkit ErrorAwarePPO, gae + critic`: experiments/smoke_ppo.yaml as it is (GAE, a separate critic, KL
  0.3, 2 PPO epochs of mini-batches of 4), on prompts x generations prompts per step, one answer
  each: as many answers per step as the rows above, and more work per step (reference, critic and
  several optimiser steps for actor and critic). For reference, not like for like.

Each row runs in its own process (peak memory is that process's `ru_maxrss`). After a warm-up
block each (model build and first step untimed), the rows take turns running blocks of steps
(A B C, C B A, ...). A step (one rollout batch and its update) is timed from the end of the previous
one. Generated tokens are the answers' tokens up to and including the end-of-turn token.
Prints a markdown table and a one-line reading.
"""

from __future__ import annotations

import argparse
import hashlib
import random
import statistics
import sys
from collections import deque
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (MACHINE, ROOT, Blocks, add_common_arguments, add_lockstep_arguments,  # noqa: E402
                     describe_model, model_and_cache, quiet, run_workers, set_threads, today,
                     totals, versions)

ROWS = {
    "tlkit-grpo": "tlkit ErrorAwarePPO, grpo",
    "trl-grpo": "TRL GRPOTrainer",
    "tlkit-gae": "tlkit ErrorAwarePPO, gae + critic (ppo.yaml; more work per step)",
}
PROMPTS = ROOT / "experiments/data/seal_tools/dev_subset.jsonl"
PPO_YAML = ROOT / "experiments/smoke_ppo.yaml"
SAMPLING = {"do_sample": True, "temperature": 1.0}  # every row samples alike (TRL: no top-k / top-p either)


# ---------------------------------------------------------------------------------------------
# Workers: one row each, in its own process


def ppo_yaml() -> dict[str, Any]:
    """ErrorAwarePPO's arguments in experiments/smoke_ppo.yaml, built as the CLI builds them (KL controller,
    optimisers)."""
    import yaml
    from jsonargparse import ArgumentParser

    from tlkit import ErrorAwarePPO

    parser = ArgumentParser()
    parser.add_class_arguments(ErrorAwarePPO, "model", instantiate=False, sub_configs=True)
    init_args = yaml.safe_load(PPO_YAML.read_text())["model"]["init_args"]
    return vars(parser.instantiate(parser.parse_object({"model": init_args})).model)


def grpo_overrides(args) -> dict[str, Any]:
    """What the grpo row changes in ppo.yaml to do TRL GRPOTrainer's work."""
    from tlkit.rl import FixedKL

    return {"advantage": "grpo", "group_size": args.generations, "kl": FixedKL(0.0), "ppo_epochs": 1,
            "mini_batch_size": args.prompts * args.generations, "whiten_advantages": False}


def training_prompts(args):
    """tlkit's training prompts of the Seal-Tools subset, in one fixed order, and the DataModule that collates them."""
    from tlkit import DataFile, ToolCallDataModule

    dm = ToolCallDataModule(args.model, train=[DataFile(str(PROMPTS), "seal_tools")], prompt_format="paper",
                            train_target="prompts", cache_dir=args.cache_dir, seed=0)
    examples = dm.train_prompts()
    random.Random(0).shuffle(examples)
    return dm, examples


def fingerprint(digest: str, prompts: list[str]) -> str:
    """An order-sensitive fingerprint of the prompts rolled out, to check two rows saw the same ones."""
    return hashlib.sha1((digest + "\0".join(prompts)).encode()).hexdigest()


def step_done(blocks: Blocks, generated: int, answers: int) -> None:
    """One step done; Blocks' counters hold the generated tokens (`real`) and the answers (`positions`)."""
    blocks.step_done(real=generated, positions=answers, supervised=0)


def worker_tlkit(args, blocks: Blocks, advantage: str) -> None:
    import lightning as L
    import torch
    from torch.utils.data import DataLoader

    from tlkit import ErrorAwarePPO

    dm, examples = training_prompts(args)
    settings = {**ppo_yaml(), **(grpo_overrides(args) if advantage == "grpo" else {})}
    settings.update(SAMPLING, model=str(args.model), tokenizer=dm.tokenizer, max_new_tokens=args.max_new_tokens,
                    log_samples_every_n_steps=0, eval_generation=False, export=False)
    torch.manual_seed(0)
    module = ErrorAwarePPO(**settings)
    per_step = args.prompts if advantage == "grpo" else args.prompts * args.generations
    answers = args.prompts * args.generations
    loader = DataLoader(examples, batch_size=per_step, drop_last=True,
                        collate_fn=lambda b: dm.prompt_collate("train", b))
    seen = ""

    class Pause(L.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            nonlocal seen
            seen = fingerprint(seen, [e.prompt for e in batch.examples])
            generated = round(float(trainer.callback_metrics["ppo/response_length"]) * answers)  # logged: the mean
            step_done(blocks, generated, answers)
            trainer.should_stop = blocks.stopped

    fit = L.Trainer(accelerator="cpu", devices=1, max_epochs=-1, logger=False, enable_checkpointing=False,
                    enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
                    num_sanity_val_steps=0, callbacks=[Pause()])
    blocks.ready()
    fit.fit(module, train_dataloaders=loader)
    blocks.finish(prompts=seen)


def worker_trl(args, blocks: Blocks) -> None:
    import datasets
    import torch
    from transformers import TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from tlkit.irm import ErrorCategoryReward
    from tlkit.models import load_causal_lm
    from tlkit.scoring.rules import judge

    dm, examples = training_prompts(args)
    settings = {**ppo_yaml(), **grpo_overrides(args)}
    reward = settings["reward"] or ErrorCategoryReward()
    call_format = dm.prompt_collate("train", examples[:1]).call_format
    counts: deque = deque()  # generated tokens per generation batch, in order
    seen = ""

    def error_category_reward(prompts, completions, completion_ids, index, **kwargs):
        """ErrorAwarePPO's score: the error category of each answer against its prompt's gold calls."""
        nonlocal seen
        seen = fingerprint(seen, prompts[:: args.generations])
        counts.append(sum(len(ids) for ids in completion_ids))
        asked = [examples[i] for i in index]
        return [reward(judge(text, e.gold, e.tools, e.meta, e.format, call_format, reward.strict).category)
                for text, e in zip(completions, asked)]

    class Pause(TrainerCallback):
        def on_step_end(self, args_, state, control, **kwargs):
            step_done(blocks, counts.popleft(), args.prompts * args.generations)

    optimizer = settings["actor_optimizer"].keywords  # AdamW's lr and weight decay, from ppo.yaml
    config = GRPOConfig(
        output_dir=str(Path(args.cache_dir).parent / "trl-grpo"),  # inside the parent's temporary folder
        per_device_train_batch_size=args.prompts * args.generations, gradient_accumulation_steps=1,
        num_generations=args.generations, max_completion_length=args.max_new_tokens, num_iterations=1,
        beta=0.0, epsilon=settings["clip_range"], scale_rewards="group", loss_type="dapo",
        temperature=SAMPLING["temperature"], top_p=1.0, top_k=0, use_vllm=False, shuffle_dataset=False,
        learning_rate=optimizer["lr"], weight_decay=optimizer["weight_decay"], max_grad_norm=settings["max_grad_norm"],
        lr_scheduler_type="constant", optim="adamw_torch", max_steps=args.total_steps, gradient_checkpointing=False,
        bf16=False, fp16=False, use_cpu=True, report_to="none", save_strategy="no", disable_tqdm=True, seed=0,
        dataloader_num_workers=0,
    )
    dataset = datasets.Dataset.from_list([{"prompt": e.prompt, "index": i} for i, e in enumerate(examples)])
    torch.manual_seed(0)
    trainer = GRPOTrainer(model=load_causal_lm(str(args.model)), reward_funcs=error_category_reward, args=config,
                          train_dataset=dataset, processing_class=dm.tokenizer, callbacks=[Pause()])
    blocks.ready()
    trainer.train()
    blocks.finish(prompts=seen)


def worker(args) -> None:
    set_threads(args.threads)
    quiet()
    blocks = Blocks()
    if args.worker == "trl-grpo":
        worker_trl(args, blocks)
    else:
        worker_tlkit(args, blocks, advantage=args.worker.removeprefix("tlkit-"))


# ---------------------------------------------------------------------------------------------
# Parent


def measure(args) -> list[dict]:
    options = ["--prompts", str(args.prompts), "--generations", str(args.generations),
               "--max-new-tokens", str(args.max_new_tokens)]
    ready, blocks, finals = run_workers(__file__, args.rows, args, options)
    rows = []
    for r in args.rows:
        t = totals(blocks[r])
        rows.append({
            "row": r, "steps": t["steps"], "seconds": t["seconds"], "tok_s": t["real"] / t["seconds"],
            "tok_s_min": min(t["round_tok_s"]), "tok_s_max": max(t["round_tok_s"]),
            "step_s": t["seconds"] / t["steps"], "median_step": statistics.median(t["step_seconds"]),
            "answers": t["positions"] / t["steps"], "answer_length": t["real"] / t["positions"],
            "peak": finals[r]["peak_rss_mib"], "rise": finals[r]["peak_rss_mib"] - ready[r]["rss_mib"],
            "prompts": finals[r]["prompts"],
        })
    return rows


def print_table(rows: list[dict]) -> None:
    print("\n| row | answers / step | timed steps | wall (s) | generated tok/s (rounds min-max) | s / step (median) "
          "| ms / answer | mean answer (tokens) | peak RSS (MiB) | RSS rise in training (MiB) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {ROWS[r['row']]} | {r['answers']:.0f} | {r['steps']} | {r['seconds']:.1f} "
              f"| {r['tok_s']:,.0f} ({r['tok_s_min']:,.0f}-{r['tok_s_max']:,.0f}) "
              f"| {r['step_s']:.2f} ({r['median_step']:.2f}) | {1000 * r['step_s'] / r['answers']:,.0f} "
              f"| {r['answer_length']:.1f} | {r['peak']:,.0f} | {r['rise']:,.0f} |")
    by = {r["row"]: r for r in rows}
    reading = []
    if "tlkit-grpo" in by and "trl-grpo" in by:
        ours, trl = by["tlkit-grpo"], by["trl-grpo"]
        same = "yes" if ours["prompts"] == trl["prompts"] else "NO"
        reading.append(f"ErrorAwarePPO (grpo) generates {ours['tok_s'] / trl['tok_s']:.2f}x TRL GRPOTrainer's tokens/s "
                       f"and takes {ours['step_s'] / trl['step_s']:.2f}x its time per answer "
                       f"(same prompts in the same order: {same})")
    if "tlkit-gae" in by:
        base = by.get("tlkit-grpo") or by.get("trl-grpo")
        if base is not None:
            reading.append(f"gae + critic takes {by['tlkit-gae']['step_s'] / base['step_s']:.2f}x the seconds per step "
                           f"of {ROWS[base['row']]} for as many answers")
    if reading:
        print(f"\nReading: {'; '.join(reading)}.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", nargs="+", choices=list(ROWS), default=list(ROWS), help="rows to run (default: all)")
    add_common_arguments(parser, data=False)
    parser.add_argument("--prompts", type=int, default=4, help="distinct prompts per step (gae row: x --generations)")
    parser.add_argument("--generations", type=int, default=4, help="sampled answers per prompt (>= 2)")
    parser.add_argument("--max-new-tokens", type=int, default=48,
                        help="longest answer (experiments/smoke_ppo.yaml's 48)")
    add_lockstep_arguments(parser, list(ROWS), warmup=1, steps=2)
    args = parser.parse_args()
    if args.generations < 2:
        parser.error("--generations must be at least 2 (group-relative advantages compare answers to one prompt)")
    if args.worker:
        return worker(args)
    with model_and_cache(args.hidden, args.layers) as (args.model, args.cache_dir):
        library_versions, args.rows = versions(args.rows)
        print(f"PPO throughput, {today()}, {MACHINE}; {args.threads} torch thread(s) per process.")
        print(f"{describe_model(args.model)}; float32; {args.prompts} prompts x {args.generations} answers per step, "
              f"sampled (temperature 1.0), at most {args.max_new_tokens} new tokens; {args.warmup} warm-up step(s), "
              f"then {args.rounds} rounds x {args.steps} steps per row, alternating.")
        print(library_versions)
        print_table(measure(args))
    print("\ngenerated tok/s: answer tokens (up to and including end-of-turn) per second of step wall time, a step "
          "being a rollout batch and its update; peak RSS: ru_maxrss of the row's own process (imports and data "
          "included); RSS rise: that peak minus the resident memory just before the first step.")


if __name__ == "__main__":
    main()
