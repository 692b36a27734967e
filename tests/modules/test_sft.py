"""WeightedSFT end to end: one-pass multi-turn training, a short fit with logs, DDP on two CPU processes."""

import json
import subprocess
import sys
from pathlib import Path

import torch

from tlkit.cli import main
from tlkit.data.features import encode
from tlkit.data.readers import read_trajectories
from tlkit.mae import ErrorDetector, mark_untrained
from tlkit.modules.sft import WeightedSFT
from tlkit.pkt import KeyTokenLoss

ROOT = Path(__file__).resolve().parents[2]
MODEL = str(ROOT / "experiments/models/tiny-llama")


def test_one_pass_gives_the_per_turn_expansion_losses(tokenizer, public_data):
    """Training every turn in one pass equals the reference's one sample per turn, turn by turn."""
    torch.manual_seed(0)
    module = WeightedSFT(MODEL, tokenizer).eval()
    records = read_trajectories(str(public_data / "toolalpaca_golden/golden-eval_real.json"), "toolalpaca_golden")
    record = next(r for r in records if sum(m.role == "assistant" for m in r.messages) >= 3)
    f = encode(mark_untrained(record, ErrorDetector()), tokenizer, "paper")
    assert f["n_turns"] >= 3
    ids, turns = torch.tensor([f["input_ids"]]), torch.tensor([f["turn_ids"]])
    keys, ends = torch.tensor([f["key_mask"]]), torch.tensor([f["argument_end_mask"]])
    pkt = KeyTokenLoss()

    def turn_losses(ids, turns, keys, ends):
        with torch.no_grad():
            logits = module(ids, torch.ones_like(ids))[:, :-1]
        target_turns = turns[:, 1:]
        weights = pkt.weights(target_turns, keys[:, 1:], ends[:, 1:])
        ce = torch.nn.functional.cross_entropy(logits[0], ids[0, 1:], reduction="none")
        return {int(t): float((weights[0] * ce)[target_turns[0] == t].sum() / weights[0][target_turns[0] == t].sum())
                for t in target_turns.unique() if t >= 0}

    one_pass = turn_losses(ids, turns, keys, ends)
    assert len(one_pass) == f["n_turns"]
    for turn, loss in one_pass.items():
        end = int((turns[0] == turn).nonzero().max()) + 1
        only = torch.where(turns[:, :end] == turn, turns[:, :end], torch.full_like(turns[:, :end], -1))
        expanded = turn_losses(ids[:, :end], only, keys[:, :end], ends[:, :end])
        assert abs(expanded[turn] - loss) < 1e-4, (turn, expanded[turn], loss)


def test_logits_of_supervised_positions_only_give_the_full_loss_and_gradients(tokenizer, public_data):
    """WeightedSFT projects only supervised positions onto the vocabulary; loss and gradients are unchanged."""
    from tlkit.data.datamodule import ToolCallDataModule
    from tlkit.pkt import weighted_cross_entropy

    torch.manual_seed(0)
    module = WeightedSFT(MODEL, tokenizer)
    records = list(read_trajectories(str(public_data / "glaive_toolcall/glaive_toolcall_en_demo.json"), "glaive"))[:4]
    batch = ToolCallDataModule(tokenizer=MODEL).collate([encode(r, tokenizer, "paper") for r in records])
    assert (batch["turn_ids"] < 0).float().mean() > 0.3  # prompts and padding: positions the head skips

    def full_loss():  # every position through the LM head, then the same loss
        logits = module(batch["input_ids"], batch["attention_mask"])[:, :-1]
        turn_ids = batch["turn_ids"][:, 1:]
        weights = module.loss.weights(turn_ids, batch["key_mask"][:, 1:], batch["argument_end_mask"][:, 1:])
        return weighted_cross_entropy(logits[turn_ids >= 0], batch["input_ids"][:, 1:], weights, turn_ids)[0]

    losses, grads = [], []
    for loss_fn in (lambda: module.losses(batch)["loss"], full_loss):
        module.zero_grad()
        loss = loss_fn()
        loss.backward()
        losses.append(loss.item())
        grads.append(torch.cat([p.grad.flatten() for p in module.parameters()]))
    assert abs(losses[0] - losses[1]) < 1e-5
    assert torch.allclose(grads[0], grads[1], atol=1e-6)


