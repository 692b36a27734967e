"""Peak memory of WeightedSFT and ErrorAwarePPO (separate critic, shared critic, LoRA) on one model.

    python benchmarks/peak_memory.py [--hidden 512 --layers 8 --steps 2]

Each configuration runs `tlkit fit` for a few training batches in its own process, on the shipped
data, with a Llama of the given size built from a config (the embedded default's tokenizer), and
reports that process's peak resident memory (CPU) or peak allocated GPU memory when one is used.
Prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from transformers import AutoConfig

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import model_folder  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
LORA = "{r: 8, lora_alpha: 16, target_modules: [q_proj, k_proj, v_proj, o_proj]}"

RUNS = {
    "WeightedSFT": ["--config", "experiments/smoke.yaml"],
    "WeightedSFT + LoRA": ["--config", "experiments/smoke.yaml", f"--model.init_args.lora={LORA}"],
    "ErrorAwarePPO, separate critic": ["--config", "experiments/smoke_ppo.yaml", "--model.init_args.critic=separate"],
    "ErrorAwarePPO, shared critic": ["--config", "experiments/smoke_ppo.yaml", "--model.init_args.critic=shared"],
    "ErrorAwarePPO + LoRA, shared critic": ["--config", "experiments/smoke_ppo.yaml", "--model.init_args.critic=shared",
                                           f"--model.init_args.lora={LORA}"],
    "ErrorAwarePPO GRPO + LoRA (no critic)": ["--config", "experiments/smoke_ppo.yaml",
                                             "--model.init_args.advantage=grpo", f"--model.init_args.lora={LORA}",
                                             "--model.init_args.group_size=4"],
}

MEASURE = """
import resource, subprocess, sys, json
done = subprocess.run(sys.argv[1:], capture_output=True, text=True)
if done.returncode:
    sys.stderr.write(done.stderr[-3000:]); sys.exit(done.returncode)
print(json.dumps({"peak_rss_mib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--steps", type=int, default=2, help="training batches per configuration")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        model = model_folder(args.hidden, args.layers, Path(tmp) / "model")
        params = None
        rows = []
        for name, config in RUNS.items():
            command = [sys.executable, "-m", "tlkit.cli", "fit", *config, f"--model.init_args.model={model}",
                       f"--trainer.limit_train_batches={args.steps}", "--trainer.max_steps=-1",
                       "--trainer.max_epochs=1", "--trainer.limit_val_batches=0", "--model.init_args.export=false",
                       "--data.batch_size=4", "--model.init_args.max_new_tokens=32",
                       f"--trainer.logger.init_args.save_dir={tmp}/runs"]
            started = time.perf_counter()
            done = subprocess.run([sys.executable, "-c", MEASURE, *command], cwd=ROOT, capture_output=True, text=True)
            seconds = time.perf_counter() - started
            if done.returncode:
                print(f"{name}: failed\n{done.stderr}", file=sys.stderr)
                continue
            peak = json.loads(done.stdout.strip().splitlines()[-1])["peak_rss_mib"]
            rows.append((name, peak, seconds))
        if params is None:
            from transformers import AutoModelForCausalLM

            params = sum(p.numel()
                         for p in AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(model)).parameters())
    base = rows[0][1] if rows else 1
    print(f"Llama {args.layers} layers x {args.hidden} hidden ({params / 1e6:.1f}M parameters), "
          f"{args.steps} training batches of 4, CPU, peak resident memory of the whole process\n")
    print("| configuration | peak RSS (MiB) | vs WeightedSFT | wall (s) |")
    print("|---|---:|---:|---:|")
    for name, peak, seconds in rows:
        print(f"| {name} | {peak:,.0f} | {peak / base:.2f}x | {seconds:.0f} |")


if __name__ == "__main__":
    main()
