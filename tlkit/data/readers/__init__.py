"""Readers: one per public format, each turning a file into canonical `Trajectory` records.

Every reader takes a path and yields trajectories; bad input raises a `RecordError` naming the
file, the record and the field (in the source format's terms).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Literal

from tlkit.data.readers.api_bank import read_api_bank
from tlkit.data.readers.bfcl import read_bfcl
from tlkit.data.readers.glaive import read_glaive
from tlkit.data.readers.hermes import read_hermes
from tlkit.data.readers.openai import read_openai
from tlkit.data.readers.rotbench import read_rotbench
from tlkit.data.readers.seal_tools import read_seal_tools
from tlkit.data.readers.tl_training import read_tl_training
from tlkit.data.readers.tlkit_jsonl import read_tlkit
from tlkit.data.readers.toolalpaca import read_toolalpaca
from tlkit.data.readers.toolalpaca_golden import read_toolalpaca_golden
from tlkit.data.readers.toolbench import read_toolbench
from tlkit.data.readers.xlam import read_xlam
from tlkit.records import RecordError, Trajectory

READERS: dict[str, Callable[[str], Iterator[Trajectory]]] = {
    "tlkit": read_tlkit,
    "bfcl": read_bfcl,
    "seal_tools": read_seal_tools,
    "toolalpaca": read_toolalpaca,
    "toolalpaca_golden": read_toolalpaca_golden,
    "toolbench": read_toolbench,
    "api_bank": read_api_bank,
    "glaive": read_glaive,
    "rotbench": read_rotbench,
    "tl_training": read_tl_training,
    "openai": read_openai,
    "hermes": read_hermes,
    "xlam": read_xlam,
}
# The format names as a type: a config with a misspelt format fails when it is parsed, listing these.
ReaderFormat = Literal[tuple(READERS)]  # type: ignore[valid-type]


def read_trajectories(path: str, format: str) -> Iterator[Trajectory]:
    """The trajectories of `path`, read as `format` (a key of `READERS`); a RecordError if there are none."""
    if format not in READERS:
        raise ValueError(f"unknown format {format!r}; known formats: {', '.join(READERS)}")
    return not_empty(READERS[format](path), path)


def not_empty(records: Iterator[Trajectory], path: str) -> Iterator[Trajectory]:
    """`records`, then an error if there were none: an empty data file is a mistake, not a score of n = 0."""
    empty = True
    for record in records:
        empty = False
        yield record
    if empty:
        problem = "no records: the file (or folder) is empty, or holds nothing this format makes a record of"
        raise RecordError(str(path), "line 1", "<file>", problem)
