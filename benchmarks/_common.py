"""Shared pieces of the benchmark scripts: data sets, model folders, memory, and lock-step workers.

A *worker* is one system under test in its own process (so its peak memory is its own). The
parent lets one worker run a block of steps at a time, in turn (A B C A B C ...), so drift of a
shared machine hits every system alike; a worker times each step from the end of the previous
one (data loading included) and pauses, untimed, between blocks.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "experiments/models/tiny-llama"
# The full public data, in the repository beside the tests (the same files on every clone).
DATA_ROOT = ROOT / "tests/fixtures/public_data"
DATASETS = {  # name: (tlkit reader, its file under the data root: the full one, else the shipped subset)
    "bfcl_simple": ("bfcl", ["bfcl_v3/BFCL_v3_simple.json"]),
    "toolalpaca_golden": ("toolalpaca_golden", ["toolalpaca_golden/golden-eval_mix.json",
                                                "toolalpaca_golden/golden-eval_real.json"]),
    "glaive": ("glaive", ["glaive_toolcall/glaive_toolcall_en_demo.json",
                          "glaive_toolcall/glaive_toolcall_en_subset.json"]),
}
MARK = "@@bench "
MACHINE = "shared 2-core CPU, no GPU (other jobs may run beside it: numbers are indicative)"


def add_lockstep_arguments(parser: argparse.ArgumentParser, names: list[str], warmup: int, steps: int) -> None:
    """The lock-step options (--warmup, --rounds, --steps) and the hidden ones a worker process is started with."""
    parser.add_argument("--warmup", type=lambda text: max(1, int(text)), default=warmup,
                        help="untimed steps per system before the rounds (at least 1: the first pays for start-up)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of alternating blocks")
    parser.add_argument("--steps", type=int, default=steps, help="steps per block (timed steps: rounds x steps)")
    parser.add_argument("--worker", choices=names, help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--total-steps", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--cache-dir", help=argparse.SUPPRESS)


def add_common_arguments(parser: argparse.ArgumentParser, data: bool = True) -> None:
    """The options the benchmarks share: model size, threads; with `data`, the SFT data's batch size and location."""
    parser.add_argument("--hidden", type=int, default=None, help="hidden size (default: the tiny Llama's 256)")
    parser.add_argument("--layers", type=int, default=None, help="layers (default: the tiny Llama's 4)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads per process (1: on a shared 2-core machine two OpenMP threads stall "
                             "whenever another job takes a core)")
    if data:
        parser.add_argument("--batch-size", type=int, default=8)
        parser.add_argument("--data-root", default=str(DATA_ROOT),
                            help="data folder (default: tests/fixtures/public_data, the full public data)")


