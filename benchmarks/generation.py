"""Answer generation for evaluation: tlkit's validation path, length-sorted batches, and a plain loop.

    python benchmarks/generation.py --limit 24 --max-new-tokens 16          # a quick check on the tiny Llama
    python benchmarks/generation.py --model smollm2-135m-instruct           # the real target (idle machine)
    python benchmarks/generation.py --model smollm2-135m-instruct --threads 2 --batch-size 32

Every row answers the same prompts with the same model: the validation prompts of the default
experiment (the `data.val` files of experiments/sft.yaml, built by ToolCallDataModule with that
file's data settings, `paper` format, as `tlkit fit` builds them; the tokenizer is the model's, as
the CLI links it), decoded greedily with at most --max-new-tokens new tokens and the stop tokens of
`tlkit.modules.evaluation.stop_token_ids`. The model is the Hugging Face model `load_causal_lm`
loads in --dtype (bfloat16 for a real model, as sft.yaml's `dtype`; float32 for the tiny Llama,
fresh random weights whose answers rarely stop before the limit), in eval mode, without LoRA (at step 0 the
adapter adds exactly zero) and without autocast.

- `tlkit eval path`: what validation runs today: the DataModule's prompt loaders, one per eval set,
  in their order, with --batch-size (sft.yaml's `eval_batch_size`), `prompt_collate` (left padding),
  then `tlkit.modules.evaluation.generate` and `answer_texts` per batch (judging and metrics left out).
- `tlkit, batches sorted by prompt length`: each eval set's prompts sorted by token length (longest
  first, as the DataModule's loss batches are), then cut into batches of --batch-size and collated,
  generated and decoded as above: as many batches, less padding. Sorting is timed (the prompts are
  tokenised once more to measure them). Its answers are checked against the row above, prompt by prompt.
  In bfloat16 a batch's padding changes the arithmetic a little, and that can flip a greedy choice
  between near-tied tokens: a differing answer that the next row shares is the eval path's own padding
  at work, not the sorting's.
- `model.generate, one prompt at a time`: the loop a user would write: each prompt tokenised alone
  (no padding) and passed to `model.generate(do_sample=False)` with the same stop tokens.

The rows run sequentially in one process, in this order, each after an untimed warm-up on the
first two prompts, under `torch.inference_mode()` (validation during fit uses `no_grad`), seeds set
before each. A row's wall time runs from its first prompt's tokenisation to its last answer's text.
Generated tokens are each answer's tokens up to and including its first stop token (a batch keeps
decoding finished answers until its last one stops: that work is not counted). Padded prompt
tokens share: left-padding positions / all prompt positions fed to the model. --limit keeps the
first prompts of every eval set, in proportion to its size. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import MACHINE, ROOT, TINY, quiet, set_threads, today  # noqa: E402

SFT_YAML = ROOT / "experiments/sft.yaml"
ROWS = {
    "tlkit": "tlkit eval path",
    "sorted": "tlkit, batches sorted by prompt length",
    "hf": "model.generate, one prompt at a time",
}
WARMUP_PROMPTS = 2


def datamodule(model: str, batch_size: int, cache_dir: str) -> Any:
    """sft.yaml's DataModule for its validation files, with the model's tokenizer and `batch_size` prompts a batch."""
    import yaml

    from tlkit import DataFile, ToolCallDataModule

    data = yaml.safe_load(SFT_YAML.read_text())["data"]
    val = [DataFile(**{**f, "path": str(ROOT / f["path"])}) for f in data["val"]]
    settings = {k: v for k, v in data.items() if k not in ("train", "val", "test", "eval_batch_size")}
    return ToolCallDataModule(model, val=val, eval_batch_size=batch_size, cache_dir=cache_dir, **settings)


def keep(loaders: list, counts: list[int]) -> list:
    """The same loaders (batch size, collate) over the first `counts[i]` prompts of each."""
    from torch.utils.data import DataLoader

    return [DataLoader(loader.dataset[:n], batch_size=loader.batch_size, shuffle=False, collate_fn=loader.collate_fn)
            for loader, n in zip(loaders, counts)]


def limited(loaders: list, limit: int | None) -> list:
    """The loaders themselves, or with `limit` prompts in all, shared in proportion to each set's size."""
    sizes = [len(loader.dataset) for loader in loaders]
    if limit is None or limit >= sum(sizes):
        return loaders
    shares = [limit * s / sum(sizes) for s in sizes]
    counts = [int(s) for s in shares]
    for i in sorted(range(len(sizes)), key=lambda i: counts[i] - shares[i])[: limit - sum(counts)]:
        counts[i] += 1  # largest remainders first
    return keep(loaders, counts)


