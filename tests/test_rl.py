"""The RL maths of ErrorAwarePPO against hand-computed numbers."""

import json
import math
from functools import partial

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from tlkit.rl import (
    AdaptiveKL,
    FixedKL,
    broadcast_sequence_advantage,
    entropy_from_logits,
    estimate_advantages,
    explained_variance,
    gae,
    group_advantages,
    logprobs_from_logits,
    masked_mean,
    masked_var,
    masked_whiten,
    policy_loss,
    sequence_kl,
    token_rewards,
    value_loss,
)


def close(actual, expected, atol=1e-6):
    actual = torch.as_tensor(actual, dtype=torch.float32)
    torch.testing.assert_close(actual, torch.tensor(expected, dtype=torch.float32), atol=atol, rtol=0)


# -- masked statistics ------------------------------------------------------------------------


def test_masked_mean_and_var_ignore_padding_even_if_it_is_nan():
    x = torch.tensor([[1.0, 2.0, 3.0, float("nan")], [4.0, float("inf"), 0.0, 0.0]])
    mask = torch.tensor([[1, 1, 1, 0], [1, 0, 0, 0]], dtype=torch.bool)
    close(masked_mean(x, mask), (1 + 2 + 3 + 4) / 4)
    close(masked_mean(x, mask, dim=1), [2.0, 4.0])
    close(masked_mean(x, mask.float(), dim=1), [2.0, 4.0])  # float masks too
    # mean 2.5, squared deviations 2.25 + 0.25 + 0.25 + 2.25 = 5
    close(masked_var(x, mask), 5 / 3)
    close(masked_var(x, mask, unbiased=False), 5 / 4)
    close(masked_mean(x, torch.zeros_like(mask)), 0.0)


def test_masked_whiten_has_mean_zero_and_unit_variance_on_real_tokens():
    torch.manual_seed(0)
    x = torch.randn(4, 7) * 3 + 5
    mask = torch.ones(4, 7)
    mask[0, 5:] = 0
    mask[2, 1:] = 0
    w = masked_whiten(x, mask)
    close(masked_mean(w, mask), 0.0, atol=1e-5)
    close(masked_var(w, mask), 1.0, atol=1e-5)
    assert (w[mask == 0] == 0).all()
    kept = masked_whiten(x, mask, shift_mean=False)
    close(masked_mean(kept, mask), masked_mean(x, mask).item(), atol=1e-5)
    close(masked_var(kept, mask), 1.0, atol=1e-5)


# -- log-probabilities and entropy -----------------------------------------------------------------


def test_logprobs_and_entropy_match_categorical():
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 11) * 4
    tokens = torch.randint(0, 11, (2, 3))
    dist = torch.distributions.Categorical(logits=logits)
    close(logprobs_from_logits(logits, tokens), dist.log_prob(tokens).tolist(), atol=1e-5)
    close(entropy_from_logits(logits), dist.entropy().tolist(), atol=1e-5)


def test_logprobs_are_float32_for_half_precision_logits():
    logits = torch.randn(1, 2, 5).bfloat16()
    tokens = torch.tensor([[0, 4]])
    out = logprobs_from_logits(logits, tokens)
    assert out.dtype == torch.float32 and entropy_from_logits(logits).dtype == torch.float32
    close(out, torch.distributions.Categorical(logits=logits.float()).log_prob(tokens).tolist(), atol=1e-5)


# -- rewards ---------------------------------------------------------------------------------------


