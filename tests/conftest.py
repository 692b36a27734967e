"""Shared fixtures: the real public tool-use data (tests/fixtures/public_data, copied unchanged from the
benchmarks' repositories, Apache-2.0; its README names each source and commit) and the tiny model's tokenizer."""

from pathlib import Path

import pytest

PUBLIC_DATA = Path(__file__).resolve().parent / "fixtures" / "public_data"


@pytest.fixture(scope="session")
def public_data() -> Path:
    """The public data folder, in the repository: every test runs on a clone as it is."""
    return PUBLIC_DATA


@pytest.fixture(scope="session")
def tokenizer():
    """The embedded default's tokenizer (a byte-level BPE trained on the shipped data)."""
    from tlkit.models import load_tokenizer

    return load_tokenizer(str(Path(__file__).resolve().parents[1] / "experiments/models/tiny-llama"))
