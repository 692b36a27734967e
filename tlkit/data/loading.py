"""Records as a `datasets.Dataset`, read by the format readers and cached on disk.

The cache is keyed by the file's size and modification time, by tlkit's code and by
whether argument values are normalised to their declared types, so a changed file or reader is read
again. Each row carries the outcomes of that normalisation (`types`), which the DataModule counts.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import datasets

from tlkit.data.argument_types import normalise_calls
from tlkit.data.readers import READERS, ReaderFormat, read_trajectories
from tlkit.records import RecordError


@dataclass
class DataFile:
    """One data file and the reader for its format.

    Args:
        path: A file (or, for `toolbench` and `api_bank`, a folder).
        format: The reader: tlkit, bfcl, seal_tools, toolalpaca, toolalpaca_golden, toolbench,
            api_bank, glaive, rotbench, tl_training, openai (OpenAI / TRL messages), hermes or xlam.
        noise: RoTBench-style noise on tool and parameter names (evaluation sets): slight, medium,
            heavy or union; None for the clean data.
        noise_seed: Seed of the noise.
    """

    path: str
    format: ReaderFormat = "tlkit"
    noise: Literal["slight", "medium", "heavy", "union"] | None = None
    noise_seed: int = 0

    @property
    def name(self) -> str:
        """How logs and prediction files name this set, e.g. `BFCL_v3_simple+heavy`."""
        return Path(self.path).stem + (f"+{self.noise}" if self.noise else "")


def file_stamp(path: str) -> str:
    """Changes whenever the file (or any file below the folder) changes: keys the record cache."""
    root = Path(path)
    files = sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else [root]
    digest = hashlib.sha256()
    for p in files:
        stat = p.stat()
        digest.update(f"{p}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()


def code_stamp() -> str:
    """Changes whenever tlkit's code changes: keys the caches of records and features. The whole package
    is hashed, not a list of the modules that make records (a list that a moved file would silently break);
    a change elsewhere costs one re-read of the data."""
    digest = hashlib.sha256()
    package = Path(__file__).parents[1]
    for p in sorted(package.rglob("*.py")):
        digest.update(p.relative_to(package).as_posix().encode() + b"\0" + p.read_bytes())
    return digest.hexdigest()


TEXT = datasets.Value("string")
ROW_FEATURES = datasets.Features({"id": TEXT, "source": TEXT, "record": TEXT, "types": datasets.Sequence(TEXT)})


def generate_rows(
    path: str, format: str, noise: str | None, noise_seed: int, normalize_types: bool, stamp: str, code: str
):
    """Rows of the record dataset; `stamp` and `code` only key the cache."""
    for trajectory in read_trajectories(path, format):
        outcomes: list[str] = []
        if normalize_types:
            trajectory, outcomes = normalise_calls(trajectory)
        if noise is not None:
            from tlkit.data.noise import add_noise

            trajectory = add_noise(trajectory, noise, noise_seed)
        yield {"id": trajectory.id, "source": path, "record": trajectory.to_json(), "types": outcomes}


def read_records(file: DataFile, cache_dir: str | None, normalize_types: bool = True) -> datasets.Dataset:
    if file.format not in READERS:
        raise ValueError(f"data file {file.path}: unknown format {file.format!r}; known formats: {', '.join(READERS)}")
    if not os.path.exists(file.path):
        raise FileNotFoundError(f"data file {file.path} ({file.format}) does not exist")
    try:
        return datasets.Dataset.from_generator(
            generate_rows,
            gen_kwargs={"path": file.path, "format": file.format, "noise": file.noise, "noise_seed": file.noise_seed,
                        "normalize_types": normalize_types, "stamp": file_stamp(file.path), "code": code_stamp()},
            features=ROW_FEATURES,
            cache_dir=cache_dir,
        )
    except datasets.exceptions.DatasetGenerationError as error:
        if isinstance(error.__cause__, RecordError):  # the reader's own message names file, record, field
            raise error.__cause__ from None
        raise
