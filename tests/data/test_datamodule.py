"""ToolCallDataModule: per-file eval sets (clean and noisy), prompts for PPO, length grouping, MAE audit."""

from pathlib import Path

import pytest

from tlkit.data.datamodule import DataFile, ToolCallDataModule
from tlkit.records import RecordError

MODEL = str(Path(__file__).resolve().parents[2] / "experiments/models/tiny-llama")
SHIPPED = Path(__file__).resolve().parents[2] / "experiments/data"


def test_eval_sets_clean_and_noisy(public_data, tmp_path):
    simple = str(public_data / "bfcl_v3/BFCL_v3_simple.json")
    dm = ToolCallDataModule(MODEL,
                            test=[DataFile(simple, "bfcl"), DataFile(simple, "bfcl", noise="medium", noise_seed=1)],
                            cache_dir=str(tmp_path))
    sets = dm.eval_examples("test")
    assert list(sets) == ["BFCL_v3_simple", "BFCL_v3_simple+medium"]
    clean, noisy = sets["BFCL_v3_simple"], sets["BFCL_v3_simple+medium"]
    assert len(clean) == len(noisy) == 400
    assert clean[0].gold[0].name == "calculate_triangle_area" and clean[0].prompt.endswith("Assistant:")
    assert noisy[0].gold[0].name != clean[0].gold[0].name  # the gold tool is renamed...
    assert noisy[0].gold[0].name in noisy[0].prompt  # ...consistently with the offered tools
    # every gold name changes, except simple_363's, whose gold names a tool that is not on offer
    unchanged = [a.id for a, b in zip(clean, noisy) if a.gold[0].name == b.gold[0].name]
    assert unchanged == ["simple_363"]


def test_train_prompts_are_the_call_turns_mae_keeps(public_data, tmp_path):
    golden = DataFile(str(public_data / "toolalpaca_golden/golden-eval_real.json"), "toolalpaca_golden")
    # max_length above every prompt (one is over the default 1024): prompts over it are left out of training
    options = dict(cache_dir=str(tmp_path), train_target="prompts", max_length=4096)
    with_mae = ToolCallDataModule(MODEL, train=[golden], **options)
    without = ToolCallDataModule(MODEL, train=[golden], **options, mae=False)
    prompts, all_calls = with_mae.train_prompts(), without.train_prompts()
    masked = sum(with_mae.masked_turn_counts().values())
    assert masked == 21 and len(all_calls) == 136 and len(prompts) == 136 - masked
    batch = next(iter(with_mae.train_dataloader()))
    assert batch.input_ids.shape[0] == 8 and (batch.attention_mask[:, -1] == 1).all()  # left-padded prompts


def test_a_turn_the_record_marks_untrained_gets_no_loss_and_is_not_counted_as_mae(tmp_path):
    import json

    from tlkit.data.readers import read_trajectories

    records = [r.to_dict() for r in read_trajectories(str(SHIPPED / "seal_tools/test_in_domain_subset.jsonl"),
                                                       "seal_tools")][:4]
    records[0]["messages"][-1]["untrained"] = "judged wrong by hand"
    path = tmp_path / "marked.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    dm = ToolCallDataModule(MODEL, train=[DataFile(str(path))], mae=True, cache_dir=str(tmp_path / "cache"))
    dm.setup("fit")
    features = dm.features["train"]
    assert len(features) == 3 and records[0]["id"] not in features["id"]  # its one call turn untrained: no loss
    assert sum(dm.prepare_split("train")[1]["marked_in_data"]) == 0  # the rows left all train
    assert dm.masked_turn_counts() == {}  # not MAE's doing
    assert records[0]["id"] not in {e.id for e in dm.train_prompts()}  # and no PPO prompt


def test_bad_record_surfaces_with_its_location(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"id": "a", "messages": [{"role": "robot", "content": "hi"}]}\n')
    dm = ToolCallDataModule(MODEL, train=[DataFile(str(path), "tlkit")], cache_dir=str(tmp_path / "cache"))
    with pytest.raises(RecordError, match=r"bad.jsonl: record a.*messages\[0\]\.role"):
        dm.setup("fit")


def test_unknown_format_lists_the_known_ones(tmp_path):
    dm = ToolCallDataModule(MODEL, train=[DataFile(str(tmp_path), "csv")])
    with pytest.raises(ValueError, match="known formats: tlkit, bfcl"):
        dm.setup("fit")


def test_over_long_prompts_and_trajectories_are_counted_per_file_and_keep_their_tools(tmp_path):
    """At 256 tokens: API-Bank dialogues lose old exchanges or are cut; BFCL prompts too long are scored whole."""
    api_bank, simple = str(SHIPPED / "api_bank"), str(SHIPPED / "bfcl_v3/BFCL_v3_simple.json")
    dm = ToolCallDataModule(MODEL, train=[DataFile(api_bank, "api_bank")], test=[DataFile(simple, "bfcl")],
                            max_length=256, cache_dir=str(tmp_path), train_target="prompts")
    prompts = dm.train_prompts()
    assert dm.over_length[("train", "prompts")] == {(api_bank, "shortened"): 79, (api_bank, "overlong_dropped"): 210}
    assert len(prompts) == 179
    fed = dm.prompt_collate("train", prompts)
    assert fed.input_ids.shape[1] <= 256 and all(text.startswith("System: ") for text in fed_texts(dm, fed))

    assert dm.over_length[("train", "trajectories")] == {(api_bank, "cut"): 114, (api_bank, "unfit"): 74}
    assert len(dm.features["train"]) == 213 - 74  # no trained token within the limit: nothing to learn from

    examples = dm.eval_examples("test")["BFCL_v3_simple"]
    long = [e for e in examples if len(dm.tokenizer(e.prompt)["input_ids"]) > 256]
    assert len(examples) == 100 and long and dm.over_length[("test", "prompts")] == {
        (simple, "overlong_kept"): len(long)}
    fed = dm.prompt_collate("BFCL_v3_simple", long)
    assert fed.attention_mask.sum(1).min() > 256  # scored whole: the tools are never cut off
    assert all(text.startswith("System: ") for text in fed_texts(dm, fed))


def fed_texts(dm: ToolCallDataModule, batch) -> list[str]:
    """The prompts a batch feeds the model, as text (without the left padding)."""
    return [dm.tokenizer.decode(row[mask.bool()]) for row, mask in zip(batch.input_ids, batch.attention_mask)]


def test_evaluation_prompts_come_in_their_own_batch_size(tmp_path):
    simple = str(SHIPPED / "bfcl_v3/BFCL_v3_simple.json")
    dm = ToolCallDataModule(MODEL, val=[DataFile(simple, "bfcl")], batch_size=4, eval_batch_size=16,
                            cache_dir=str(tmp_path))
    dm.setup("validate")
    loss, prompts = dm.val_dataloader()
    assert loss.batch_size == 4 and prompts.batch_size == 16
    # the loss batches, longest first: every record once, similar lengths together (little padding)
    widths = [batch["input_ids"].shape[1] for batch in loss]
    assert widths == sorted(widths, reverse=True) and sum(len(b["input_ids"]) for b in loss) == 100
    assert [len(batch.examples) for batch in prompts] == [16] * 6 + [4]  # every one of the 100 records, once
