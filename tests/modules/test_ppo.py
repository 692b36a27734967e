"""ErrorAwarePPO: the reference policy under LoRA, rollouts and scoring, and PPO raising a reward."""

from pathlib import Path

import pytest
import torch

from tlkit import rl
from tlkit.calls import render_call
from tlkit.data.datamodule import DataFile, ToolCallDataModule
from tlkit.modules.ppo import ErrorAwarePPO
from tlkit.rl import AdaptiveKL, FixedKL

ROOT = Path(__file__).resolve().parents[2]
MODEL = str(ROOT / "experiments/models/tiny-llama")
LORA = {"r": 4, "lora_alpha": 8, "target_modules": ["q_proj", "v_proj"]}


def storages(module: torch.nn.Module) -> dict[int, int]:
    """Distinct parameter storages (by address) and their sizes."""
    return {p.untyped_storage().data_ptr(): p.untyped_storage().nbytes() for p in module.parameters()}


def test_lora_reference_is_the_policy_without_adapter_no_second_copy(tokenizer):
    torch.manual_seed(0)
    module = ErrorAwarePPO(MODEL, tokenizer, lora=LORA, critic="shared")
    assert module.reference is None
    policy_bytes = sum(storages(module.policy).values())
    everything = storages(module)
    # the module holds the policy (base + adapter) and a value head, nothing more: no reference copy
    assert sum(everything.values()) == policy_bytes + sum(storages(module.value_head).values())
    for name, p in module.policy.named_parameters():  # make the adapter change the output
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.1)
    ids = torch.tensor([tokenizer("Assistant: getWeather(city='Paris')")["input_ids"]])
    mask = torch.ones_like(ids)
    reference = module.reference_logprobs(ids, mask, ids[:, -5:])
    base = ErrorAwarePPO(MODEL, tokenizer, lora=None, critic="shared")
    base.policy.load_state_dict({k.replace("base_model.model.", "").replace("base_layer.", ""): v
                                 for k, v in module.policy.state_dict().items() if "lora_" not in k})
    logits, _ = base.response_logits(base.policy, ids, mask, 5)
    from tlkit.rl import logprobs_from_logits

    assert torch.allclose(reference, logprobs_from_logits(logits, ids[:, -5:]), atol=1e-5)
    adapted, _ = module.response_logits(module.policy, ids, mask, 5)
    assert not torch.allclose(reference, logprobs_from_logits(adapted, ids[:, -5:]), atol=1e-3)


def test_without_lora_the_reference_is_a_frozen_copy(tokenizer):
    module = ErrorAwarePPO(MODEL, tokenizer, critic="separate")
    assert set(storages(module.reference)).isdisjoint(storages(module.policy))
    assert not any(p.requires_grad for p in module.reference.parameters())
    assert set(storages(module.value_trunk)).isdisjoint(storages(module.policy))


def test_group_advantages_need_sampling(tokenizer):
    with pytest.raises(ValueError, match="do_sample"):
        ErrorAwarePPO(MODEL, tokenizer, advantage="grpo", do_sample=False)


@pytest.fixture(scope="module")
def prompts(tokenizer):
    """Real Seal-Tools prompts (each up to its gold call), from the shipped subset."""
    seal_tools = DataFile(str(ROOT / "experiments/data/seal_tools/dev_subset.jsonl"), "seal_tools")
    dm = ToolCallDataModule(MODEL, train=[seal_tools], batch_size=4, max_length=256, train_target="prompts")
    return dm.prompt_collate("train", dm.train_prompts()[:4])


def test_response_logits_are_the_full_logits_of_the_response(tokenizer, prompts):
    """Only the response's positions go through the LM head; they equal the full forward's, left padding included."""
    torch.manual_seed(0)
    module = ErrorAwarePPO(MODEL, tokenizer, critic="shared").eval()
    assert (prompts.attention_mask == 0).any()  # real prompts of different lengths: left padding
    width = 6
    sequences = torch.cat([prompts.input_ids, torch.randint(3, 4000, (prompts.input_ids.shape[0], width))], dim=1)
    mask = torch.cat([prompts.attention_mask, torch.ones(prompts.input_ids.shape[0], width, dtype=torch.long)], dim=1)
    with torch.no_grad():
        logits, hidden = module.response_logits(module.policy, sequences, mask, width, hidden_states=True)
        full = module.policy(input_ids=sequences, attention_mask=mask, position_ids=(mask.cumsum(-1) - 1).clamp(min=0),
                             use_cache=False).logits
    assert logits.shape == (sequences.shape[0], width, full.shape[-1]) and hidden.shape[1] == width
    assert torch.allclose(logits, full[:, -width - 1 : -1], atol=1e-5)