def test_token_rewards_put_the_clipped_score_at_each_rows_last_real_token():
    scores = torch.tensor([7.0, -0.5, 3.0])
    logprobs = torch.tensor([[-1.0, -2.0, -0.5, -3.0], [-0.2, -1.0, -1.0, -1.0], [-1.0, -1.0, -1.0, -1.0]])
    ref_logprobs = torch.tensor([[-1.5, -1.0, -0.5, 0.0], [-0.4, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
    mask = torch.tensor([[1, 1, 1, 0], [1, 0, 0, 0], [0, 0, 0, 0]])  # lengths 3, 1 and 0
    rewards, kl = token_rewards(scores, logprobs, ref_logprobs, mask, kl_coef=0.5, clip=5.0)
    close(kl, [[0.5, -1.0, 0.0, 0.0], [0.2, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
    # -0.5 * kl everywhere; the score 7 is clipped to 5 at position 2; row 1 ends at position 0;
    # row 2 has no real token and gets nothing.
    close(
        rewards,
        [[-0.25, 0.5, -0.0 + 5.0, 0.0], [-0.1 + -0.5, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]],
    )
    unclipped, _ = token_rewards(scores, logprobs, ref_logprobs, mask.bool(), kl_coef=0.5, clip=None)
    close(unclipped[0, 2], 7.0)


# -- GAE -------------------------------------------------------------------------------------------

REWARDS = torch.tensor([[0.1, 0.2, 1.0], [0.5, -1.0, 0.0]])
VALUES = torch.tensor([[0.5, 0.4, 0.3], [0.2, 0.1, 9.0]])  # 9.0 sits on padding and must not leak
MASK = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])


def test_gae_gamma_1_lambda_095_by_hand():
    advantages, returns = gae(REWARDS, VALUES, MASK, gamma=1.0, lam=0.95)
    # row 0:  t=2: delta = 1.0 + 0 - 0.3 = 0.7,          A = 0.7
    #         t=1: delta = 0.2 + 0.3 - 0.4 = 0.1,        A = 0.1 + 0.95 * 0.7 = 0.765
    #         t=0: delta = 0.1 + 0.4 - 0.5 = 0.0,        A = 0.0 + 0.95 * 0.765 = 0.72675
    # row 1:  t=2 is padding: A = 0, and the value after t=1 is 0
    #         t=1: delta = -1.0 + 0 - 0.1 = -1.1,        A = -1.1
    #         t=0: delta = 0.5 + 0.1 - 0.2 = 0.4,        A = 0.4 + 0.95 * -1.1 = -0.645
    close(advantages, [[0.72675, 0.765, 0.7], [-0.645, -1.1, 0.0]])
    close(returns, [[0.72675 + 0.5, 0.765 + 0.4, 0.7 + 0.3], [-0.645 + 0.2, -1.1 + 0.1, 0.0]])


def test_gae_gamma_09_lambda_05_by_hand():
    advantages, returns = gae(REWARDS, VALUES, MASK.bool(), gamma=0.9, lam=0.5)
    # gamma * lam = 0.45
    # row 0:  t=2: delta = 1.0 - 0.3 = 0.7,                    A = 0.7
    #         t=1: delta = 0.2 + 0.9 * 0.3 - 0.4 = 0.07,       A = 0.07 + 0.45 * 0.7 = 0.385
    #         t=0: delta = 0.1 + 0.9 * 0.4 - 0.5 = -0.04,      A = -0.04 + 0.45 * 0.385 = 0.13325
    # row 1:  t=1: delta = -1.0 - 0.1 = -1.1,                  A = -1.1
    #         t=0: delta = 0.5 + 0.9 * 0.1 - 0.2 = 0.39,       A = 0.39 + 0.45 * -1.1 = -0.105
    close(advantages, [[0.13325, 0.385, 0.7], [-0.105, -1.1, 0.0]])
    close(returns, [[0.63325, 0.785, 1.0], [0.095, -1.0, 0.0]])


def test_gae_with_lambda_1_is_the_monte_carlo_return():
    advantages, returns = gae(REWARDS, VALUES, MASK, gamma=1.0, lam=1.0)
    close(returns, [[1.3, 1.2, 1.0], [-0.5, -1.0, 0.0]])
    close(advantages, [[1.3 - 0.5, 1.2 - 0.4, 1.0 - 0.3], [-0.5 - 0.2, -1.0 - 0.1, 0.0]])


# -- group advantages ------------------------------------------------------------------------------


def test_group_advantages_grpo_and_rloo_by_hand():
    scores = torch.tensor([3.0, 1.0, 0.0, 0.0, 0.5, 0.5, 0.5, 0.5])  # two prompts, four samples each
    # group 1: mean 1, deviations (2, 0, -1, -1), unbiased variance (4 + 0 + 1 + 1) / 3 = 2
    s = math.sqrt(2) + 1e-4
    close(group_advantages(scores, 4, "grpo"), [2 / s, 0.0, -1 / s, -1 / s, 0, 0, 0, 0], atol=1e-5)
    close(group_advantages(scores, 4, "grpo", normalize_std=False), [2.0, 0.0, -1.0, -1.0, 0, 0, 0, 0])
    # rloo: score - mean of the other three; the group sums to 4
    close(group_advantages(scores, 4, "rloo"), [3 - 1 / 3, 1 - 3 / 3, 0 - 4 / 3, 0 - 4 / 3, 0, 0, 0, 0])


def test_group_advantages_reject_bad_groups():
    with pytest.raises(ValueError, match="group_size"):
        group_advantages(torch.zeros(6), 4, "grpo")
    with pytest.raises(ValueError, match="group_size"):
        group_advantages(torch.zeros(4), 1, "rloo")
    with pytest.raises(ValueError, match="unknown"):
        group_advantages(torch.zeros(4), 2, "ppo")


def test_broadcast_sequence_advantage():
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]], dtype=torch.bool)
    out = broadcast_sequence_advantage(torch.tensor([2.0, -1.0]), mask)
    close(out, [[2.0, 2.0, 0.0], [-1.0, 0.0, 0.0]])


# -- advantages of a rollout batch -----------------------------------------------------------------


def test_gae_advantages_are_raw_unless_whitening_is_asked_for():
    # the case: one 10-token answer scored -2 (KL 0, a critic that says 0), batch size 1
    rewards, values, mask = torch.zeros(1, 10), torch.zeros(1, 10), torch.ones(1, 10)
    rewards[0, -1] = -2.0
    raw = [-2.0 * 0.95 ** (9 - t) for t in range(10)]  # -1.26, -1.33, ..., -1.9, -2.0
    advantages, returns = estimate_advantages(rewards, values, mask)
    close(advantages, [raw], atol=1e-5)
    close(returns, [raw], atol=1e-5)
    # whitening over the answer's own tokens: its first tokens are pushed up, as the reference never does
    whitened, returns = estimate_advantages(rewards, values, mask, whiten=True)
    close(whitened[0, [0, 1, 9]], [1.3855, 1.1187, -1.5881], atol=1e-4)
    close(returns, [raw], atol=1e-5)  # the critic's targets stay raw
    one_token, _ = estimate_advantages(torch.tensor([[-2.0]]), torch.zeros(1, 1), torch.ones(1, 1), whiten=True)
    close(one_token, [[0.0]])  # whitened, a one-token answer loses its signal entirely


@pytest.mark.parametrize("method", ["grpo", "rloo"])
def test_group_advantages_are_never_whitened_per_token(method):
    # two prompts x four answers of different lengths; the first group is all correct (+1): advantage 0
    lengths = [3, 5, 2, 4, 6, 1, 2, 3]
    scores = torch.tensor([1.0, 1.0, 1.0, 1.0, 1.0, -2.0, -0.5, -2.0])
    mask = (torch.arange(6) < torch.tensor(lengths).unsqueeze(1)).float()
    rewards = torch.zeros(8, 6).scatter_(1, torch.tensor(lengths).unsqueeze(1) - 1, scores.unsqueeze(1))
    expected = broadcast_sequence_advantage(group_advantages(scores, 4, method), mask)
    # a per-token whitening over the batch moves the first group to -0.29 (the others' token mean is not 0)
    close(masked_whiten(expected, mask)[:4, 0], [-0.2927] * 4, atol=1e-4)
    for whiten in (False, True):
        advantages, returns = estimate_advantages(rewards, torch.zeros(8, 6), mask, method, 4, whiten=whiten)
        assert (advantages[:4] == 0).all()
        close(advantages, expected.tolist(), atol=1e-6)
        close(returns, expected.tolist(), atol=1e-6)


# -- the KL statistic of the adaptive controller --------------------------------------------------

KL = torch.tensor([[0.5, 1.0, 7.0], [2.0, 0.0, 0.0], [0.1, 0.2, 0.3]])  # 7.0 sits on padding
KL_MASK = torch.tensor([[1, 1, 0], [1, 0, 0], [1, 1, 1]])


def test_sequence_kl_is_the_mean_answer_kl_over_every_process():
    mean, answers = sequence_kl(KL, KL_MASK)
    close(mean, (1.5 + 2.0 + 0.6) / 3, atol=1e-6)
    close(answers, 3.0)
    # another process holds 2 answers whose KL sums to 9.9: the statistic is over all 5 answers
    mean, answers = sequence_kl(KL, KL_MASK, reduce_sum=lambda totals: totals + torch.tensor([9.9, 2.0]))
    close(mean, (4.1 + 9.9) / 5, atol=1e-6)
    close(answers, 5.0)


def _adaptive_kl_worker(rank: int, world_size: int, init_file: str, out_file: str) -> None:
    from lightning.pytorch.strategies import DDPStrategy

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size)
    reduce_sum = partial(DDPStrategy().reduce, reduce_op="sum")  # what ErrorAwarePPO.all_reduce_sum calls under DDP
    rows = slice(0, 2) if rank == 0 else slice(2, 3)  # each process sees its own answers
    controller = AdaptiveKL(init_coef=0.3, target=1.0, horizon=10)
    for _ in range(2):
        mean, answers = sequence_kl(KL[rows], KL_MASK[rows], reduce_sum)
        controller.update(float(mean), int(answers))
    with open(f"{out_file}.{rank}", "w") as f:
        json.dump(controller.value, f)
    dist.destroy_process_group()


