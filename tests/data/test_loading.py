"""Records as a cached `datasets.Dataset` (`tlkit.data.loading`): what a row holds, and when the cache is read
again (a changed file; noise and type normalisation are part of the key)."""

import shutil
from pathlib import Path

import pytest

from tlkit.data.loading import DataFile, file_stamp, read_records
from tlkit.records import Trajectory

SEAL = Path(__file__).resolve().parents[2] / "experiments/data/seal_tools"


def test_a_data_file_is_named_by_its_stem_and_noise():
    assert DataFile("data/BFCL_v3_simple.json", "bfcl").name == "BFCL_v3_simple"
    assert DataFile("data/BFCL_v3_simple.json", "bfcl", noise="heavy").name == "BFCL_v3_simple+heavy"


def test_rows_hold_the_record_its_source_and_the_type_outcomes(tmp_path):
    rows = read_records(DataFile(str(SEAL / "test_in_domain_subset.jsonl"), "seal_tools"), str(tmp_path))
    assert len(rows) == 50 and set(rows.column_names) == {"id", "source", "record", "types"}
    trajectory = Trajectory.from_json(rows[0]["record"])
    assert trajectory.id == rows[0]["id"] and rows[0]["source"].endswith("test_in_domain_subset.jsonl")
    noisy = read_records(DataFile(str(SEAL / "test_in_domain_subset.jsonl"), "seal_tools", noise="heavy"),
                         str(tmp_path))
    assert noisy["id"] == rows["id"] and noisy["record"] != rows["record"]  # the same records, renamed


def test_a_changed_file_is_read_again(tmp_path):
    folder = tmp_path / "seal"
    shutil.copytree(SEAL, folder)
    path = folder / "test_in_domain_subset.jsonl"
    before = file_stamp(str(path))
    assert len(read_records(DataFile(str(path), "seal_tools"), str(tmp_path / "cache"))) == 50
    path.write_text("".join(path.read_text().splitlines(keepends=True)[:10]))
    assert file_stamp(str(path)) != before
    assert len(read_records(DataFile(str(path), "seal_tools"), str(tmp_path / "cache"))) == 10


def test_a_missing_file_or_an_unknown_format_says_which(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.jsonl \\(seal_tools\\) does not exist"):
        read_records(DataFile(str(tmp_path / "nowhere.jsonl"), "seal_tools"), str(tmp_path))
    with pytest.raises(ValueError, match="unknown format 'sharegpt'"):
        read_records(DataFile(str(SEAL / "tool.jsonl"), "sharegpt"), str(tmp_path))  # type: ignore[arg-type]