def test_rollout_scores_by_error_category(tokenizer, prompts):
    torch.manual_seed(0)
    module = ErrorAwarePPO(MODEL, tokenizer, max_new_tokens=8, critic="shared")
    rollout, stats = module.rollout(prompts)
    # a fresh model writes no call: every answer is a format error, rewarded -2
    assert [c.value for c in stats["categories"]] == ["format_error"] * 4
    assert stats["scores"].tolist() == [-2.0] * 4
    assert rollout.response_mask.shape == rollout.logprobs.shape == rollout.advantages.shape == (
        4, rollout.response_mask.shape[1])
    assert rollout.sequences.shape[1] == prompts.input_ids.shape[1] + rollout.response_mask.shape[1]


class FavourFirstHalf(ErrorAwarePPO):
    """A task whose reward favours one tool: answer tokens from the first half of the vocabulary
    stand for the favoured tool (+1), the rest for another (-1.5, wrong tool). A fresh model cannot
    write calls yet, so the tool is read off the first answer token."""

    def score(self, texts, batch, call_format):
        first = self.last_responses[:, 0]
        return torch.where(first < len(self.tokenizer) // 2, 1.0, -1.5), []


def favoured_probability(module, prompts) -> float:
    with torch.no_grad():
        logits = module.policy(input_ids=prompts.input_ids, attention_mask=prompts.attention_mask,
                               position_ids=(prompts.attention_mask.cumsum(-1) - 1).clamp(min=0)).logits[:, -1]
    return float(logits.softmax(-1)[:, : len(module.tokenizer) // 2].sum(-1).mean())


@pytest.mark.parametrize("advantage", ["gae", "grpo"])
def test_a_few_ppo_steps_raise_the_mean_reward(tokenizer, prompts, advantage, monkeypatch):
    torch.manual_seed(0)
    module = FavourFirstHalf(MODEL, tokenizer, advantage=advantage, do_sample=True, max_new_tokens=2, group_size=4,
                             kl=FixedKL(0.0), ppo_epochs=2, mini_batch_size=4, critic="shared",
                             log_samples_every_n_steps=0)
    import tlkit.modules.ppo as ppo

    original = ppo.generate

    def remember(*args, **kwargs):
        module.last_responses = original(*args, **kwargs)
        return module.last_responses

    monkeypatch.setattr(ppo, "generate", remember)
    optimizers = module.configure_optimizers()
    actor = optimizers[0] if isinstance(optimizers, list) else optimizers
    critic = optimizers[1] if isinstance(optimizers, list) else None
    for group in actor.param_groups:
        group["lr"] = 3e-2
    monkeypatch.setattr(module, "optimizers", lambda: (actor, critic) if critic else actor)
    monkeypatch.setattr(module, "manual_backward", lambda loss: loss.backward())
    monkeypatch.setattr(module, "clip_gradients", lambda *a, **k: None)
    monkeypatch.setattr(module, "log_rollout", lambda *a, **k: None)
    before = favoured_probability(module, prompts)
    for _ in range(6):
        module.training_step(prompts, 0)
    after = favoured_probability(module, prompts)
    assert after > before + 0.3, (before, after)  # seen: 0.50 -> 0.95 (gae), 0.50 -> 1.00 (grpo)


def ppo_from_one_checkpoint(tokenizer, **kwargs) -> ErrorAwarePPO:
    """The tiny model holds no weights, so policy and reference are two random draws: make them one, as when both
    load the same checkpoint (KL 0 before the first update)."""
    module = ErrorAwarePPO(MODEL, tokenizer, **kwargs)
    module.reference.load_state_dict(module.policy.state_dict())
    return module


def script_answers(monkeypatch, tokenizer, answers: list[str], end: bool = True) -> None:
    """Rollouts generate `answers` (tokenised, then the end-of-turn token unless not `end`), one per row."""
    import tlkit.modules.ppo as ppo

    rows = [tokenizer(" " + a, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id] * end for a in answers]
    width = max(len(r) for r in rows)
    responses = torch.tensor([r + [tokenizer.pad_token_id] * (width - len(r)) for r in rows])
    monkeypatch.setattr(ppo, "generate", lambda *args, **kwargs: responses)


def subset(batch, n: int):
    return type(batch)(batch.name, batch.call_format, batch.examples[:n], batch.input_ids[:n], batch.attention_mask[:n])


def test_a_wrong_answer_alone_in_its_batch_gets_raw_negative_advantages_by_default(tokenizer, prompts, monkeypatch):
    """paper/ppo.yaml's batch of 1: a 10-token unfinished call scores -2 (format error); by default (as the reference)
    every token's advantage is negative. Whitened over its own tokens, the first ones were +1.39, +1.12, ..."""
    module = ppo_from_one_checkpoint(tokenizer, critic="shared")
    torch.nn.init.zeros_(module.value_head.weight)  # a critic that says 0: the advantages are readable
    torch.nn.init.zeros_(module.value_head.bias)
    gold = render_call(prompts.examples[0].gold[0])[0]  # getHealthWorkforce(location='country', occupation='nurses')
    unfinished = tokenizer.decode(tokenizer(" " + gold, add_special_tokens=False)["input_ids"][:10]).strip()
    script_answers(monkeypatch, tokenizer, [unfinished], end=False)
    rollout, stats = module.rollout(subset(prompts, 1))
    assert stats["scores"].tolist() == [-2.0] and rollout.response_mask.tolist() == [[1.0] * 10]
    assert torch.allclose(rollout.advantages, torch.tensor([[-2.0 * 0.95 ** (9 - t) for t in range(10)]]), atol=1e-5)


@pytest.mark.parametrize("method", ["grpo", "rloo"])
def test_a_group_of_correct_answers_gets_zero_advantage_even_with_whitening(tokenizer, prompts, monkeypatch, method):
    module = ppo_from_one_checkpoint(tokenizer, advantage=method, do_sample=True, group_size=4, whiten_advantages=True)
    first, second = (render_call(example.gold[0])[0] for example in prompts.examples[:2])
    # prompt 1: four right calls, two after a thought (lengths differ); prompt 2: right, an argument missing, no call
    script_answers(monkeypatch, tokenizer, [first, first, f"I will look it up.\n{first}", f"Thought: nurses.\n{first}",
                                            second, second.split(",")[0] + ")", "I cannot help.", "Hmm"])
    rollout, stats = module.rollout(subset(prompts, 2))
    assert stats["scores"].tolist() == [1.0, 1.0, 1.0, 1.0, 1.0, -0.5, -2.0, -2.0]
    assert (rollout.advantages[:4] == 0).all()
    expected = rl.group_advantages(stats["scores"], 4, method)[4:]  # KL 0: the policy is the reference
    assert torch.allclose(rollout.advantages[4:, 0], expected, atol=1e-6)


def run_training_steps(module, prompts, monkeypatch, steps: int) -> tuple[list[dict], list[float]]:
    """Run `module.training_step` without a Trainer; the logs of each step, and the KL coefficient its rewards used."""
    optimizers = module.configure_optimizers()
    monkeypatch.setattr(module, "optimizers", lambda: optimizers)
    monkeypatch.setattr(module, "manual_backward", lambda loss: loss.backward())
    monkeypatch.setattr(module, "clip_gradients", lambda *a, **k: None)
    logs, used = [], []
    monkeypatch.setattr(module, "log_dict", lambda values, **k: logs.append(dict(values)))
    monkeypatch.setattr(module, "log", lambda *a, **k: None)
    token_rewards = rl.token_rewards
    monkeypatch.setattr(rl, "token_rewards", lambda *a: used.append(a[4]) or token_rewards(*a))
    for _ in range(steps):
        module.training_step(prompts, 0)
    return logs, used


def test_sampled_rollouts_are_scored_with_the_tempered_distribution(tokenizer, prompts, monkeypatch):
    torch.manual_seed(0)
    module = ErrorAwarePPO(MODEL, tokenizer, do_sample=True, temperature=0.7, max_new_tokens=6, critic="shared",
                           ppo_epochs=1)
    rollout, _ = module.rollout(prompts)
    sequences, attention_mask, mask = rollout.sequences, rollout.attention_mask, rollout.response_mask.bool()
    width = mask.shape[1]
    responses = sequences[:, -width:]
    reference_logprobs = module.reference_logprobs(sequences, attention_mask, responses)
    for model, logprobs in ((module.policy, rollout.logprobs), (module.reference, reference_logprobs)):
        with torch.no_grad():
            positions = (attention_mask.cumsum(-1) - 1).clamp(min=0)
            logits = model(input_ids=sequences, attention_mask=attention_mask, position_ids=positions).logits
        tempered = torch.log_softmax(logits[:, -width - 1 : -1] / 0.7, -1)
        assert torch.allclose(logprobs[mask], tempered.gather(-1, responses.unsqueeze(-1)).squeeze(-1)[mask], atol=1e-5)
    ratios, policy_loss = [], rl.policy_loss

    def recording_ratios(*args):
        loss, stats = policy_loss(*args)
        ratios.append(float(stats["ratio_mean"]))
        return loss, stats

    monkeypatch.setattr(rl, "policy_loss", recording_ratios)
    run_training_steps(module, prompts, monkeypatch, 1)
    assert ratios[0] == pytest.approx(1.0, abs=1e-6)  # the first update starts from the distribution it sampled


def test_the_logged_kl_coef_is_the_one_the_step_used(tokenizer, prompts, monkeypatch):
    module = ppo_from_one_checkpoint(tokenizer, critic="shared", max_new_tokens=4, ppo_epochs=1,
                                     kl=AdaptiveKL(0.3, 6.0, horizon=8))
    logs, used = run_training_steps(module, prompts, monkeypatch, 2)
    # KL 0 (policy = reference before the first update) is below target: beta shrinks after each step
    assert used[0] == 0.3 and used[1] == pytest.approx(0.3 * (1 - 0.2 * 4 / 8)) and module.kl.value < used[1]
    assert [step["ppo/kl_coef"] for step in logs] == used


def test_the_adaptive_kl_steps_on_every_processs_kl(tokenizer, prompts, monkeypatch):
    module = ppo_from_one_checkpoint(tokenizer, critic="shared", max_new_tokens=4, ppo_epochs=1,
                                     kl=AdaptiveKL(0.3, 6.0, horizon=8))
    # another process's 4 answers have a summed KL of 52.8; here KL is 0: the mean over 8 answers is 6.6
    monkeypatch.setattr(module, "all_reduce_sum", lambda totals: totals + torch.tensor([52.8, 4.0]))
    logs, _ = run_training_steps(module, prompts, monkeypatch, 1)
    assert logs[0]["ppo/kl"] == pytest.approx(6.6)
    assert module.kl.value == pytest.approx(0.3 * (1 + 0.1 * 8 / 8))  # error 6.6 / 6 - 1 over 8 answers


def test_fit_with_the_shipped_ppo_yaml_writes_the_reward_scalars(tmp_path, monkeypatch, capsys):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from tlkit.cli import main

    monkeypatch.chdir(ROOT)
    main(["fit", "--config", "experiments/smoke_ppo.yaml", f"--model.init_args.model={MODEL}",
          "--trainer.limit_train_batches=2", "--trainer.val_check_interval=2", "--trainer.limit_val_batches=1",
          "--validate_before_fit=true",
          "--data.batch_size=2", "--model.init_args.max_new_tokens=8", "--model.init_args.log_samples_every_n_steps=1",
          f"--trainer.logger.init_args.save_dir={tmp_path}", f"--data.cache_dir={tmp_path / 'cache'}"])
    events = EventAccumulator(str(tmp_path / "smoke_ppo/version_0")).Reload()
    scalars = set(events.Tags()["scalars"])
    for tag in ("reward_mean", "kl", "kl_coef", "entropy", "clip_fraction", "approx_kl", "value_loss",
                "explained_variance", "response_length", "rollout_seconds", "update_seconds", "category/format_error"):
        assert f"ppo/{tag}" in scalars, sorted(scalars)
    assert len(events.Scalars("ppo/reward_mean")) == 2
    assert "val/test_in_domain_subset/ts" in scalars
    # validation's mean reward of its greedy answers: the category shares priced by the reward table
    from tlkit.irm import Category, ErrorCategoryReward

    shares = {c: events.Scalars(f"val/test_in_domain_subset/category/{c.value}")[-1].value for c in Category}
    priced = sum(share * ErrorCategoryReward()(c) for c, share in shares.items())
    assert abs(events.Scalars("val/test_in_domain_subset/reward")[-1].value - priced) < 1e-5
    assert len(events.Scalars("val/test_in_domain_subset/reward")) == 2  # before training, and after
    assert "ppo/samples/text_summary" in events.Tags()["tensors"]
    assert (tmp_path / "smoke_ppo/version_0/hf_model/config.json").exists()
    first, last = (f"{v.value:+.2f}" for v in events.Scalars("ppo/reward_mean"))
    out = capsys.readouterr().out
    assert f"rollouts (2), first rollout -> last rollout: mean reward {first} -> {last}" in out
    # the bar counts rollouts (training batches), not the optimiser steps PPO takes within each
    assert "Training batches: 100%" in out and "2/2 [" in out
    assert "mean reward of the greedy answers, the same prompts: test_in_domain_subset " in out


def test_policy_starts_from_a_weighted_sft_checkpoint(tokenizer, tmp_path):
    import lightning as L

    from tlkit.modules.sft import WeightedSFT

    torch.manual_seed(0)
    sft = WeightedSFT(MODEL, tokenizer, eval_generation=False)
    trainer = L.Trainer(logger=False, enable_checkpointing=False, max_steps=0, accelerator="cpu")
    trainer.strategy.connect(sft)
    trainer.save_checkpoint(tmp_path / "sft.ckpt")
    ppo = ErrorAwarePPO(str(tmp_path / "sft.ckpt"), tokenizer, critic="shared")
    for (name, a), (_, b) in zip(sft.policy.state_dict().items(), ppo.policy.state_dict().items()):
        assert torch.equal(a, b), name
