"""A fit killed mid-epoch and resumed from its checkpoint continues exactly: same batches, losses, weights, folder."""

import glob
import os
import signal
import subprocess
import sys
from pathlib import Path

import torch
from lightning.pytorch.callbacks import Callback

from tlkit.cli import main, run_folder
from tlkit.data.batching import LengthGroupedSampler, ResumableLoader

ROOT = Path(__file__).resolve().parents[1]


class SigkillAt(Callback):
    """Dies as a crashed machine does, with no cleanup, once training step `step` is done."""

    def __init__(self, step: int):
        self.step = step

    def on_train_batch_end(self, trainer, *args) -> None:
        if trainer.global_step == self.step:
            os.kill(os.getpid(), signal.SIGKILL)


def loader(lengths: list[int], batch_size: int = 3) -> ResumableLoader:
    return ResumableLoader(list(range(len(lengths))), batch_size=batch_size,
                           sampler=LengthGroupedSampler(lengths, batch_size, group=2))


def test_a_restored_loader_hands_out_the_rest_of_the_epoch():
    lengths = [(i * 37) % 23 for i in range(20)]  # 7 batches, the last one short
    first = loader(lengths)
    first.sampler.set_epoch(3)
    epoch = [batch.tolist() for batch in first]
    taken = iter(first)
    for _ in range(4):
        next(taken)
    resumed = loader(lengths)
    resumed.load_state_dict(first.state_dict())
    resumed.sampler.set_epoch(3)  # what Lightning does next
    assert [batch.tolist() for batch in resumed] == epoch[4:]
    assert len(resumed) == 7  # the whole epoch: Lightning counts the skipped batches as fetched
    assert [batch.tolist() for batch in resumed] == epoch  # the next pass is a whole epoch again


def test_a_checkpoint_at_the_end_of_an_epoch_resumes_at_the_next():
    first = loader(list(range(20)))
    list(first)
    resumed = loader(list(range(20)))
    resumed.load_state_dict(first.state_dict())
    first.sampler.set_epoch(1)
    assert resumed.sampler.epoch == 1 and [b.tolist() for b in resumed] == [b.tolist() for b in first]


def test_only_a_checkpoint_inside_an_unfinished_run_folder_names_the_run(tmp_path):
    root = tmp_path / "runs/sft"
    (root / "version_2/checkpoints").mkdir(parents=True)
    assert run_folder(str(root / "version_2/checkpoints/last.ckpt"), root) == root / "version_2"
    assert run_folder(str(tmp_path / "elsewhere/last.ckpt"), root) is None
    assert run_folder(str(root / "last.ckpt"), root) is None
    (root / "version_2/hf_model").mkdir()  # exported: the run finished, a new one gets a new folder
    assert run_folder(str(root / "version_2/checkpoints/last.ckpt"), root) is None


def fit_args(runs: Path, cache: Path) -> list[str]:
    """8 steps of 2 trajectories from 200 (mid-epoch throughout), a checkpoint every 2 steps."""
    return [
        "fit", "--config", str(ROOT / "experiments/smoke.yaml"),
        "--data.train=[{path: experiments/data/seal_tools/dev_subset.jsonl, format: seal_tools}]",
        "--data.val=null", "--data.test=null", "--data.batch_size=2", "--data.max_length=64",
        f"--data.cache_dir={cache}",
        "--trainer.max_steps=8", "--trainer.limit_val_batches=0", "--trainer.log_every_n_steps=1",
        "--trainer.enable_progress_bar=false", f"--trainer.logger.init_args.save_dir={runs}",
        "--trainer.callbacks+=lightning.pytorch.callbacks.ModelCheckpoint",
        "--trainer.callbacks.every_n_train_steps=2", "--trainer.callbacks.save_top_k=-1",
        "--model.init_args.export=false",
    ]


def losses(run: Path) -> dict[int, list[float]]:
    """Every `train/loss` point in a run folder, by step, from all its event files."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    points: dict[int, list[float]] = {}
    for events in glob.glob(str(run / "events.out.tfevents.*")):
        accumulator = EventAccumulator(events).Reload()
        for event in accumulator.Scalars("train/loss") if "train/loss" in accumulator.Tags()["scalars"] else []:
            points.setdefault(event.step, []).append(event.value)
    return points


def weights(run: Path) -> dict[str, torch.Tensor]:
    (path,) = (run / "checkpoints").glob("*step=8.ckpt")
    return torch.load(path, map_location="cpu", weights_only=False)["state_dict"]


def test_killed_mid_epoch_and_resumed_equals_uninterrupted(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    cache = tmp_path / "cache"
    main(fit_args(tmp_path / "whole", cache))
    whole = tmp_path / "whole/smoke/version_0"

    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")])}
    kill = ["--trainer.callbacks+=test_resume.SigkillAt", "--trainer.callbacks.step=5"]
    killed = subprocess.run([sys.executable, "-m", "tlkit.cli", *fit_args(tmp_path / "crash", cache), *kill],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    run = tmp_path / "crash/smoke/version_0"
    checkpoint = next((run / "checkpoints").glob("*step=4.ckpt"))
    assert not list((run / "checkpoints").glob("*step=6.ckpt"))
    main([*fit_args(tmp_path / "crash", cache), f"--ckpt_path={checkpoint}"])

    assert sorted(os.listdir(tmp_path / "crash/smoke")) == ["version_0"]  # one run, one folder
    assert (run / "config.yaml").exists() and (run / "config.resume1.yaml").exists()
    expected, got = losses(whole), losses(run)
    assert sorted(got) == sorted(expected) == list(range(8))
    for step, values in got.items():  # steps logged by both attempts appear twice, with one value
        assert all(abs(v - expected[step][0]) < 1e-5 * max(1, abs(v)) for v in values), (step, values, expected[step])
    a, b = weights(whole), weights(run)
    assert max((a[k] - b[k]).abs().max().item() for k in a) < 1e-5
