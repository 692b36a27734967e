"""PKT: the key tokens of a gold tool name, their weights, and the weighted SFT loss (`KeyTokenLoss`).

`key_char_offsets` finds the key positions in a name (the tokeniser maps them to tokens);
`KeyTokenLoss` weighs them and computes the loss.

Inputs are the per-token masks the DataModule computes once (all shaped (batch, seq), aligned with
the *target* token, i.e. already shifted by one against the logits):
- `turn_ids`: index of the supervised assistant turn a target token belongs to, -1 for no loss;
- `key_mask`: PKT key tokens (where the gold tool name diverges from the other offered tools);
- `argument_end_mask`: the last token of each argument value.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

Reduction = Literal["turn", "token"]


class KeyTokenLoss:
    """PKT's loss, the one place its settings live: cross-entropy over the supervised tokens, each key token
    weighted `clip(|NK| / |K|, 1, w_max)` within its turn, every other supervised token 1.

    Args:
        w_max: Upper bound of a key token's weight (the paper's 9). 1 is plain SFT, every token weighing 1
            (the paper's "w/o PKT").
        exclude_argument_ends: Leave the last token of each argument out of |NK|, as the reference does.
        reduction: `turn`: each turn's weighted mean, then the mean over turns (the reference, whose batch
            size is 1); `token`: one weighted mean over every supervised token of the batch.
    """

    def __init__(self, w_max: float = 9.0, exclude_argument_ends: bool = True, reduction: Reduction = "turn"):
        if w_max < 1:
            raise ValueError(f"w_max must be at least 1 (1: plain SFT), got {w_max}")
        self.w_max, self.exclude_argument_ends, self.reduction = w_max, exclude_argument_ends, reduction

    def weights(self, turn_ids: torch.Tensor, key_mask: torch.Tensor, argument_end_mask: torch.Tensor) -> torch.Tensor:
        """Per-token weights, (b, s) like the masks, 0 where there is no loss."""
        if self.w_max == 1:  # every weight clips to 1: skip counting the turns
            return (turn_ids >= 0).float()
        ends = argument_end_mask if self.exclude_argument_ends else None
        return key_token_weights(turn_ids, key_mask, ends, self.w_max)

    def __call__(
        self, logits: torch.Tensor, targets: torch.Tensor, turn_ids: torch.Tensor, key_mask: torch.Tensor,
        argument_end_mask: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(the weighted loss, the plain token-mean cross-entropy, the weights); `logits` (n, v) for the n
        supervised positions only, as `weighted_cross_entropy` takes them."""
        weights = self.weights(turn_ids, key_mask, argument_end_mask)
        loss, ce = weighted_cross_entropy(logits, targets, weights, turn_ids, self.reduction)
        return loss, ce, weights

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(w_max={self.w_max}, exclude_argument_ends={self.exclude_argument_ends}, "
                f"reduction={self.reduction!r})")


def turn_groups(turn_ids: torch.Tensor) -> tuple[torch.Tensor, int]:
    """A batch-wide id per (sample, turn) for scatter sums; shape (b, s), and the group count."""
    width = turn_ids.shape[1]  # a sample has fewer turns than tokens; reading the ids would wait for the device
    rows = torch.arange(turn_ids.shape[0], device=turn_ids.device).unsqueeze(1)
    return (rows * width + turn_ids.clamp(min=0)), turn_ids.shape[0] * width


def key_token_weights(
    turn_ids: torch.Tensor, key_mask: torch.Tensor, argument_end_mask: torch.Tensor | None, w_max: float
) -> torch.Tensor:
    """Per-token weights, 0 where there is no loss. Shape (b, s) like the inputs."""
    supervised = turn_ids >= 0
    key = key_mask & supervised
    counted = supervised & ~key
    if argument_end_mask is not None:
        counted &= ~argument_end_mask
    groups, n_groups = turn_groups(turn_ids)
    n_key = torch.zeros(n_groups, device=turn_ids.device).index_add_(0, groups.flatten(), key.flatten().float())
    n_other = torch.zeros(n_groups, device=turn_ids.device).index_add_(0, groups.flatten(), counted.flatten().float())
    w_turn = (n_other / n_key.clamp(min=1)).clamp(1.0, w_max)
    return torch.where(key, w_turn[groups], supervised.float())


def token_cross_entropy(logits: torch.Tensor, targets: torch.Tensor, chunk: int = 512) -> torch.Tensor:
    """Cross-entropy per position, (n,), in float32, `chunk` positions at a time, each recomputed in the
    backward pass: the float32 copy of the logits and its log-softmax (n x vocabulary each, 0.55 GB for
    2,800 positions of a 49k vocabulary) then exist for one chunk at a time, not for the whole batch."""
    def chunk_ce(chunk_logits: torch.Tensor, chunk_targets: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(chunk_logits.float(), chunk_targets, reduction="none")

    if not torch.is_grad_enabled() or not logits.requires_grad:
        return chunk_ce(logits, targets)
    return torch.cat([checkpoint(chunk_ce, part, part_targets, use_reentrant=False)
                      for part, part_targets in zip(logits.split(chunk), targets.split(chunk))])


def weighted_cross_entropy(
    logits: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor, turn_ids: torch.Tensor,
    reduction: Reduction = "turn"
) -> tuple[torch.Tensor, torch.Tensor]:
    """The PKT loss and the plain (unweighted) token-mean cross-entropy for logging.

    Shapes: targets, weights, turn_ids (b, s), aligned with each other; logits (n, v) for only the
    n supervised positions (`turn_ids >= 0`, row-major), which is all a model needs to project onto
    the vocabulary (from full logits: `logits[turn_ids >= 0]`).
    `turn`: each turn's `sum w*CE / sum w`, then the mean over turns (the reference with batch
    size 1); `token`: `sum w*CE / sum w` over the whole batch.
    """
    supervised = turn_ids >= 0
    ce = weights.new_zeros(weights.shape).masked_scatter(supervised, token_cross_entropy(logits, targets[supervised]))
    plain = (ce * supervised).sum() / supervised.sum().clamp(min=1)
    if reduction == "token":
        return (weights * ce).sum() / weights.sum().clamp(min=1e-8), plain
    groups, n_groups = turn_groups(turn_ids)
    numerator = torch.zeros(n_groups, device=ce.device).index_add_(0, groups.flatten(), (weights * ce).flatten())
    denominator = torch.zeros(n_groups, device=ce.device).index_add_(0, groups.flatten(), weights.flatten())
    # Mean over the turns present, without a data-dependent branch (which would wait for the device).
    present = denominator > 0
    per_turn = numerator / denominator.clamp(min=1e-8)
    return (per_turn * present).sum() / present.sum().clamp(min=1), plain


def key_char_offsets(gold: str, offered: list[str]) -> list[int]:
    """PKT key positions as character offsets into the gold tool name.

    The first character, plus, for each other offered tool sharing a non-empty prefix with `gold`,
    the first character where the names differ; `len(gold)` (the character right after the name)
    when `gold` is a prefix of the other name.
    """
    offsets = {0}
    for other in offered:
        if other == gold:
            continue
        common = 0
        while common < min(len(gold), len(other)) and gold[common] == other[common]:
            common += 1
        if common:
            offsets.add(common)
    return sorted(offsets)
