"""Length-grouped batches (`LengthGroupedSampler`): everything covered, little padding, whole batches per process."""

import pytest

from tlkit.data.batching import LengthGroupedSampler


@pytest.mark.parametrize("n", [1000, 1003])  # 1003: groups end in short batches, which must not shift the cuts
def test_length_grouped_batches_cover_everything_with_little_padding(n):
    lengths = [(i * 37) % 500 + 10 for i in range(n)]
    order = list(LengthGroupedSampler(lengths, batch_size=8, seed=0))
    assert sorted(order) == list(range(n))
    batches = [order[i:i + 8] for i in range(0, n, 8)]
    padding = sum(max(lengths[i] for i in b) * len(b) - sum(lengths[i] for i in b) for b in batches)
    assert padding / sum(lengths) < 0.05
    assert order != list(LengthGroupedSampler(lengths, batch_size=8, seed=1))


def test_under_ddp_each_process_takes_whole_length_grouped_batches():
    """Two processes: disjoint whole batches, as many each, together everything; a new order each epoch."""
    lengths = [(i * 37) % 500 + 10 for i in range(1003)]
    ranks = [LengthGroupedSampler(lengths, batch_size=8, seed=0, num_replicas=2, rank=r) for r in (0, 1)]
    orders = [list(sampler) for sampler in ranks]
    assert len(orders[0]) == len(ranks[0]) and len(orders[1]) == len(ranks[1])
    assert len(orders[0]) // 8 == -(-len(orders[1]) // 8)  # the same number of steps (126 batches: 63 each)
    assert not set(orders[0]) & set(orders[1]) and len(orders[0]) + len(orders[1]) == 1003
    for order in orders:  # as each process's DataLoader cuts its stream
        batches = [order[i:i + 8] for i in range(0, len(order), 8)]
        padding = sum(max(lengths[i] for i in b) * len(b) - sum(lengths[i] for i in b) for b in batches)
        assert padding / sum(lengths[i] for i in order) < 0.05
    ranks[0].set_epoch(1)
    assert list(ranks[0]) != orders[0]
    with pytest.raises(ValueError, match="rank 2"):
        LengthGroupedSampler(lengths, batch_size=8, num_replicas=2, rank=2)


@pytest.mark.parametrize("n, ranks", [(1001, 2), (5, 4), (20, 3)])  # odd batch count; fewer batches than ranks
def test_under_ddp_every_process_gets_as_many_batches(n, ranks):
    lengths = [(i * 37) % 500 + 10 for i in range(n)]
    orders = [list(LengthGroupedSampler(lengths, batch_size=8, num_replicas=ranks, rank=r)) for r in range(ranks)]
    assert all(orders) and len({-(-len(order) // 8) for order in orders}) == 1  # as many steps each, none idle
    assert set().union(*map(set, orders)) == set(range(n))
