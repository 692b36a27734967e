"""`ErrorAwarePPO`: PPO against the error-category reward (IRM), with Lightning manual optimisation.

One training step is one rollout batch: generate each prompt's call, score it by error category,
then several PPO epochs of mini-batch updates for the actor and the critic. The maths lives in
`tlkit/rl.py` as pure functions.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any, Literal, NamedTuple

import torch
from lightning.pytorch.cli import OptimizerCallable
from torch import nn

from tlkit import rl
from tlkit.data.batching import PromptBatch
from tlkit.irm import Category, ErrorCategoryReward
from tlkit.models import LoraSettings, apply_lora, load_causal_lm
from tlkit.modules.base import ToolCallModule
from tlkit.modules.evaluation import generate, stop_token_ids
from tlkit.scoring.rules import judge


class Rollout(NamedTuple):
    """One rollout batch; tensors (b, p + t) cover prompt and response, response parts (b, t)."""

    sequences: torch.Tensor  # prompt (left-padded) + response (right-padded) token ids
    attention_mask: torch.Tensor
    response_mask: torch.Tensor  # (b, t) 1.0 on generated tokens up to and including end-of-turn
    logprobs: torch.Tensor  # (b, t) of the policy that generated them
    values: torch.Tensor  # (b, t) critic values (zeros without a critic)
    advantages: torch.Tensor  # (b, t)
    returns: torch.Tensor  # (b, t)


def load_policy(path: str, tokenizer: Any, dtype: str | None) -> nn.Module:
    """A model source (`tlkit.models.resolve_model_source`), or a WeightedSFT Lightning checkpoint (`.ckpt`)."""
    if path.endswith(".ckpt"):
        from tlkit.modules.sft import WeightedSFT

        return WeightedSFT.load_from_checkpoint(path, tokenizer=tokenizer, map_location="cpu",
                                                eval_generation=False).policy
    return load_causal_lm(path, dtype)


def trunk(model: nn.Module) -> nn.Module:
    """The transformer body of a causal LM (no vocabulary projection)."""
    return model.get_decoder() if hasattr(model, "get_decoder") else model.base_model


class ErrorAwarePPO(ToolCallModule):
    """PPO whose reward is the error category of each generated call (the paper's IRM).

    Args:
        model: Where the policy starts: a Hugging Face folder (e.g. a WeightedSFT run's
            `hf_model/`), a GGUF file or bundled short name (docs/models.md), or a WeightedSFT
            checkpoint (`.ckpt`).
        tokenizer: The tokenizer; linked from the DataModule by the CLI, not set in YAML.
        reward: The reward per error category; None for the paper's table.
        lora: peft `LoraConfig` keywords. With LoRA the reference policy is the same network with
            the adapter disabled (no second copy of the weights); without, a frozen copy.
        dtype: Weight dtype to load in; None keeps the checkpoint's.
        advantage: `gae` (PPO with a critic), or `grpo` / `rloo`: group-relative advantages over
            `group_size` sampled answers per prompt, no critic.
        group_size: Samples per prompt for grpo / rloo.
        critic: `separate`: the value head sits on its own copy of the model; `shared`: on the
            policy's trunk (hidden states detached, so the value loss trains only the head).
        kl: KL-penalty coefficient controller: `tlkit.rl.FixedKL` or `tlkit.rl.AdaptiveKL`; None for
            a fixed 0.3 (the reference's launch script; its trainer silently used 0.4).
        reward_clip: The scalar reward is clipped to +-reward_clip.
        gamma: GAE discount.
        lam: GAE lambda.
        clip_range: PPO ratio clip (epsilon).
        value_clip: Value-loss clip.
        whiten_advantages: Whiten GAE advantages over each rollout batch's tokens. Off by default, as in
            the reference: with few answers per batch it flips the sign of a wrong answer's first tokens.
            Never applies to grpo / rloo, whose advantages are already normalised per group.
        ppo_epochs: Passes over each rollout batch.
        mini_batch_size: Rollouts per optimiser step.
        max_grad_norm: Gradient-norm clip for actor and critic.
        do_sample: Sample rollouts (True) or greedy (False, the reference).
        temperature: Sampling temperature; the policy's and the reference's log-probabilities are then
            taken from the same tempered distribution, so that the PPO ratio and the KL are those of
            what was sampled.
        max_new_tokens: Longest generated answer, in rollouts and in evaluation.
        log_samples_every_n_steps: How often decoded rollouts go to TensorBoard as text.
        eval_generation: Generation-based TS / PI / CF on the val / test sets.
        export: At the end of fit, write the policy in Hugging Face format to `<run>/hf_model`.
        merge_lora: Merge the LoRA adapter into the exported weights.
        actor_optimizer: Optimiser of the policy.
        critic_optimizer: Optimiser of the critic.
    """

    def __init__(
        self,
        model: str,
        tokenizer: Any = None,
        reward: ErrorCategoryReward | None = None,
        lora: LoraSettings | None = None,
        dtype: str | None = None,
        advantage: Literal["gae", "grpo", "rloo"] = "gae",
        group_size: int = 4,
        critic: Literal["separate", "shared"] = "separate",
        kl: rl.KLController | None = None,
        reward_clip: float = 5.0,
        gamma: float = 1.0,
        lam: float = 0.95,
        clip_range: float = 0.2,
        value_clip: float = 0.2,
        whiten_advantages: bool = False,
        ppo_epochs: int = 3,
        mini_batch_size: int = 4,
        max_grad_norm: float = 1.0,
        do_sample: bool = False,
        temperature: float = 1.0,
        max_new_tokens: int = 128,
        log_samples_every_n_steps: int = 10,
        eval_generation: bool = True,
        export: bool = True,
        merge_lora: bool = True,
        actor_optimizer: OptimizerCallable = torch.optim.AdamW,
        critic_optimizer: OptimizerCallable = torch.optim.AdamW,
    ):
        reward = reward or ErrorCategoryReward()
        # Validation also reports the mean reward of its greedy answers: the same prompts before and after.
        super().__init__(tokenizer, eval_generation, max_new_tokens, export, merge_lora, reward)
        self.save_hyperparameters(ignore=["tokenizer", "reward", "kl", "actor_optimizer", "critic_optimizer"])
        if advantage != "gae" and not do_sample:
            raise ValueError(f"advantage: {advantage} compares {group_size} answers per prompt: set do_sample: true")
        self.automatic_optimization = False
        self.reward = reward
        self.kl = kl or rl.FixedKL(0.3)
        self.actor_optimizer, self.critic_optimizer = actor_optimizer, critic_optimizer
        self.policy = apply_lora(load_policy(model, tokenizer, dtype), lora)
        self.reference = None if lora else load_policy(model, tokenizer, dtype).requires_grad_(False).eval()
        hidden = self.policy.config.hidden_size
        self.value_trunk = None
        if advantage == "gae" and critic == "separate":
            self.value_trunk = trunk(apply_lora(load_policy(model, tokenizer, dtype), lora))
        self.value_head = nn.Linear(hidden, 1) if advantage == "gae" else None

    # --- forward passes -------------------------------------------------------------------
    def response_logits(self, model: nn.Module, sequences: torch.Tensor, attention_mask: torch.Tensor, width: int,
                        hidden_states: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Logits that predict the last `width` tokens (b, width, v), and the matching hidden states."""
        positions = (attention_mask.cumsum(-1) - 1).clamp(min=0)  # left padding: count real tokens
        # Only the last width + 1 positions go through the LM head (a (hidden x vocab) matmul each).
        out = model(input_ids=sequences, attention_mask=attention_mask, position_ids=positions,
                    use_cache=False, output_hidden_states=hidden_states, logits_to_keep=width + 1)
        hidden = out.hidden_states[-1][:, -width - 1 : -1] if hidden_states else None
        logits = out.logits[:, :-1]
        if self.hparams.do_sample and self.hparams.temperature != 1.0:  # the distribution rollouts are sampled from
            logits = logits / self.hparams.temperature
        return logits, hidden

    def reference_logprobs(self, sequences: torch.Tensor, attention_mask: torch.Tensor,
                           responses: torch.Tensor) -> torch.Tensor:
        if self.reference is not None:
            logits, _ = self.response_logits(self.reference, sequences, attention_mask, responses.shape[1])
            return rl.logprobs_from_logits(logits, responses)
        with self.policy.disable_adapter():  # LoRA: the base weights are the reference
            logits, _ = self.response_logits(self.policy, sequences, attention_mask, responses.shape[1])
        return rl.logprobs_from_logits(logits, responses)

    def values(self, sequences: torch.Tensor, attention_mask: torch.Tensor, width: int,
               policy_hidden: torch.Tensor | None = None) -> torch.Tensor:
        """Critic values of the response tokens, (b, width)."""
        if self.value_trunk is None:  # shared trunk: the policy's hidden states, detached
            return self.value_head(policy_hidden.detach().float()).squeeze(-1)
        positions = (attention_mask.cumsum(-1) - 1).clamp(min=0)
        hidden = self.value_trunk(input_ids=sequences, attention_mask=attention_mask, position_ids=positions,
                                  use_cache=False)
        return self.value_head(hidden.last_hidden_state[:, -width - 1 : -1].float()).squeeze(-1)

    # --- rollout --------------------------------------------------------------------------
    def score(self, texts: list[str], batch: PromptBatch, call_format: str) -> tuple[torch.Tensor, list[Category]]:
        categories = [judge(text, e.gold, e.tools, e.meta, e.format, call_format, self.reward.strict).category
                      for text, e in zip(texts, batch.examples)]
        return torch.tensor([self.reward(c) for c in categories], device=self.device), categories

    @torch.no_grad()
    def rollout(self, batch: PromptBatch) -> tuple[Rollout, dict[str, Any]]:
        hp = self.hparams
        if hp.advantage != "gae":  # k answers per prompt, consecutive
            k = hp.group_size
            batch = PromptBatch(batch.name, batch.call_format, [e for e in batch.examples for _ in range(k)],
                                batch.input_ids.repeat_interleave(k, 0), batch.attention_mask.repeat_interleave(k, 0))
        self.policy.eval()
        stop_ids = stop_token_ids(self.policy, self.tokenizer)
        responses = generate(self.policy, self.tokenizer, batch.input_ids, batch.attention_mask, hp.max_new_tokens,
                             stop_ids, hp.do_sample, hp.temperature)
        self.policy.train()
        eos = self.tokenizer.eos_token_id
        # Real tokens: everything up to and including the first stop (end-of-turn) token.
        stops = torch.isin(responses, torch.tensor(stop_ids, device=responses.device)).long()
        ended_before = stops.cumsum(-1) - stops
        response_mask = (ended_before == 0).float()
        texts = self.tokenizer.batch_decode(responses * response_mask.long() + eos * (1 - response_mask.long()),
                                            skip_special_tokens=True)
        scores, categories = self.score(texts, batch, batch.call_format)

        sequences = torch.cat([batch.input_ids, responses], dim=1)
        attention_mask = torch.cat([batch.attention_mask, response_mask.long()], dim=1)
        width = responses.shape[1]
        logits, hidden = self.response_logits(self.policy, sequences, attention_mask, width,
                                              hidden_states=self.value_head is not None and self.value_trunk is None)
        logprobs = rl.logprobs_from_logits(logits, responses)
        ref_logprobs = self.reference_logprobs(sequences, attention_mask, responses)
        kl_coef = self.kl.value  # logged as the β of this step: the controller updates it after the step
        rewards, kl = rl.token_rewards(scores, logprobs, ref_logprobs, response_mask, kl_coef, hp.reward_clip)
        values = torch.zeros_like(logprobs)  # no critic for grpo / rloo
        if hp.advantage == "gae":
            values = self.values(sequences, attention_mask, width, hidden)
        advantages, returns = rl.estimate_advantages(rewards, values, response_mask, hp.advantage, hp.group_size,
                                                     hp.gamma, hp.lam, hp.whiten_advantages)
        mean_kl, answers = rl.sequence_kl(kl, response_mask, self.all_reduce_sum)  # every process's answers
        stats = {"scores": scores, "categories": categories, "texts": texts, "examples": batch.examples,
                 "kl": float(mean_kl), "answers": int(answers), "kl_coef": kl_coef,
                 "response_length": response_mask.sum(-1).float().mean()}
        return Rollout(sequences, attention_mask, response_mask, logprobs, values, advantages, returns), stats

    # --- update ---------------------------------------------------------------------------
    def training_step(self, batch: PromptBatch, batch_idx: int) -> None:
        if not isinstance(batch, PromptBatch):
            raise TypeError("ErrorAwarePPO trains on prompts: set data.train_target: prompts in the config")
        hp = self.hparams
        started = time.perf_counter()
        rollout, stats = self.rollout(batch)
        rollout_seconds = time.perf_counter() - started
        actor_opt, critic_opt = self.optimizers() if self.value_head is not None else (self.optimizers(), None)
        n, width = rollout.sequences.shape[0], rollout.response_mask.shape[1]
        totals: Counter[str] = Counter()
        updates = 0
        for _ in range(hp.ppo_epochs):
            for idx in torch.randperm(n, device=self.device).split(hp.mini_batch_size):
                mask = rollout.response_mask[idx]
                if not mask.any():
                    continue
                shared = self.value_head is not None and self.value_trunk is None
                logits, hidden = self.response_logits(self.policy, rollout.sequences[idx], rollout.attention_mask[idx],
                                                      width, shared)
                logprobs = rl.logprobs_from_logits(logits, rollout.sequences[idx, -width:])
                loss, pstats = rl.policy_loss(logprobs, rollout.logprobs[idx], rollout.advantages[idx], mask,
                                              hp.clip_range)
                self.optimizer_update(actor_opt, loss)
                totals.update({"policy_loss": float(loss.detach()),
                               "entropy": float(rl.masked_mean(rl.entropy_from_logits(logits.detach()), mask)),
                               **{k: float(v) for k, v in pstats.items()}})
                if critic_opt is not None:
                    values = self.values(rollout.sequences[idx], rollout.attention_mask[idx], width, hidden)
                    vloss, vstats = rl.value_loss(values, rollout.values[idx], rollout.returns[idx], mask,
                                                  hp.value_clip)
                    self.optimizer_update(critic_opt, vloss)
                    totals.update({"value_loss": float(vloss.detach()), **{k: float(v) for k, v in vstats.items()}})
                updates += 1
        self.kl.update(stats["kl"], stats["answers"])
        self.log_rollout(stats, rollout, totals, updates, rollout_seconds,
                         time.perf_counter() - started - rollout_seconds)

    def all_reduce_sum(self, x: torch.Tensor) -> torch.Tensor:
        """`x` summed over processes by the Trainer's strategy (DDP, FSDP, ...); unchanged in one process."""
        return x if self._trainer is None else self.trainer.strategy.reduce(x, reduce_op="sum")

    def optimizer_update(self, optimizer: torch.optim.Optimizer, loss: torch.Tensor) -> None:
        optimizer.zero_grad()
        self.manual_backward(loss)
        self.clip_gradients(optimizer, gradient_clip_val=self.hparams.max_grad_norm, gradient_clip_algorithm="norm")
        optimizer.step()

    def log_rollout(self, stats: dict[str, Any], rollout: Rollout, totals: Counter, updates: int,
                    rollout_seconds: float, update_seconds: float) -> None:
        n = len(stats["categories"])
        logs = {"ppo/reward_mean": stats["scores"].mean(), "ppo/kl": stats["kl"], "ppo/kl_coef": stats["kl_coef"],
                "ppo/response_length": stats["response_length"], "ppo/rollout_seconds": rollout_seconds,
                "ppo/update_seconds": update_seconds}
        logs.update({f"ppo/{k}": v / max(updates, 1) for k, v in totals.items()})
        if self.value_head is not None:
            logs["ppo/explained_variance"] = rl.explained_variance(rollout.values, rollout.returns,
                                                                   rollout.response_mask)
        shares = Counter(c.value for c in stats["categories"])
        logs.update({f"ppo/category/{c.value}": shares[c.value] / n for c in Category})
        self.log_dict(logs, prog_bar=False, batch_size=n)
        self.log("reward", stats["scores"].mean(), prog_bar=True, logger=False, batch_size=n)
        experiment = getattr(self.logger, "experiment", None)
        every = self.hparams.log_samples_every_n_steps
        if every and self.global_step % every == 0 and hasattr(experiment, "add_text") and self.trainer.is_global_zero:
            lines = [f"**{e.id}** {c.value} ({float(s):+.2f})  \nanswer: `{t.strip()[:300]}`  \n"
                     f"gold: `{'; '.join(f'{g.name}({g.arguments})' for g in e.gold)}`"
                     for e, t, c, s in list(zip(stats["examples"], stats["texts"], stats["categories"],
                                                stats["scores"]))[:4]]
            experiment.add_text("ppo/samples", "\n\n".join(lines), self.global_step)

    def configure_optimizers(self) -> Any:
        actor = self.actor_optimizer(p for p in self.policy.parameters() if p.requires_grad)
        if self.value_head is None:
            return actor
        critic_params = list(self.value_head.parameters())
        if self.value_trunk is not None:
            critic_params += [p for p in self.value_trunk.parameters() if p.requires_grad]
        return [actor, self.critic_optimizer(critic_params)]
