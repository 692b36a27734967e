"""Build the embedded default model folder, offline: a byte-level BPE tokenizer trained on the
shipped training data (rendered as the model will see it) and a small Llama config, no weights.

    python experiments/models/build_tiny_llama.py

`load_causal_lm` builds fresh weights from a folder that has only a config, so this folder is
the same kind of path as a real pretrained checkpoint.
"""

from pathlib import Path
from types import SimpleNamespace

from transformers import LlamaConfig

from tlkit.data.readers import read_trajectories
from tlkit.data.render import render
from tlkit.models import train_tokenizer

HERE = Path(__file__).parent
DATA = HERE.parent / "data"
TRAIN = [
    (DATA / "glaive_toolcall/glaive_toolcall_en_subset.json", "glaive"),
    (DATA / "toolalpaca_golden/golden-eval_real.json", "toolalpaca_golden"),
    (DATA / "seal_tools/dev_subset.jsonl", "seal_tools"),
    (DATA / "api_bank", "api_bank"),
    (DATA / "toolbench_examples", "toolbench"),
]


def texts():
    end_of_turn = SimpleNamespace(eos_token="</s>")
    for path, format in TRAIN:
        for trajectory in read_trajectories(str(path), format):
            yield render(trajectory, "paper", end_of_turn).text
            yield render(trajectory, "json", end_of_turn).text


def main(out: Path = HERE / "tiny-llama", vocab_size: int = 4096) -> None:
    tokenizer = train_tokenizer(texts(), vocab_size)
    tokenizer.save_pretrained(out)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=256,
        intermediate_size=688,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=2048,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    config.save_pretrained(out)
    print(f"wrote {out}: {len(tokenizer)} tokens, {config.num_hidden_layers} layers of {config.hidden_size}")


if __name__ == "__main__":
    main()