def test_adaptive_kl_takes_the_same_step_on_two_gloo_processes(tmp_path):
    mp.spawn(_adaptive_kl_worker, args=(2, str(tmp_path / "rendezvous"), str(tmp_path / "beta")), nprocs=2, join=True)
    betas = [json.loads((tmp_path / f"beta.{rank}").read_text()) for rank in (0, 1)]
    single = AdaptiveKL(init_coef=0.3, target=1.0, horizon=10)
    for _ in range(2):
        single.update(float(sequence_kl(KL, KL_MASK)[0]), 3)  # one process with all three answers
    # mean KL 4.1 / 3 = 1.37 over target 1: error +0.2 (clipped), 3 answers: beta *= 1.06 per update
    assert betas == pytest.approx([single.value, single.value]) and single.value == pytest.approx(0.3 * 1.06**2)


# -- losses ----------------------------------------------------------------------------------------


def test_policy_loss_by_hand():
    ratios = torch.tensor([[1.5, 0.9, 1.1, 1.5], [0.5, 1.0, 2.0, 2.0]])
    advantages = torch.tensor([[1.0, 1.0, -2.0, -1.0], [-1.0, 3.0, 5.0, 5.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 0.0, 0.0]])
    old = torch.tensor([[-1.0, -2.0, -0.5, -3.0], [-0.7, -1.2, -2.0, -0.1]])
    logprobs = (old + ratios.log()).requires_grad_()
    loss, stats = policy_loss(logprobs, old, advantages, mask, clip=0.2)
    # per token max(-A r, -A clip(r, 0.8, 1.2)):
    #   r=1.5 A=1:  max(-1.5, -1.2) = -1.2  clipped     r=0.9 A=1:  max(-0.9, -0.9) = -0.9
    #   r=1.1 A=-2: max(2.2, 2.2)   = 2.2               r=1.5 A=-1: max(1.5, 1.2)   = 1.5 (pessimistic: unclipped)
    #   r=0.5 A=-1: max(0.5, 0.8)   = 0.8   clipped     r=1.0 A=3:  max(-3, -3)     = -3
    close(loss, (-1.2 - 0.9 + 2.2 + 1.5 + 0.8 - 3.0) / 6, atol=1e-5)
    close(stats["clip_fraction"], 2 / 6)
    close(stats["ratio_mean"], (1.5 + 0.9 + 1.1 + 1.5 + 0.5 + 1.0) / 6, atol=1e-5)
    logs = [math.log(r) for r in (1.5, 0.9, 1.1, 1.5, 0.5, 1.0)]
    close(stats["approx_kl"], sum(0.5 * lr**2 for lr in logs) / 6, atol=1e-5)
    loss.backward()
    # the clipped branch is constant in the policy, so clipped tokens (and padding) give no gradient
    assert logprobs.grad[0, 0] == 0 and logprobs.grad[1, 0] == 0 and (logprobs.grad[1, 2:] == 0).all()
    close(logprobs.grad[0, 1], -1.0 * 0.9 / 6, atol=1e-6)


