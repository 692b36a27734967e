"""`tlkit`: the canonical records, one `Trajectory.to_dict()` per JSON line (or a JSON list of them)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from tlkit.data.readers._common import load_records
from tlkit.data.records import Trajectory, check_tools


def read_tlkit(path: str | Path) -> Iterator[Trajectory]:
    """Canonical records, validated by `Trajectory.from_dict` and `check_tools`."""
    for position, data in load_records(path):
        yield check_tools(Trajectory.from_dict(data, source=str(path), record=position), str(path))
