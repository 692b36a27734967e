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
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "experiments/models/tiny-llama"
DATA_ROOT = Path("/work/shared/data")
DATASETS = {  # name: (path under the data root, tlkit reader)
    "bfcl_simple": ("bfcl_v3/BFCL_v3_simple.json", "bfcl"),
    "toolalpaca_golden": ("toolalpaca_golden/golden-eval_mix.json", "toolalpaca_golden"),
    "glaive": ("glaive_toolcall/glaive_toolcall_en_demo.json", "glaive"),
}
MARK = "@@bench "
MACHINE = "shared 2-core CPU, no GPU (other jobs may run beside it: numbers are indicative)"


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """The options every SFT benchmark shares: model size, batch size, threads, data location."""
    parser.add_argument("--hidden", type=int, default=None, help="hidden size (default: the tiny Llama's 256)")
    parser.add_argument("--layers", type=int, default=None, help="layers (default: the tiny Llama's 4)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads per process (1: on a shared 2-core machine two OpenMP threads stall "
                             "whenever another job takes a core)")
    parser.add_argument("--data-root", default=str(DATA_ROOT))


def model_folder(hidden: int | None, layers: int | None, out: Path) -> Path:
    """The tiny Llama's folder, or a copy of it with another width / depth (fresh weights either way)."""
    if hidden is None and layers is None:
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
    out.mkdir(parents=True, exist_ok=True)
    config.save_pretrained(out)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(TINY / name, out / name)
    return out


def describe_model(folder: Path) -> str:
    from transformers import AutoConfig

    c = AutoConfig.from_pretrained(folder)
    params = c.vocab_size * c.hidden_size + c.num_hidden_layers * (
        4 * c.hidden_size * c.hidden_size + 3 * c.hidden_size * c.intermediate_size + 2 * c.hidden_size)
    return f"Llama {c.num_hidden_layers} layers x {c.hidden_size} hidden, vocab {c.vocab_size} (~{params / 1e6:.1f}M parameters, tied embeddings)"


def data_path(root: str | Path, name: str) -> tuple[str, str]:
    relative, reader = DATASETS[name]
    return str(Path(root) / relative), reader


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
    """Worker side of the lock step: `wait()` for the parent's next block, `step_done()` after each step."""

    def __init__(self) -> None:
        self.left = 0
        self.stopped = False

    def ready(self, **info: Any) -> None:
        send({"ready": True, "rss_mib": rss_mib(), "peak_rss_mib": peak_rss_mib(), **info})
        self.wait()

    def wait(self) -> None:
        command = json.loads(sys.stdin.readline() or '{"steps": 0}')
        self.left = command["steps"]
        self.stopped = self.left == 0
        self.stats = {"seconds": 0.0, "steps": 0, "real": 0, "positions": 0, "supervised": 0, "step_seconds": []}
        self.digest = ""
        self.last = time.perf_counter()

    def step_done(self, real: int, positions: int, supervised: int, input_ids: Any = None) -> None:
        """Count one finished step (its time runs from the end of the previous step)."""
        seconds = time.perf_counter() - self.last
        s = self.stats
        s["seconds"] += seconds
        s["step_seconds"].append(seconds)
        s["steps"] += 1
        s["real"] += int(real)
        s["positions"] += int(positions)
        s["supervised"] += int(supervised)
        if input_ids is not None:  # an order-sensitive fingerprint of the batches, to check they are identical
            import hashlib

            self.digest = hashlib.sha1(self.digest.encode() + input_ids.numpy().tobytes()).hexdigest()
        self.left -= 1
        if self.left == 0:
            send({"block": {**s, "digest": self.digest}})
            self.wait()
        else:
            self.last = time.perf_counter()

    def finish(self, **info: Any) -> None:
        send({"done": True, "peak_rss_mib": peak_rss_mib(), **info})


def cycle(loader: Any) -> Iterator[Any]:
    while True:
        yield from loader


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


def run_alternating(workers: dict[str, Worker], warmup: int, rounds: int, steps: int) -> dict[str, list[dict[str, Any]]]:
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


def totals(blocks: list[dict[str, Any]]) -> dict[str, float]:
    out = {key: sum(b[key] for b in blocks) for key in ("seconds", "steps", "real", "positions", "supervised")}
    out["step_seconds"] = [s for b in blocks for s in b["step_seconds"]]
    out["round_tok_s"] = [b["real"] / b["seconds"] for b in blocks]
    return out


def today() -> str:
    return time.strftime("%Y-%m-%d")