def model_folder(hidden: int | None, layers: int | None, out: Path, intermediate: int | None = None,
                 heads: int | None = None, kv_heads: int | None = None) -> Path:
    """The tiny Llama's folder, or a copy of it with another shape (fresh weights either way).

    `hidden` also sets the MLP width (8/3 x hidden, a multiple of 64) and 64-wide heads, unless
    `intermediate` / `heads` say otherwise; `kv_heads` (grouped-query attention) defaults to `heads`.
    """
    if hidden is None and layers is None and intermediate is None and heads is None and kv_heads is None:
        return TINY
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(TINY)
    if hidden is not None:
        config.hidden_size = hidden
        config.intermediate_size = int(hidden * 8 / 3) // 64 * 64
        config.num_attention_heads = config.num_key_value_heads = max(1, hidden // 64)
        config.head_dim = hidden // config.num_attention_heads
    if layers is not None:
        config.num_hidden_layers = layers
    if intermediate is not None:
        config.intermediate_size = intermediate
    if heads is not None:
        config.num_attention_heads = config.num_key_value_heads = heads
        config.head_dim = config.hidden_size // heads
    if kv_heads is not None:
        config.num_key_value_heads = kv_heads
    out.mkdir(parents=True, exist_ok=True)
    config.save_pretrained(out)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(TINY / name, out / name)
    return out


def source_folder(source: str) -> Path:
    """The plain Hugging Face folder a tlkit model source names (a folder, a .gguf file or a bundled short name,
    `tlkit.models.resolve_model_source`: a GGUF is converted once, into tlkit's cache), as an absolute path. A
    relative path that does not exist from here is tried from the repository's root."""
    from tlkit.models import resolve_model_source

    if not Path(source).expanduser().exists() and (ROOT / source).exists():
        source = str(ROOT / source)
    return Path(resolve_model_source(source)).resolve()


@contextmanager
def model_and_cache(hidden: int | None, layers: int | None, source: str | None = None,
                    **shape: int | None) -> Iterator[tuple[Path, str]]:
    """A temporary folder with the model folder (`model_folder`, `shape` its other keywords) and a data cache in it,
    removed afterwards. With `source`, the model is that source's folder (`source_folder`) instead, left as it is."""
    with tempfile.TemporaryDirectory(prefix="tlkit-bench-") as tmp:
        model = source_folder(source) if source else model_folder(hidden, layers, Path(tmp) / "model", **shape)
        yield model, str(Path(tmp) / "cache")


def parameter_counts(folder: Path, lora: dict[str, Any] | None = None) -> tuple[int, int]:
    """(all, trainable) parameters of the model `folder` describes, with a peft LoRA adapter of `lora`'s
    `LoraConfig` keywords if given (then only the adapter trains), counted on the meta device: no weights are
    read or allocated. Tied weights count once, as `model.parameters()` yields them."""
    import warnings

    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    with torch.device("meta"), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # library deprecation notes, on the parent's output
        model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(folder, local_files_only=True))
        if lora:
            from peft import LoraConfig, get_peft_model

            model = get_peft_model(model, LoraConfig(task_type="CAUSAL_LM", **lora))
    if not lora:
        model.requires_grad_(True)
    params = list(model.parameters())
    return sum(p.numel() for p in params), sum(p.numel() for p in params if p.requires_grad)


def layer_matmul_params(c: Any) -> int:
    """Weights of one Llama layer's matrix products: q, k, v, o projections and the gated MLP."""
    head_dim = getattr(c, "head_dim", None) or c.hidden_size // c.num_attention_heads
    attention = 2 * c.hidden_size * head_dim * (c.num_attention_heads + c.num_key_value_heads)
    return attention + 3 * c.hidden_size * c.intermediate_size


def describe_model(folder: Path, shape: bool = False) -> str:
    """One line on the model; with `shape`, also its MLP width and attention heads."""
    from transformers import AutoConfig

    c = AutoConfig.from_pretrained(folder)
    params = c.vocab_size * c.hidden_size + c.num_hidden_layers * (layer_matmul_params(c) + 2 * c.hidden_size)
    detail = (f", MLP {c.intermediate_size}, {c.num_attention_heads} heads ({c.num_key_value_heads} key / value)"
              if shape else "")
    return (f"Llama {c.num_hidden_layers} layers x {c.hidden_size} hidden{detail}, vocab {c.vocab_size} "
            f"(~{params / 1e6:.1f}M parameters, tied embeddings)")


def model_flops(folder: Path) -> tuple[int, int]:
    """The two terms of a training step's model FLOPs: (N, A), a step costing 6 N T + A (sum of T_i^2) FLOPs.

    N: the weights every token goes through in matrix products: the layers' projections and MLPs and
    the LM head (vocab x hidden, counted once although tied to the embedding; the embedding lookup
    itself does no arithmetic). Norms are left out. 6 N per token: 2 forward, 4 backward.
    A = 12 x layers x heads x head_dim: attention scores and their weighted sum, Q K^T and P V, cost
    2 x 2 x T x heads x head_dim per token of a T-token sequence forward, x 3 with backward, with no
    discount for the causal mask (the PaLM paper's count). T, T_i: each sequence's real (non-pad) length.
    """
    from transformers import AutoConfig

    c = AutoConfig.from_pretrained(folder)
    head_dim = getattr(c, "head_dim", None) or c.hidden_size // c.num_attention_heads
    return (c.num_hidden_layers * layer_matmul_params(c) + c.vocab_size * c.hidden_size,
            12 * c.num_hidden_layers * c.num_attention_heads * head_dim)


