"""The RL maths of ErrorAwarePPO as pure functions of tensors (plus two KL-coefficient controllers).

Conventions: responses are right-padded; `mask` (b, t) is 1 on real generated tokens (float or
bool); rewards, values and log-probabilities are (b, t), aligned with the generated tokens.
Outputs are 0 on padding wherever a tensor is (b, t).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch


def _float_mask(mask: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return mask.to(dtype=like.dtype if like.is_floating_point() else torch.float32, device=like.device)


def masked_mean(x: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """Mean of `x` over real positions; 0 where there are none. Shape: x, mask (b, t) -> () or reduced `dim`."""
    m = _float_mask(mask, x)
    total = torch.where(m > 0, x, torch.zeros_like(x)) * m  # padding may hold inf/nan: never let it through
    if dim is None:
        return total.sum() / m.sum().clamp(min=1e-8)
    return total.sum(dim) / m.sum(dim).clamp(min=1e-8)


def masked_var(x: torch.Tensor, mask: torch.Tensor, unbiased: bool = True) -> torch.Tensor:
    """Variance of `x` over all real positions. Shape: x, mask (b, t) -> ().

    With `unbiased`, Bessel's correction n / (n - 1); a single real token gives variance 0 and
    none gives 0 (no error, no host sync in the training loop).
    """
    mean = masked_mean(x, mask)
    var = masked_mean((x - mean) ** 2, mask)
    if unbiased:
        n = _float_mask(mask, x).sum()
        var = var * n / (n - 1).clamp(min=1)
    return var


def masked_whiten(x: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True) -> torch.Tensor:
    """`(x - mean) / std` over real positions (mean kept if not `shift_mean`); 0 on padding. Shape (b, t)."""
    mean, var = masked_mean(x, mask), masked_var(x, mask)
    whitened = (x - mean) * torch.rsqrt(var + 1e-8)
    if not shift_mean:
        whitened = whitened + mean
    return torch.where(_float_mask(mask, x) > 0, whitened, torch.zeros_like(whitened))


def logprobs_from_logits(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """log p(token) under softmax(logits), in float32. Shape: logits (b, t, v), tokens (b, t) -> (b, t).

    `tokens` must be valid vocabulary ids everywhere (use the pad id, not -100, on padding).
    """
    logits = logits.float()
    picked = torch.gather(logits, -1, tokens.long().unsqueeze(-1)).squeeze(-1)
    return picked - torch.logsumexp(logits, dim=-1)  # no (b, t, v) log-softmax copy


def entropy_from_logits(logits: torch.Tensor) -> torch.Tensor:
    """Entropy of softmax(logits) per position, in float32. Shape: (b, t, v) -> (b, t)."""
    logits = logits.float()
    return torch.logsumexp(logits, dim=-1) - (torch.softmax(logits, dim=-1) * logits).sum(-1)


def last_token_index(mask: torch.Tensor) -> torch.Tensor:
    """Index of the last real token of each row, -1 for a row without one. Shape: (b, t) -> (b,)."""
    positions = torch.arange(mask.shape[-1], device=mask.device).expand_as(mask)
    return torch.where(mask.bool(), positions, torch.full_like(positions, -1)).amax(-1)


def token_rewards(
    scores: torch.Tensor,
    logprobs: torch.Tensor,
    ref_logprobs: torch.Tensor,
    mask: torch.Tensor,
    kl_coef: float | torch.Tensor,
    clip: float | None = 5.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token rewards: the KL penalty everywhere, plus the clipped score at each row's last real token.

    Shape: scores (b,); logprobs, ref_logprobs, mask (b, t) -> rewards (b, t), kl (b, t).
    `kl = logprobs - ref_logprobs` (the k1 estimate, 0 on padding); `rewards = -kl_coef * kl`, and
    `clamp(score, -clip, clip)` is added at the last real token (`clip=None`: no clipping). A row
    with no real token gets nothing.
    """
    m = _float_mask(mask, logprobs)
    kl = (logprobs - ref_logprobs) * m
    rewards = -kl_coef * kl
    scores = scores.to(rewards.dtype)
    if clip is not None:
        scores = scores.clamp(-clip, clip)
    last = last_token_index(mask)
    has_token = last >= 0
    bonus = torch.where(has_token, scores, 0).unsqueeze(1)
    bonus = torch.zeros_like(rewards).scatter_(1, last.clamp(min=0).unsqueeze(1), bonus)
    return rewards + bonus, kl


