"""The benchmark scripts find their data beside the repository, or in the subsets it ships."""

import importlib.util
from pathlib import Path

import pytest

from tlkit.data.readers import read_trajectories

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def common():
    spec = importlib.util.spec_from_file_location("benchmarks_common", ROOT / "benchmarks/_common.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_default_data_root_is_the_full_public_data_in_the_repository(common):
    assert common.DATA_ROOT == ROOT / "tests/fixtures/public_data"
    for name in common.DATASETS:  # the full files, not the shipped subsets
        path, _ = common.data_path(common.DATA_ROOT, name)
        assert "subset" not in Path(path).name and Path(path).is_relative_to(common.DATA_ROOT)


@pytest.mark.parametrize("name", ["bfcl_simple", "toolalpaca_golden", "glaive"])
def test_every_benchmark_data_set_reads_from_the_shipped_subsets(common, name):
    path, reader = common.data_path(ROOT / "experiments/data", name)
    assert Path(path).is_relative_to(ROOT / "experiments/data") and next(iter(read_trajectories(path, reader)))


def test_a_missing_data_set_names_the_folder(common, tmp_path):
    with pytest.raises(SystemExit, match="--data-root"):
        common.data_path(tmp_path, "glaive")