def data_path(root: str | Path, name: str) -> tuple[str, str]:
    """The file of data set `name` under `root` (the first of its candidates there) and its reader."""
    reader, candidates = DATASETS[name]
    for relative in candidates:
        if (Path(root) / relative).exists():
            return str(Path(root) / relative), reader
    raise SystemExit(f"{name}: none of {candidates} under {root}; give the data folder with --data-root")


def set_threads(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(threads)
    except RuntimeError:  # already set once in this process
        pass


def rss_mib() -> float:
    """Current resident memory of this process."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far (`ru_maxrss`)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def quiet() -> None:
    """Keep library chatter (warnings, progress bars) out of a worker's output."""
    import logging
    import warnings

    warnings.filterwarnings("ignore")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import datasets
    import transformers

    datasets.disable_progress_bars()
    datasets.logging.set_verbosity_error()
    transformers.logging.set_verbosity_error()
    for name in ("lightning", "lightning.pytorch", "tlkit", "tlkit.models"):
        logging.getLogger(name).setLevel(logging.ERROR)


# ---------------------------------------------------------------------------------------------
# Worker side


def send(message: dict[str, Any]) -> None:
    sys.stdout.write(MARK + json.dumps(message) + "\n")
    sys.stdout.flush()


class Blocks:
    """Worker side of the lock step: `wait()` for the parent's next block, `step_done()` after each step.

    `sync`, if given, is called before each step's clock is read (`torch.cuda.synchronize` on a GPU,
    whose work runs behind the Python code that queued it).
    """

    def __init__(self, sync: Any = None) -> None:
        self.left = 0
        self.stopped = False
        self.sync = sync

    def ready(self, **info: Any) -> None:
        send({"ready": True, "rss_mib": rss_mib(), "peak_rss_mib": peak_rss_mib(), **info})
        self.wait()

    def wait(self) -> None:
        command = json.loads(sys.stdin.readline() or '{"steps": 0}')
        self.left = command["steps"]
        self.stopped = self.left == 0
        self.stats = {"seconds": 0.0, "steps": 0, "real": 0, "positions": 0, "supervised": 0, "squares": 0,
                      "step_seconds": []}
        self.digest = ""
        self.last = time.perf_counter()

    def step_done(self, real: int, positions: int, supervised: int, input_ids: Any = None, squares: int = 0) -> None:
        """Count one finished step (its time runs from the end of the previous step).

        `squares`: the sum of the squared real lengths of the batch's sequences (for attention FLOPs).
        """
        if self.sync is not None:
            self.sync()
        seconds = time.perf_counter() - self.last
        s = self.stats
        s["seconds"] += seconds
        s["step_seconds"].append(seconds)
        s["steps"] += 1
        s["real"] += int(real)
        s["positions"] += int(positions)
        s["supervised"] += int(supervised)
        s["squares"] += int(squares)
        if input_ids is not None:  # an order-sensitive fingerprint of the batches, to check they are identical
            import hashlib

            self.digest = hashlib.sha1(self.digest.encode() + input_ids.cpu().numpy().tobytes()).hexdigest()
        self.left -= 1
        if self.left == 0:
            send({"block": {**s, "digest": self.digest}})
            self.wait()
        else:
            self.last = time.perf_counter()

    def finish(self, **info: Any) -> None:
        send({"done": True, "peak_rss_mib": peak_rss_mib(), **info})


def cycle(loader: Any) -> Iterator[Any]:
    """The loader's batches, epoch after epoch. A sampler with `set_epoch` (tlkit's length grouping) is told
    each epoch's number, as Lightning's Trainer does, so a plain loop gets the Trainer's batches past epoch 1."""
    epoch = 0
    while True:
        set_epoch = getattr(getattr(loader, "sampler", None), "set_epoch", None)
        if callable(set_epoch):
            set_epoch(epoch)
        yield from loader
        epoch += 1


# ---------------------------------------------------------------------------------------------
# Parent side


class Worker:
    """A worker process driven over stdin / stdout; its stderr goes to a log file shown on failure."""

    def __init__(self, name: str, argv: list[str]):
        self.name = name
        self.log = tempfile.NamedTemporaryFile("w+", prefix="tlkit-bench-", suffix=".log", delete=False)
        self.proc = subprocess.Popen(argv, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.log, text=True, bufsize=1)

    def receive(self) -> dict[str, Any]:
        for line in self.proc.stdout:
            if line.startswith(MARK):
                return json.loads(line[len(MARK):])
        self.proc.wait()
        self.log.seek(0)
        raise RuntimeError(f"worker {self.name!r} ended (exit {self.proc.returncode}):\n{self.log.read()[-4000:]}")

    def run(self, steps: int) -> dict[str, Any]:
        self.proc.stdin.write(json.dumps({"steps": steps}) + "\n")
        self.proc.stdin.flush()
        return self.receive()

    def close(self) -> dict[str, Any]:
        final = self.run(0)
        self.proc.wait()
        os.unlink(self.log.name)
        return final


def run_alternating(workers: dict[str, Worker], warmup: int, rounds: int,
                    steps: int) -> dict[str, list[dict[str, Any]]]:
    """Warm every worker up, then `rounds` times let each run a block of `steps`, in turn."""
    for worker in workers.values():
        if warmup:
            worker.run(warmup)
    blocks: dict[str, list[dict[str, Any]]] = {name: [] for name in workers}
    for r in range(rounds):
        order = list(workers) if r % 2 == 0 else list(workers)[::-1]  # A B C, C B A, ...: no fixed neighbour
        for name in order:
            blocks[name].append(workers[name].run(steps)["block"])
    return blocks


def run_workers(script: str, names: list[str], args: argparse.Namespace, options: list[str]) -> tuple[dict, dict, dict]:
    """Start `script` as one worker per name, run the warm-up and the rounds, close the workers.

    A worker gets the hidden options of `add_lockstep_arguments`, `--threads`, and `options`.
    Returns, per name, its ready message, its blocks and its final message.
    """
    common = ["--model", str(args.model), "--threads", str(args.threads), "--cache-dir", args.cache_dir,
              "--total-steps", str(args.warmup + args.rounds * args.steps), *options]
    workers = {name: Worker(name, [sys.executable, script, "--worker", name, *common]) for name in names}
    try:
        ready = {name: w.receive() for name, w in workers.items()}
        blocks = run_alternating(workers, args.warmup, args.rounds, args.steps)
        finals = {name: w.close() for name, w in workers.items()}
    finally:
        for w in workers.values():
            if w.proc.poll() is None:
                w.proc.kill()
    return ready, blocks, finals


def totals(blocks: list[dict[str, Any]]) -> dict[str, float]:
    out = {key: sum(b.get(key, 0) for b in blocks)
           for key in ("seconds", "steps", "real", "positions", "supervised", "squares")}
    out["step_seconds"] = [s for b in blocks for s in b["step_seconds"]]
    out["round_tok_s"] = [b["real"] / b["seconds"] for b in blocks]
    return out


def versions(systems: list[str]) -> tuple[str, list[str]]:
    """The library versions for a table's header, and `systems` less the TRL ones when TRL is not installed."""
    import torch
    import transformers

    try:
        import trl

        trl_version = trl.__version__
    except ImportError:
        trl_version = None
        systems = [s for s in systems if not s.startswith("trl")]
    line = f"torch {torch.__version__}, transformers {transformers.__version__}, trl {trl_version or 'not installed'}."
    return line, systems


def today() -> str:
    return time.strftime("%Y-%m-%d")
