"""TS / PI / CF and category rates over hand-made verdicts: each record counted once, also across two processes."""

import json

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.utils.data import DistributedSampler

from tlkit.irm import Category
from tlkit.scoring.metrics import (
    ContentFillingAccuracy,
    ErrorCategoryRate,
    ParameterIdentificationAccuracy,
    RecordCount,
    ToolSelectionAccuracy,
    once_per_record,
)
from tlkit.scoring.rules import Verdict

C = Category
VERDICTS = [  # nine records, hand-made
    Verdict(C.CORRECT, True, True, True),
    Verdict(C.WRONG_TOOL, False, False, False),
    Verdict(C.REDUNDANT_OR_MISSING, True, False, False),
    Verdict(C.CONTENT_ERROR, True, True, False),
    Verdict(C.FORMAT_ERROR, False, False, False),
    Verdict(C.CORRECT, True, True, True),
    Verdict(C.MISSING_OR_EXTRA_CALL, False, False, False),
    Verdict(C.TOOL_HALLUCINATION, False, False, False),
    Verdict(C.CORRECT, True, True, True),
]
EXPECTED = {
    "ts": 5 / 9,
    "pi": 4 / 9,
    "cf": 3 / 9,
    "n": 9,
    **{c.value: 0.0 for c in Category},
    "correct": 3 / 9,
    **{c.value: 1 / 9 for c in (C.WRONG_TOOL, C.REDUNDANT_OR_MISSING, C.CONTENT_ERROR, C.FORMAT_ERROR)},
    **{c.value: 1 / 9 for c in (C.MISSING_OR_EXTRA_CALL, C.TOOL_HALLUCINATION)},
}


def compute_all(batches: list[list[int]]) -> dict[str, float]:
    """Every metric, updated batch by batch with the records (positions in VERDICTS) of each batch."""
    metrics = {
        "ts": ToolSelectionAccuracy(),
        "pi": ParameterIdentificationAccuracy(),
        "cf": ContentFillingAccuracy(),
        "n": RecordCount(),
    }
    rates = ErrorCategoryRate()
    for records in batches:
        for metric in (*metrics.values(), rates):
            metric.update([VERDICTS[i] for i in records], records)
    out = {name: metric.compute().item() for name, metric in metrics.items()}
    return out | {name: rate.item() for name, rate in rates.compute().items()}


def test_hand_made_list():
    assert compute_all([list(range(9))]) == pytest.approx(EXPECTED, abs=1e-7)


def test_repeated_records_count_once():
    """DDP pads the last batches with records already seen: they must not count twice."""
    assert compute_all([[0, 1, 2, 3], [4, 5, 6, 7], [8, 0, 1]]) == pytest.approx(EXPECTED, abs=1e-7)
    records, values = torch.tensor([3, 1, 3, 0, 1]), torch.tensor([30, 10, 30, 0, 10])
    assert once_per_record(records, values).tolist() == [0, 10, 30]


def test_batches_accumulate_and_reset():
    ts = ToolSelectionAccuracy()
    ts.update(VERDICTS[:3], [0, 1, 2])
    ts.update(VERDICTS[3:], list(range(3, 9)))
    assert ts.compute().item() == pytest.approx(5 / 9)
    ts.reset()
    with pytest.warns(UserWarning, match="before the ``update``"):
        assert ts.compute().item() == 0.0  # no NaN before the first update
    with pytest.raises(ValueError, match="2 verdicts for 1 records"):
        ts.update(VERDICTS[:2], [0])


def test_category_values_are_accepted_as_strings():
    rates = ErrorCategoryRate()
    rates.update([Verdict("correct", True, True, True), Verdict(C.WRONG_TOOL, False, False, False)], [0, 1])
    assert rates.compute()["correct"].item() == 0.5 and rates.compute()["wrong_tool"].item() == 0.5


def _ddp_worker(rank: int, world_size: int, init_file: str, out_file: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size)
    # Lightning's sampler for val/test: 9 records on 2 processes, padded to 10 (record 0 twice).
    records = list(DistributedSampler(range(9), num_replicas=world_size, rank=rank, shuffle=False))
    result = compute_all([records[:3], records[3:]])  # compute() gathers the states of both processes
    with open(f"{out_file}.{rank}", "w") as f:
        json.dump({"result": result, "records": records}, f)
    dist.destroy_process_group()


def test_two_process_ddp_counts_each_record_once(tmp_path):
    mp.spawn(_ddp_worker, args=(2, str(tmp_path / "rendezvous"), str(tmp_path / "out")), nprocs=2, join=True)
    ranks = [json.loads((tmp_path / f"out.{rank}").read_text()) for rank in range(2)]
    assert sorted(ranks[0]["records"] + ranks[1]["records"]) == [0, 0, 1, 2, 3, 4, 5, 6, 7, 8]  # the padding
    for rank in ranks:
        assert rank["result"] == pytest.approx(EXPECTED, abs=1e-7)
