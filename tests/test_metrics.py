"""TS / PI / CF and category rates on a hand-made list, and their sync across two processes."""

import json

import pytest
import torch.distributed as dist
import torch.multiprocessing as mp

from tlkit.classify import Category
from tlkit.data.records import ToolCall
from tlkit.metrics import (
    ContentFillingAccuracy,
    ErrorCategoryRate,
    ParameterIdentificationAccuracy,
    ToolSelectionAccuracy,
    tool_call_levels,
)

GOLD = ToolCall("search", {"query": "tool learning", "limit": 1})


def examples() -> list[tuple[list[ToolCall] | None, ToolCall, tuple[bool, bool, bool]]]:
    """(prediction, gold, expected (TS, PI, CF)) — eight hand-made cases."""
    return [
        ([GOLD], GOLD, (True, True, True)),
        ([ToolCall("lookup", GOLD.arguments)], GOLD, (False, False, False)),  # wrong name
        ([ToolCall("search", {"query": "tool learning"})], GOLD, (True, False, False)),  # a name missing
        ([ToolCall("search", {"query": "learning", "limit": 1})], GOLD, (True, True, False)),  # a value differs
        (None, GOLD, (False, False, False)),  # format error
        ([ToolCall("search", {"limit": 1.0, "query": "tool learning"})], GOLD, (True, True, True)),  # 1.0 == 1
        ([], GOLD, (False, False, False)),  # no call
        ([GOLD, ToolCall("finish", {})], GOLD, (True, True, True)),  # the first call is judged
    ]


CATEGORIES = [
    Category.CORRECT,
    Category.CORRECT,
    Category.FORMAT_ERROR,
    Category.CONTENT_ERROR,
    Category.WRONG_TOOL,
    Category.CORRECT,
    Category.FORMAT_ERROR,
    Category.TOOL_HALLUCINATION,
]


@pytest.mark.parametrize("index", range(8))
def test_tool_call_levels(index):
    predicted, gold, expected = examples()[index]
    assert tool_call_levels(predicted, gold) == expected


def test_levels_strict():
    assert tool_call_levels([ToolCall("search", {"limit": 1.0, "query": "tool learning"})], GOLD, strict=True) == (
        True,
        True,
        False,
    )


def compute_all(predicted, gold, categories) -> dict[str, float]:
    metrics = {
        "ts": ToolSelectionAccuracy(),
        "pi": ParameterIdentificationAccuracy(),
        "cf": ContentFillingAccuracy(),
        "cf_strict": ContentFillingAccuracy(strict=True),
    }
    rates = ErrorCategoryRate()
    for metric in metrics.values():
        metric.update(predicted, gold)
    rates.update(categories)
    out = {name: metric.compute().item() for name, metric in metrics.items()}
    return out | {name: rate.item() for name, rate in rates.compute().items()}


EXPECTED = {
    "ts": 5 / 8,
    "pi": 4 / 8,
    "cf": 3 / 8,
    "cf_strict": 2 / 8,
    "correct": 3 / 8,
    "format_error": 2 / 8,
    "content_error": 1 / 8,
    "wrong_tool": 1 / 8,
    "tool_hallucination": 1 / 8,
    **{
        c.value: 0.0
        for c in Category
        if c.value not in ("correct", "format_error", "content_error", "wrong_tool", "tool_hallucination")
    },
}


def test_hand_made_list():
    predicted, gold, _ = zip(*examples())
    assert compute_all(list(predicted), list(gold), CATEGORIES) == pytest.approx(EXPECTED, abs=1e-7)


def test_batches_accumulate_and_reset():
    predicted, gold, _ = zip(*examples())
    ts = ToolSelectionAccuracy()
    ts.update(list(predicted[:3]), list(gold[:3]))
    ts.update(list(predicted[3:]), list(gold[3:]))
    assert ts.compute().item() == pytest.approx(5 / 8)
    ts.reset()
    with pytest.warns(UserWarning, match="before the ``update``"):
        assert ts.compute().item() == 0.0  # no NaN before the first update
    with pytest.raises(ValueError, match="2 predictions for 1 gold"):
        ts.update([None, None], [GOLD])


def test_category_values_are_accepted_as_strings():
    rates = ErrorCategoryRate()
    rates.update(["correct", Category.WRONG_TOOL])
    assert rates.compute()["correct"].item() == 0.5 and rates.compute()["wrong_tool"].item() == 0.5


def _ddp_worker(rank: int, world_size: int, init_file: str, out_file: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size)
    predicted, gold, _ = zip(*examples())
    half = slice(rank * 4, rank * 4 + 4)  # each process sees half of the data
    result = compute_all(list(predicted[half]), list(gold[half]), CATEGORIES[half])  # compute() syncs the summed states
    if rank == 0:
        with open(out_file, "w") as f:
            json.dump(result, f)
    dist.destroy_process_group()


def test_two_process_ddp_equals_single_process(tmp_path):
    mp.spawn(_ddp_worker, args=(2, str(tmp_path / "rendezvous"), str(tmp_path / "out.json")), nprocs=2, join=True)
    synced = json.loads((tmp_path / "out.json").read_text())
    assert synced == pytest.approx(EXPECTED, abs=1e-7)