@torch.no_grad()
def gae(
    rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float = 1.0, lam: float = 0.95
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation (Schulman et al. 2016), backwards over t.

    Shape: rewards, values, mask (b, t) -> advantages (b, t), returns (b, t).
    `delta_t = r_t + gamma * V_next - V_t`, `A_t = delta_t + gamma * lam * A_next`, where "next" is
    the next real token and the value after the last one is 0 (the episode ends there).
    `returns = advantages + values`; both are 0 on padding. No gradient flows through them.
    """
    real = mask.bool()
    next_value = torch.zeros_like(values[:, 0])
    next_advantage = torch.zeros_like(values[:, 0])
    advantages = []
    for t in reversed(range(rewards.shape[1])):
        advantage = rewards[:, t] + gamma * next_value - values[:, t] + gamma * lam * next_advantage
        # Padding passes the carry through untouched, so only real tokens chain together.
        next_advantage = torch.where(real[:, t], advantage, next_advantage)
        next_value = torch.where(real[:, t], values[:, t], next_value)
        advantages.append(torch.where(real[:, t], advantage, torch.zeros_like(advantage)))
    advantages = torch.stack(advantages[::-1], dim=1)
    returns = torch.where(real, advantages + values, torch.zeros_like(values))
    return advantages, returns


def group_advantages(
    scores: torch.Tensor,
    group_size: int,
    method: Literal["grpo", "rloo"],
    normalize_std: bool = True,
    eps: float = 1e-4,
) -> torch.Tensor:
    """Critic-free advantages from `group_size` consecutive samples per prompt. Shape: (b,) -> (b,).

    grpo: `(score - group mean) / (group std + eps)`, with the unbiased std, only if
    `normalize_std` (otherwise just centred). rloo: `score - mean of the other k - 1 scores`
    (`normalize_std` does not apply).
    """
    if group_size < 2 or scores.shape[0] % group_size:
        raise ValueError(
            f"group_advantages needs group_size >= 2 dividing the batch; got {group_size} for {scores.shape[0]} scores"
        )
    groups = scores.float().view(-1, group_size)
    if method == "grpo":
        advantages = groups - groups.mean(1, keepdim=True)
        if normalize_std:
            advantages = advantages / (groups.std(1, keepdim=True) + eps)
    elif method == "rloo":
        advantages = groups - (groups.sum(1, keepdim=True) - groups) / (group_size - 1)
    else:
        raise ValueError(f"unknown group advantage method {method!r}; expected 'grpo' or 'rloo'")
    return advantages.reshape(-1)


def broadcast_sequence_advantage(advantages: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """One advantage per sequence, on each of its real tokens. Shape: (b,), mask (b, t) -> (b, t)."""
    return advantages.unsqueeze(1) * _float_mask(mask, advantages)


def estimate_advantages(
    rewards: torch.Tensor,
    values: torch.Tensor,
    mask: torch.Tensor,
    method: Literal["gae", "grpo", "rloo"] = "gae",
    group_size: int = 4,
    gamma: float = 1.0,
    lam: float = 0.95,
    whiten: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Advantages and returns of a rollout batch. Shape: rewards, values, mask (b, t) -> (b, t), (b, t).

    gae: `gae` over the critic's `values`; `whiten` then whitens the advantages (not the returns)
    over the batch's real tokens. The reference (DeepSpeed-Chat) does not: with one answer per
    batch, whitening over its own tokens makes the first tokens of a wrong answer positive.
    grpo / rloo: each answer's summed reward against the other answers of its group of `group_size`
    consecutive rows, on each of its tokens; `values` is unused and the returns are the advantages.
    `whiten` does not apply: after the group normalisation it would shift a group whose answers all
    scored alike (advantage 0) by the token mean of the other groups.
    """
    if method == "gae":
        advantages, returns = gae(rewards, values, mask, gamma, lam)
        return (masked_whiten(advantages, mask) if whiten else advantages), returns
    sequence_rewards = (rewards * _float_mask(mask, rewards)).sum(-1)
    advantages = broadcast_sequence_advantage(group_advantages(sequence_rewards, group_size, method), mask)
    return advantages, advantages


def sequence_kl(
    kl: torch.Tensor, mask: torch.Tensor, reduce_sum: Callable[[torch.Tensor], torch.Tensor] | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean over answers of each answer's summed KL, and the number of answers. Shape: (b, t) -> (), ().

    `reduce_sum` sums a tensor over processes (DDP): both are then over every process's answers, so
    an adaptive KL controller fed with them takes the same step on every process.
    """
    answers = mask.bool().any(-1)
    totals = torch.stack([(kl * _float_mask(mask, kl)).sum(), answers.sum().to(kl.dtype)])
    if reduce_sum is not None:
        totals = reduce_sum(totals)
    return totals[0] / totals[1].clamp(min=1), totals[1]


def policy_loss(
    logprobs: torch.Tensor, old_logprobs: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor, clip: float = 0.2
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """PPO's clipped surrogate, masked mean of `max(-A * r, -A * clip(r, 1 - clip, 1 + clip))`.

    Shape: all (b, t) -> loss (), stats of () tensors, detached:
    `clip_fraction` (share of real tokens where the clipped branch is the larger one),
    `approx_kl` (masked mean of `0.5 * (logprobs - old_logprobs) ** 2`), `ratio_mean`.
    """
    log_ratio = logprobs - old_logprobs
    ratio = torch.exp(log_ratio)
    unclipped = -advantages * ratio
    clipped = -advantages * ratio.clamp(1.0 - clip, 1.0 + clip)
    loss = masked_mean(torch.maximum(unclipped, clipped), mask)
    with torch.no_grad():
        stats = {
            "clip_fraction": masked_mean((clipped > unclipped).float(), mask),
            "approx_kl": masked_mean(0.5 * log_ratio**2, mask),
            "ratio_mean": masked_mean(ratio, mask),
        }
    return loss, stats


def value_loss(
    values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor, clip: float = 0.2
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Clipped value loss, masked mean of `0.5 * max((v - R)^2, (clip(v, old - clip, old + clip) - R)^2)`.

    Shape: all (b, t) -> loss (), stats {`value_clip_fraction`: ()} (share of real tokens where
    the clipped term is the larger one), detached.
    """
    clipped_values = old_values + (values - old_values).clamp(-clip, clip)
    unclipped = (values - returns) ** 2
    clipped = (clipped_values - returns) ** 2
    loss = 0.5 * masked_mean(torch.maximum(unclipped, clipped), mask)
    with torch.no_grad():
        stats = {"value_clip_fraction": masked_mean((clipped > unclipped).float(), mask)}
    return loss, stats


def explained_variance(values: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """`1 - Var(R - V) / Var(R)` over real tokens; nan when the returns do not vary. Shape: (b, t) -> ()."""
    var_returns = masked_var(returns, mask)
    ratio = masked_var(returns - values, mask) / var_returns
    return torch.where(var_returns > 0, 1 - ratio, torch.full_like(ratio, float("nan")))


class KLController:
    """The coefficient β of the per-token KL penalty; `update` is called once per rollout batch."""

    value: float

    def update(self, current_kl: float, n_steps: int) -> None:
        """Adjust `value` after a rollout batch of `n_steps` samples whose mean KL was `current_kl`."""


class FixedKL(KLController):
    """A constant KL coefficient.

    Args:
        coef: The KL penalty coefficient β.
    """

    def __init__(self, coef: float = 0.3):
        self.value = coef


class AdaptiveKL(KLController):
    """Adaptive KL coefficient (Ziegler et al. 2019), as TRL's AdaptiveKLController.

    `coef *= 1 + clip(current_kl / target - 1, -0.2, 0.2) * n_steps / horizon`: β grows while
    the KL is above target and shrinks while it is below.

    Args:
        init_coef: The starting KL coefficient β.
        target: The KL (per sequence, summed over its tokens) that β steers towards.
        horizon: How many samples it takes for a persistent error to change β by about e^±0.2.
    """

    def __init__(self, init_coef: float = 0.3, target: float = 6.0, horizon: int = 10000):
        self.value = init_coef
        self.target = target
        self.horizon = horizon

    def update(self, current_kl: float, n_steps: int) -> None:
        proportional_error = min(max(float(current_kl) / self.target - 1, -0.2), 0.2)
        self.value *= 1 + proportional_error * n_steps / self.horizon
