"""The console of a run: one progress bar for the whole run, and the summary that closes a fit."""

from __future__ import annotations

from pathlib import Path

import yaml

from tlkit.callbacks import format_rollouts
from tlkit.cli import main

ROOT = Path(__file__).resolve().parents[1]
MODEL = str(ROOT / "experiments/models/tiny-llama")


def test_the_rollout_line_compares_the_first_quarter_of_rollouts_with_the_last():
    rollouts = [{"reward_mean": r, "category/correct": c, "category/format_error": 1 - c}
                for r, c in [(-2.0, 0.0), (-1.0, 0.25), (0.0, 0.5), (0.5, 0.5), (1.0, 0.75), (2.0, 1.0), (2.0, 1.0),
                             (3.0, 1.0)]]
    line = format_rollouts(rollouts)
    assert line.startswith("rollouts (8), first 2 rollouts -> last 2 rollouts: mean reward -1.50 -> +2.50; ")
    assert line.endswith("format_error 88%, correct 12% | correct 100%")
    assert format_rollouts(rollouts[:1]).startswith(
        "rollouts (1), first rollout -> last rollout: mean reward -2.00 -> -2.00")


def test_fit_scores_the_validation_sets_before_training_and_ends_with_the_summary(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    main([
        "fit", "--config", "experiments/smoke.yaml", "--validate_before_fit=true", f"--model.init_args.model={MODEL}",
        "--trainer.max_steps=3", "--trainer.val_check_interval=3", "--trainer.limit_val_batches=1",
        "--data.batch_size=2", "--data.max_length=256", "--model.init_args.max_new_tokens=8",
        f"--trainer.logger.init_args.save_dir={tmp_path / 'runs'}", f"--data.cache_dir={tmp_path / 'cache'}",
    ])
    console = capsys.readouterr()
    out = console.out
    assert "tool calls on the validation sets, step 0 -> step 3 (%):" in out
    # one bar for the run, counting steps of max_steps (not epochs, not "Epoch 0/-2")
    bars = console.out + console.err
    assert "Training steps: 100%" in bars and "3/3 [" in bars and "Epoch 0/" not in bars
    table = out[out.index("step 0 -> step 3"):]
    assert "BFCL_v3_simple" in table and "test_in_domain_subset" in table
    assert "peak memory" in table and f"logs:       {tmp_path / 'runs/smoke/version_0'}" in table
    assert f"export:     {tmp_path / 'runs/smoke/version_0/hf_model'}" in table

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tmp_path / "runs/smoke/version_0")).Reload()
    steps = [e.step for e in events.Scalars("val/BFCL_v3_simple/cf")]
    assert len(steps) == 2 and steps[0] == 0 < steps[1]  # before training, and after
    # the knobs an ablation varies, in hparams.yaml and against the last scores in the HPARAMS view
    hparams = yaml.safe_load((tmp_path / "runs/smoke/version_0/hparams.yaml").read_text())
    assert hparams["loss"] == "KeyTokenLoss" and hparams["w_max"] == 9.0 and hparams["data.mae"] is True
    assert hparams["lr"] > 0 and hparams["reduction"] == "turn" and "seal_tools" in hparams["data.train"]
    assert "hp/BFCL_v3_simple/cf" in events.Tags()["scalars"]
