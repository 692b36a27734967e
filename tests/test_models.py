"""Models: the same loading path for a config-only folder and a pretrained one; LoRA; export."""

from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM

from tlkit.models import export_pretrained, load_causal_lm
from tlkit.modules.sft import WeightedSFT

MODEL = str(Path(__file__).resolve().parents[1] / "experiments/models/tiny-llama")


def test_export_then_load_as_pretrained(tmp_path, tokenizer):
    torch.manual_seed(0)
    fresh = load_causal_lm(MODEL)
    out = export_pretrained(fresh, tokenizer, str(tmp_path / "hf"))
    again = load_causal_lm(str(out))  # weights now exist: loaded, not re-initialised
    ids = torch.tensor([tokenizer("get_weather(city='Paris')")["input_ids"]])
    assert torch.equal(fresh(ids).logits, again(ids).logits)
    with pytest.raises(FileExistsError):
        export_pretrained(fresh, tokenizer, str(out))  # never overwrite an earlier export


def test_lora_trains_only_the_adapter_and_exports_merged(tmp_path, tokenizer):
    torch.manual_seed(0)
    module = WeightedSFT(MODEL, tokenizer, lora={"r": 4, "lora_alpha": 8, "target_modules": ["q_proj", "v_proj"]})
    trainable = {n for n, p in module.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)
    for name, p in module.named_parameters():  # make the adapter non-trivial
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.05)
    ids = torch.tensor([tokenizer("finish(answer='done')")["input_ids"]])
    with torch.no_grad():
        expected = module(ids, torch.ones_like(ids))
    out = export_pretrained(module.policy, tokenizer, str(tmp_path / "merged"), merge_lora=True)
    merged = AutoModelForCausalLM.from_pretrained(out)
    assert not any("lora" in n for n, _ in merged.named_parameters())
    with torch.no_grad():
        assert torch.allclose(merged(ids).logits, expected, atol=1e-5)


def test_tokenizer_and_model_that_do_not_belong_together(tokenizer, tmp_path):
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(MODEL)
    config.vocab_size = 100
    config.save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="do not belong together"):
        WeightedSFT(str(tmp_path), tokenizer)
