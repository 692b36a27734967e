"""PKT: key positions, key-token weights and the weighted loss against hand-computed numbers."""

import math

import pytest
import torch

from tlkit.pkt import KeyTokenLoss, key_char_offsets, key_token_weights, weighted_cross_entropy

PAPER_TOOLS = ["getPaperDetails", "getPapersByKeywords", "finish"]


def test_key_offsets_design_doc_example():
    # gold getPapersByKeywords: its first character, and the "s" where it leaves getPaperDetails.
    assert key_char_offsets("getPapersByKeywords", PAPER_TOOLS) == [0, len("getPaper")]
    assert "getPapersByKeywords"[len("getPaper")] == "s"
    assert key_char_offsets("getPaperDetails", PAPER_TOOLS) == [0, len("getPaper")]
    assert key_char_offsets("finish", PAPER_TOOLS) == [0]


def test_key_offsets_prefix_names():
    # gold is a prefix of another tool: the key is the character right after the name.
    assert key_char_offsets("search", ["search", "search_all"]) == [0, 6]
    # another tool is a prefix of gold: gold diverges where the other name ends.
    assert key_char_offsets("search_all", ["search", "search_all"]) == [0, 6]
    assert key_char_offsets("a", ["a"]) == [0]


def test_key_token_weights_hand_computed():
    turn_ids = torch.tensor([[0, 0, 0, 0, 1, 1, -1], [0, 0, -1, -1, -1, -1, -1]])
    key = torch.tensor([[1, 0, 0, 0, 1, 0, 1], [1, 0, 0, 0, 0, 0, 0]], dtype=torch.bool)
    arg_end = torch.tensor([[0, 0, 0, 1, 0, 0, 0], [0, 0, 0, 0, 0, 0, 0]], dtype=torch.bool)
    weights = KeyTokenLoss(w_max=9).weights(turn_ids, key, arg_end)
    # turn 0 of row 0: |K| = 1, |NK| = 2 (the argument end is not counted) -> 2;
    # turn 1: |NK| = 1 -> 1; a key flag on an unsupervised token weighs 0; row 1: |NK| = 1 -> 1.
    assert weights.tolist() == [[2, 1, 1, 1, 1, 1, 0], [1, 1, 0, 0, 0, 0, 0]]
    counted = KeyTokenLoss(w_max=9, exclude_argument_ends=False).weights(turn_ids, key, arg_end)
    assert counted[0, 0] == 3
    # w_max 1 is plain SFT: every supervised token weighs 1, the shortcut equal to the clipped weights
    plain = KeyTokenLoss(w_max=1).weights(turn_ids, key, arg_end)
    assert plain.tolist() == (turn_ids >= 0).float().tolist()
    assert key_token_weights(turn_ids, key, arg_end, 1.0).tolist() == plain.tolist()


def test_key_weight_is_clipped_at_w_max():
    turn_ids = torch.zeros(1, 30, dtype=torch.long)
    key = torch.zeros(1, 30, dtype=torch.bool)
    key[0, 0] = True
    assert KeyTokenLoss(w_max=9).weights(turn_ids, key, torch.zeros_like(key))[0, 0] == 9
    key[0, :20] = True  # |NK| / |K| = 10 / 20 < 1 -> 1
    assert KeyTokenLoss(w_max=9).weights(turn_ids, key, torch.zeros_like(key))[0, 0] == 1


def ce(a: float) -> float:
    """Cross-entropy of target 0 under logits [a, 0]."""
    return math.log(1 + math.exp(-a))


@pytest.mark.parametrize("reduction", ["turn", "token"])
def test_weighted_loss_hand_computed(reduction):
    a = [[2.0, -1.0, 0.5, 3.0], [1.0, 0.0, -2.0, 0.0]]
    logits = torch.tensor([[[x, 0.0] for x in row] for row in a])
    targets = torch.zeros(2, 4, dtype=torch.long)
    turn_ids = torch.tensor([[0, 0, 1, -1], [0, 0, 0, -1]])
    logits = logits[turn_ids >= 0]  # (n, v): the supervised positions only, as WeightedSFT passes them
    weights = torch.tensor([[3.0, 1.0, 1.0, 0.0], [1.0, 2.0, 1.0, 0.0]])
    loss, plain = weighted_cross_entropy(logits, targets, weights, turn_ids, reduction)
    c = [[ce(x) for x in row] for row in a]
    turns = [
        (3 * c[0][0] + c[0][1]) / 4,
        c[0][2],
        (c[1][0] + 2 * c[1][1] + c[1][2]) / 4,
    ]
    expected = sum(turns) / 3 if reduction == "turn" else (
        3 * c[0][0] + c[0][1] + c[0][2] + c[1][0] + 2 * c[1][1] + c[1][2]) / 9
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    assert plain.item() == pytest.approx((c[0][0] + c[0][1] + c[0][2] + c[1][0] + c[1][1] + c[1][2]) / 6, rel=1e-6)


def test_chunked_cross_entropy_equals_the_whole_batch_in_value_and_gradient():
    import torch.nn.functional as F

    from tlkit.pkt import token_cross_entropy

    torch.manual_seed(0)
    logits = torch.randn(1100, 300, requires_grad=True)
    targets = torch.randint(0, 300, (1100,))
    chunked = token_cross_entropy(logits, targets, chunk=512)  # chunks of 512, 512 and 76
    (grad_chunked,) = torch.autograd.grad((chunked * torch.arange(1100)).sum(), logits)
    whole = F.cross_entropy(logits, targets, reduction="none")
    (grad_whole,) = torch.autograd.grad((whole * torch.arange(1100)).sum(), logits)
    assert torch.allclose(chunked, whole, atol=1e-6) and torch.allclose(grad_chunked, grad_whole, atol=1e-6)


def test_the_loss_component_is_weights_then_the_weighted_loss():
    torch.manual_seed(0)
    turn_ids = torch.tensor([[0, 0, 0, 1, 1, -1]])
    key = torch.tensor([[1, 0, 0, 1, 0, 0]], dtype=torch.bool)
    ends = torch.zeros_like(key)
    targets = torch.randint(0, 5, (1, 6))
    logits = torch.randn(5, 5)  # the 5 supervised positions
    for reduction in ("turn", "token"):
        loss_fn = KeyTokenLoss(w_max=9, reduction=reduction)
        loss, ce_plain, weights = loss_fn(logits, targets, turn_ids, key, ends)
        expected = weighted_cross_entropy(logits, targets, loss_fn.weights(turn_ids, key, ends), turn_ids, reduction)
        assert torch.equal(weights, loss_fn.weights(turn_ids, key, ends))
        assert torch.allclose(loss, expected[0]) and torch.allclose(ce_plain, expected[1])
    with pytest.raises(ValueError, match="w_max must be at least 1"):
        KeyTokenLoss(w_max=0.5)