def test_value_loss_by_hand():
    values = torch.tensor([[1.0, 0.6, 1.0], [-1.0, 0.0, 100.0]])
    old_values = torch.tensor([[0.5, 0.5, 0.5], [0.0, 0.5, 0.0]])
    returns = torch.tensor([[1.5, 0.0, 0.5], [0.0, -1.0, 0.0]])
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]])
    loss, stats = value_loss(values, old_values, returns, mask, clip=0.2)
    # clipped values: 0.7, 0.6, 0.7, -0.2, 0.3; per token max((v-R)^2, (vc-R)^2):
    #   max(0.25, 0.64) = 0.64 clipped   max(0.36, 0.36) = 0.36   max(0.25, 0.04) = 0.25
    #   max(1.00, 0.04) = 1.00           max(1.00, 1.69) = 1.69 clipped
    close(loss, 0.5 * (0.64 + 0.36 + 0.25 + 1.0 + 1.69) / 5, atol=1e-5)
    close(stats["value_clip_fraction"], 2 / 5)


def test_explained_variance():
    returns = torch.tensor([[1.0, 2.0, 3.0, 50.0]])
    mask = torch.tensor([[1, 1, 1, 0]])
    close(explained_variance(returns, returns, mask), 1.0)
    close(explained_variance(torch.zeros_like(returns), returns, mask), 0.0)
    # residuals (0, 0, 1): variance 1/3 against Var(R) = 1
    close(explained_variance(torch.tensor([[1.0, 2.0, 2.0, 0.0]]), returns, mask), 2 / 3, atol=1e-6)
    assert explained_variance(torch.zeros(1, 3), torch.ones(1, 3), torch.ones(1, 3)).isnan()


# -- KL controllers ----------------------------------------------------------------------------


def test_fixed_kl_never_moves():
    kl = FixedKL(0.3)
    kl.update(100.0, 64)
    assert kl.value == 0.3


def test_adaptive_kl_follows_the_formula():
    kl = AdaptiveKL(init_coef=0.3, target=6.0, horizon=100)
    kl.update(9.0, 10)  # error 9/6 - 1 = 0.5, clipped to 0.2: grows
    assert kl.value == pytest.approx(0.3 * (1 + 0.2 * 10 / 100))
    kl.update(5.4, 10)  # error 5.4/6 - 1 = -0.1: shrinks
    assert kl.value == pytest.approx(0.3 * 1.02 * (1 - 0.1 * 10 / 100))
    kl.update(torch.tensor(0.0), 100)  # error -1 clipped to -0.2; a tensor KL is accepted
    assert kl.value == pytest.approx(0.3 * 1.02 * 0.99 * 0.8)