def generated_tokens(new_tokens: Any, stops: list[int]) -> int:
    """Tokens of each answer up to and including its first stop token (all of them if it never stopped)."""
    total = 0
    for row in new_tokens.tolist():
        total += next((i + 1 for i, token in enumerate(row) if token in stops), len(row))
    return total


class Run:
    """What a row produced: answers by (eval set, position), and its counts."""

    def __init__(self):
        self.answers: dict[tuple[int, int], str] = {}
        self.outputs: list[tuple[Any, Any]] = []  # (attention mask, new tokens) per generate call, counted later
        self.batches = 0
        self.seconds = 0.0

    def add(self, keys: list[tuple[int, int]], texts: list[str], attention_mask: Any, new_tokens: Any) -> None:
        self.answers.update(zip(keys, texts))
        self.outputs.append((attention_mask, new_tokens))
        self.batches += 1

    def counts(self, stops: list[int]) -> dict[str, int]:
        fed = sum(mask.numel() for mask, _ in self.outputs)
        real = sum(int(mask.sum()) for mask, _ in self.outputs)
        return {"prompt_positions": fed, "padding": fed - real,
                "generated": sum(generated_tokens(new, stops) for _, new in self.outputs)}


def answer(model: Any, tokenizer: Any, batches: Any, max_new_tokens: int, stops: list[int]) -> Run:
    """`generate` and `answer_texts` for each `(eval set index, PromptBatch)`, as validation does per batch."""
    from tlkit.modules.evaluation import answer_texts, generate

    run = Run()
    for s, batch in batches:
        new_tokens = generate(model, tokenizer, batch.input_ids, batch.attention_mask, max_new_tokens, stops)
        texts = answer_texts(tokenizer, new_tokens, stops, keep_special=batch.call_format == "auto")
        run.add([(s, e.index) for e in batch.examples], texts, batch.attention_mask, new_tokens)
    return run


def row_tlkit(model: Any, tokenizer: Any, loaders: list, max_new_tokens: int, stops: list[int]) -> Run:
    """Validation's loop: each prompt loader in turn, in its order."""
    batches = ((s, batch) for s, loader in enumerate(loaders) for batch in loader)
    return answer(model, tokenizer, batches, max_new_tokens, stops)


def row_sorted(model: Any, tokenizer: Any, loaders: list, max_new_tokens: int, stops: list[int]) -> Run:
    """Each eval set's prompts sorted by token length, longest first, cut into batches, then as `row_tlkit`."""
    def sorted_batches():
        for s, loader in enumerate(loaders):
            examples = loader.dataset
            if not examples:
                continue
            ids = tokenizer([e.prompt for e in examples], add_special_tokens=True)["input_ids"]
            lengths = [len(i) for i in ids]
            order = sorted(range(len(examples)), key=lambda i: -lengths[i])
            for start in range(0, len(order), loader.batch_size):
                yield s, loader.collate_fn([examples[i] for i in order[start : start + loader.batch_size]])

    return answer(model, tokenizer, sorted_batches(), max_new_tokens, stops)


def row_hf(model: Any, tokenizer: Any, loaders: list, max_new_tokens: int, stops: list[int]) -> Run:
    """A plain Hugging Face loop: one prompt at a time, no padding."""
    from tlkit.modules.evaluation import answer_texts

    run = Run()
    for s, loader in enumerate(loaders):
        for e in loader.dataset:
            inputs = tokenizer(e.prompt, return_tensors="pt")
            out = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False, eos_token_id=stops,
                                 pad_token_id=tokenizer.pad_token_id)
            new_tokens = out[:, inputs["input_ids"].shape[1]:]
            run.add([(s, e.index)], answer_texts(tokenizer, new_tokens, stops, keep_special=False),
                    inputs["attention_mask"], new_tokens)
    return run


RUNNERS = {"tlkit": row_tlkit, "sorted": row_sorted, "hf": row_hf}


def measure(args) -> tuple[dict[str, Run], list[int], dict[str, Any]]:
    import torch

    from tlkit.models import load_causal_lm
    from tlkit.modules.evaluation import stop_token_ids

    with tempfile.TemporaryDirectory(prefix="tlkit-bench-") as cache_dir:
        dm = datamodule(args.model, args.batch_size, cache_dir)
        loaders = limited(dm.prompt_loaders("val"), args.limit)
    torch.manual_seed(0)  # the tiny Llama's fresh weights
    model = load_causal_lm(args.model, args.dtype).eval()
    tokenizer = dm.tokenizer
    stops = stop_token_ids(model, tokenizer)
    warmup = keep(loaders, [WARMUP_PROMPTS] + [0] * (len(loaders) - 1))
    runs = {}
    with torch.inference_mode():
        for name, runner in RUNNERS.items():
            random.seed(0)
            torch.manual_seed(0)
            runner(model, tokenizer, warmup, args.max_new_tokens, stops)
            started = time.perf_counter()
            run = runner(model, tokenizer, loaders, args.max_new_tokens, stops)
            run.seconds = time.perf_counter() - started
            runs[name] = run
    info = {"sets": [(f.name, len(loader.dataset)) for f, loader in zip(dm.files["val"], loaders)],
            "parameters": sum(p.numel() for p in model.parameters()), "stops": stops,
            "stop_tokens": tokenizer.convert_ids_to_tokens(stops)}
    return runs, stops, info


