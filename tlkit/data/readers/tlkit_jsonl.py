"""`tlkit`: the canonical records, one `Trajectory.to_dict()` per JSON line (or a JSON list of them)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from tlkit.data.readers._common import load_records
from tlkit.records import RecordError, Trajectory, check_tools


def read_tlkit(path: str | Path) -> Iterator[Trajectory]:
    """Canonical records, validated by `Trajectory.from_dict` and `check_tools`."""
    for position, data in load_records(path):
        try:
            yield check_tools(Trajectory.from_dict(data, source=str(path), record=position), str(path))
        except RecordError as error:
            if not looks_like_openai(data):
                raise
            raise RecordError(error.source, error.record, error.field, error.problem + "; this looks like an "
                              "OpenAI / TRL record (tools as {type, function}): read it with format 'openai'") from None


def looks_like_openai(data: object) -> bool:
    """OpenAI / TRL records nest tools and calls under `function`; canonical records never do."""
    if not isinstance(data, dict):
        return False
    calls = [c for m in data.get("messages") or [] if isinstance(m, dict) for c in m.get("tool_calls") or []]
    nested = [*(data.get("tools") or []), *calls]
    return any(isinstance(item, dict) and "function" in item for item in nested)