def test_key_accuracy_is_top1_at_key_tokens(tokenizer, public_data):
    """`key_correct` marks the key tokens the model predicts top-1, in the batch's row-major order."""
    from tlkit.data.datamodule import ToolCallDataModule

    torch.manual_seed(0)
    module = WeightedSFT(MODEL, tokenizer).eval()
    records = list(read_trajectories(str(public_data / "glaive_toolcall/glaive_toolcall_en_demo.json"), "glaive"))[:4]
    batch = ToolCallDataModule(tokenizer=MODEL).collate([encode(r, tokenizer, "paper") for r in records])
    key = batch["key_mask"][:, 1:] & (batch["turn_ids"][:, 1:] >= 0)
    positions = key.nonzero().tolist()
    assert len(positions) >= 6
    # Make every other key token the model's own top-1 prediction (left to right: a token changes only later logits).
    with torch.no_grad():
        for b, t in positions[::2]:
            logits = module(batch["input_ids"], batch["attention_mask"])
            batch["input_ids"][b, t + 1] = logits[b, t].argmax()
        expected = (module(batch["input_ids"], batch["attention_mask"])[:, :-1].argmax(-1)[key]
                    == batch["input_ids"][:, 1:][key])
        got = module.losses(batch)["key_correct"]
    assert got.tolist() == expected.tolist()
    assert got[::2].all() and got.float().mean() < 1


def fit_args(tmp_path: Path) -> list[str]:
    return [
        "fit", "--config", str(ROOT / "experiments/smoke.yaml"),
        f"--model.init_args.model={MODEL}",
        "--trainer.max_steps=4", "--trainer.val_check_interval=2", "--trainer.limit_val_batches=2",
        "--trainer.log_every_n_steps=1", "--data.batch_size=2", "--data.max_length=256",
        "--model.init_args.max_new_tokens=16",
        f"--trainer.logger.init_args.save_dir={tmp_path / 'runs'}", f"--data.cache_dir={tmp_path / 'cache'}",
    ]


def scalars(run_dir: Path) -> dict[str, list[float]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir)).Reload()
    return {tag: [e.value for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def test_fit_writes_tensorboard_checkpoint_and_export(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    main(fit_args(tmp_path))
    run = tmp_path / "runs/smoke/version_0"
    logged = scalars(run)
    for tag in ("train/loss", "train/ce", "train/key_weight", "val/loss", "data/mae_masked_turns/total", "lr-AdamW",
                "val/BFCL_v3_simple/ts", "val/BFCL_v3_simple/pi", "val/BFCL_v3_simple/cf",
                "val/BFCL_v3_simple/category/format_error", "val/generation_seconds"):
        assert tag in logged, sorted(logged)
    assert len(logged["train/loss"]) == 4
    assert logged["data/mae_masked_turns/total"][0] > 0
    assert len(logged["val/BFCL_v3_simple/ts"]) == 2  # generation-based validation ran at steps 2 and 4
    predictions = [json.loads(line)
                   for line in (run / "predictions/val-step4-BFCL_v3_simple.jsonl").read_text().splitlines()]
    assert len(predictions) == 4 and {"id", "prediction", "gold", "category", "ts", "pi", "cf"} <= predictions[0].keys()
    assert list((run / "checkpoints").glob("*.ckpt"))
    assert (run / "hf_model/config.json").exists() and (run / "hf_model/tokenizer.json").exists()

    checkpoint = next((run / "checkpoints").glob("*.ckpt"))
    main(["test", "--config", str(ROOT / "experiments/smoke.yaml"), f"--ckpt_path={checkpoint}",
          *fit_args(tmp_path)[3:], "--trainer.limit_test_batches=1"])
    console = capsys.readouterr()
    table = console.out
    assert "BFCL_v3_simple" in table and "BFCL_v3_multiple" in table and "TS" in table
    # one table, tlkit's: not Lightning's, one per dataloader; and no noise a user cannot act on
    assert table.count("BFCL_v3_multiple") == 1 and "Test metric" not in table
    for noise in ("The dirpath has changed", "Tip", "LeafSpec", "Generating train split", "randomly initialised"):
        assert noise not in console.out + console.err, noise
    # a second run gets its own folder: nothing of the first is overwritten
    main(fit_args(tmp_path))
    assert (tmp_path / "runs/smoke/version_2/checkpoints").exists()  # version_1 was the test run
    assert len(scalars(run)["train/loss"]) == 4


def test_fit_with_ddp_on_two_cpu_processes(tmp_path):
    args = [*fit_args(tmp_path), "--trainer.strategy=ddp", "--trainer.devices=2", "--trainer.max_steps=2"]
    result = subprocess.run([sys.executable, "-m", "tlkit.cli", *args], cwd=ROOT, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "distributed_backend=gloo" in result.stderr + result.stdout
    logged = scalars(tmp_path / "runs/smoke/version_0")
    assert len(logged["train/loss"]) == 2 and "val/loss" in logged


def test_predict_writes_every_answer(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    main(["predict", "--config", str(ROOT / "experiments/smoke.yaml"), *fit_args(tmp_path)[3:],
          "--trainer.limit_predict_batches=1"])
    written = sorted((tmp_path / "runs/smoke/version_0/predictions").glob("predict-*.jsonl"))
    assert [p.name.split("-", 2)[2] for p in written] == ["BFCL_v3_multiple.jsonl", "BFCL_v3_simple.jsonl",
                                                          "test_in_domain_subset.jsonl"]
    assert all(len(p.read_text().splitlines()) == 2 for p in written)  # one batch of 2 per set
    assert "test_in_domain_subset" in capsys.readouterr().out