def differing(run: Run, reference: Run) -> list[tuple[int, int]]:
    return [key for key, text in reference.answers.items() if run.answers.get(key) != text]


def print_table(runs: dict[str, Run], stops: list[int]) -> None:
    reference = runs["tlkit"]
    print("\n| row | prompts | batches | wall (s) | answers/s | generated tok/s | padded prompt tokens (share) "
          "| answers differing from row 1 |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, run in runs.items():
        c = run.counts(stops)
        n = len(run.answers)
        diff = "-" if name == "tlkit" else f"{len(differing(run, reference))} of {n}"
        print(f"| {ROWS[name]} | {n} | {run.batches} | {run.seconds:.2f} | {n / run.seconds:.2f} "
              f"| {c['generated'] / run.seconds:,.1f} | {c['padding'] / c['prompt_positions']:.1%} | {diff} |")


def print_reading(runs: dict[str, Run], set_names: list[str]) -> None:
    base, sort, hf = runs["tlkit"], runs["sorted"], runs["hf"]

    def named(keys: list[tuple[int, int]]) -> str:
        return ", ".join(f"{set_names[s]} #{i}" for s, i in keys[:5]) + (", ..." if len(keys) > 5 else "")

    bad, hf_bad = differing(sort, base), differing(hf, base)
    check = ("identical to the eval path's for every prompt" if not bad else
             f"DIFFERENT from the eval path's for {len(bad)} prompt(s): {named(bad)}")
    print(f"\nReading: sorted batches take {sort.seconds / base.seconds:.2f}x the eval path's time "
          f"({base.seconds / sort.seconds:.2f}x its speed); their answers are {check}. One prompt at a time "
          f"takes {hf.seconds / base.seconds:.2f}x the eval path's time; {len(hf_bad)} answer(s) differ from it"
          f"{f': {named(hf_bad)}' if hf_bad else ''}.")
    print("Generated tokens: each answer's tokens up to and including its first stop token; padded prompt tokens: "
          "left-padding positions / all prompt positions fed; wall time: tokenising, collating, generating and "
          "decoding every prompt, after an untimed warm-up.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(TINY.relative_to(ROOT)),
                        help="model source: a folder, a .gguf or a bundled short name (the real target: "
                             "smollm2-135m-instruct; default: the tiny Llama, fresh weights, for a fast check)")
    parser.add_argument("--max-new-tokens", type=int, default=64, help="longest answer (sft.yaml's 64)")
    parser.add_argument("--batch-size", type=int, default=16, help="prompts per batch (sft.yaml's eval_batch_size)")
    parser.add_argument("--limit", type=int, default=None,
                        help="prompts in all (default: every validation prompt), shared among the eval sets")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's default)")
    parser.add_argument("--dtype", choices=["float32", "bfloat16"], default=None,
                        help="weight dtype (default: bfloat16, as sft.yaml; float32 for the tiny Llama)")
    args = parser.parse_args()
    if args.limit is not None and args.limit < 1:
        parser.error("--limit must be at least 1")
    if not Path(args.model).exists() and (ROOT / args.model).exists():
        args.model = str(ROOT / args.model)
    tiny = Path(args.model).resolve() == TINY.resolve()
    args.dtype = args.dtype or ("float32" if tiny else "bfloat16")
    quiet()
    import torch
    import transformers

    if args.threads is not None:
        set_threads(args.threads)
    runs, stops, info = measure(args)
    sets = ", ".join(f"{name} ({n})" for name, n in info["sets"])
    print(f"Answer generation for evaluation, {today()}, {MACHINE}.")
    print(f"torch {torch.__version__}, transformers {transformers.__version__}; {torch.get_num_threads()} torch "
          f"thread(s).")
    print(f"Model {args.model} ({info['parameters'] / 1e6:.1f}M parameters{', fresh weights' if tiny else ''}), "
          f"{args.dtype}; greedy, at most {args.max_new_tokens} new tokens, stop tokens {info['stop_tokens']}; "
          f"batch size {args.batch_size}.")
    print(f"Prompts: experiments/sft.yaml's validation sets, paper format: {sets}. Rows run one after another, "
          f"in table order.")
    print_table(runs, stops)
    print_reading(runs, [name for name, _ in info["sets"]])


if __name__ == "__main__":
    main()
