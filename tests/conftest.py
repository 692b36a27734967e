"""Shared fixtures: where the real public data lives (../shared/data beside the repository)."""

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared data folder; tests that need it are skipped where it is absent."""
    path = Path(__file__).resolve().parents[2] / "shared" / "data"
    if not path.is_dir():
        pytest.skip(f"no shared data at {path}")
    return path


@pytest.fixture(scope="session")
def tokenizer():
    """The embedded default's tokenizer (a byte-level BPE trained on the shipped data)."""
    from tlkit.models import load_tokenizer

    return load_tokenizer(str(Path(__file__).resolve().parents[1] / "experiments/models/tiny-llama"))
