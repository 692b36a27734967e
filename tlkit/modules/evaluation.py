"""Generation-based evaluation, shared by every module: generate each eval prompt's answer, judge
it by its eval set's rule (`tlkit.scoring.rules.judge`: BFCL's AST check for `bfcl` files, RoTBench's for
`rotbench`, the generic rule otherwise; TS / PI / CF and the error category, as `tlkit score`
does), log, and write every prediction to a JSONL file in the run folder.
"""

from __future__ import annotations

import json
import re
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch import nn

from tlkit.data.batching import PromptBatch
from tlkit.irm import ErrorCategoryReward
from tlkit.records import RecordError
from tlkit.scoring.metrics import (
    ContentFillingAccuracy,
    ErrorCategoryRate,
    ParameterIdentificationAccuracy,
    RecordCount,
    ToolSelectionAccuracy,
)
from tlkit.scoring.report import eval_sets_table
from tlkit.scoring.rules import AnswerKeyError, judge


def end_of_turn_ids(tokenizer: Any) -> list[int]:
    """The special token the chat template writes right after an assistant's text (`<|im_end|>`,
    `<|eot_id|>`, `</s>`); empty without a template or where it writes plain text there."""
    if not getattr(tokenizer, "chat_template", None):
        return []
    probe = "PROBE-7f3a"
    try:
        messages = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": probe}]
        text = tokenizer.apply_chat_template(messages, tokenize=False)
    except Exception:  # noqa: BLE001 - a template that cannot render this probe (it needs a system turn) has no say
        return []
    after = text[text.rfind(probe) + len(probe) :]
    ids = tokenizer(after, add_special_tokens=False)["input_ids"][:1]
    special = set(tokenizer.all_special_tokens) | set(tokenizer.get_added_vocab())
    return ids if ids and tokenizer.convert_ids_to_tokens(ids[0]) in special else []


def stop_token_ids(model: Any, tokenizer: Any) -> list[int]:
    """Where an answer ends: the tokenizer's EOS, the model's generation-config EOS ids (Llama 3.1 lists
    `<|eom_id|>` there) and the chat template's end-of-turn token."""
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    configured = configured if isinstance(configured, list) else [configured]
    ids = [tokenizer.eos_token_id, *configured, *end_of_turn_ids(tokenizer)]
    return list(dict.fromkeys(i for i in ids if i is not None))


def generate(model: Any, tokenizer: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor, max_new_tokens: int,
             stop_ids: list[int], do_sample: bool = False, temperature: float = 1.0) -> torch.Tensor:
    """New tokens for left-padded prompts, stopping at any of `stop_ids` (`stop_token_ids`); shape (b, new)."""
    out = model.generate(
        input_ids=input_ids, attention_mask=attention_mask, max_new_tokens=max_new_tokens, do_sample=do_sample,
        temperature=temperature if do_sample else None, top_p=None, top_k=None,
        eos_token_id=stop_ids, pad_token_id=tokenizer.pad_token_id, use_cache=True,
    )
    return out[:, input_ids.shape[1]:]


def answer_texts(tokenizer: Any, new_tokens: torch.Tensor, stops: list[int], keep_special: bool) -> list[str]:
    """Each answer's text, up to its first stop token. `keep_special` keeps markers such as Llama's
    `<|python_tag|>` or Mistral's `[TOOL_CALLS]`, which are special tokens in their tokenizers."""
    texts = []
    for row in new_tokens.tolist():
        end = next((i for i, token in enumerate(row) if token in stops), len(row))
        texts.append(tokenizer.decode(row[:end], skip_special_tokens=not keep_special))
    return texts


PREDICTION_FILE = re.compile(r"(?P<stage>[a-z]+)-step(?P<step>\d+)-(?P<name>.+?)(?:\.rank\d+)?\.jsonl")


def prediction_file(stage: str, step: int, name: str, rank: int | None = None) -> str:
    """`<stage>-step<step>-<eval set>[.rank<k>].jsonl`: one eval set's answers (`PREDICTION_FILE` reads it back)."""
    return f"{stage}-step{step}-{name}{'' if rank is None else f'.rank{rank}'}.jsonl"


def slot(key: str) -> str:
    """A ModuleDict key for a log key (no dots allowed there)."""
    return key.replace("/", ":").replace(".", "_")


class EvalSet(nn.Module):
    """The metrics of one eval set; they sync across processes and count each record once."""

    def __init__(self):
        super().__init__()
        self.ts, self.pi, self.cf = ToolSelectionAccuracy(), ParameterIdentificationAccuracy(), ContentFillingAccuracy()
        self.categories, self.n = ErrorCategoryRate(), RecordCount()

    def metrics(self) -> tuple:
        return self.ts, self.pi, self.cf, self.categories, self.n


class GenerationEvaluation(nn.Module):
    """Scores generated calls per eval set; `step` per prompt batch, `epoch_end` logs and writes."""

    def __init__(self, max_new_tokens: int = 128, samples_to_log: int = 4, reward: ErrorCategoryReward | None = None):
        super().__init__()
        self.max_new_tokens, self.samples_to_log = max_new_tokens, samples_to_log
        self.reward = reward  # PPO's: each set's mean reward is logged too (`<stage>/<set>/reward`)
        self.sets = nn.ModuleDict()
        self.rows: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.seconds = 0.0

    def step(self, module: L.LightningModule, model: Any, tokenizer: Any, batch: PromptBatch,
             stage: str) -> list[dict[str, Any]]:
        """Generate, parse and score one prompt batch; returns its prediction rows."""
        started = time.perf_counter()
        stops = stop_token_ids(model, tokenizer)  # the template's end of turn is found by rendering: once a batch
        new_tokens = generate(model, tokenizer, batch.input_ids, batch.attention_mask, self.max_new_tokens, stops)
        texts = answer_texts(tokenizer, new_tokens, stops, keep_special=batch.call_format == "auto")
        self.seconds += time.perf_counter() - started
        key = f"{stage}/{batch.name}"
        if slot(key) not in self.sets:
            self.sets[slot(key)] = EvalSet().to(module.device)
        metrics = self.sets[slot(key)]
        verdicts = []
        for example, text in zip(batch.examples, texts):
            try:
                verdict = judge(text, example.gold, example.tools, example.meta, example.format, batch.call_format,
                                self.reward is not None and self.reward.strict)  # PPO's own judging
            except AnswerKeyError as e:
                raise RecordError(example.source, example.id, e.field, e.problem) from None
            verdicts.append(verdict)
            self.rows[key].append({
                "id": example.id, "index": example.index, "prediction": text,
                "gold": [{"name": c.name, "arguments": c.arguments} for c in example.gold],
                "category": verdict.category.value, "ts": verdict.ts, "pi": verdict.pi, "cf": verdict.cf,
            })
        for metric in metrics.metrics():
            metric.update(verdicts, [example.index for example in batch.examples])
        return self.rows[key][-len(batch.examples):]

    def epoch_end(self, module: L.LightningModule, stage: str) -> None:
        trainer = module.trainer
        log_dir = trainer.log_dir  # a collective under DDP: every rank asks
        table = []
        for key in sorted({k for k in self.rows if k.startswith(f"{stage}/")}):
            metrics = self.sets[slot(key)]
            values = {"ts": metrics.ts.compute(), "pi": metrics.pi.compute(), "cf": metrics.cf.compute()}
            shares = metrics.categories.compute()
            values.update({f"category/{c}": v for c, v in shares.items()})
            if self.reward is not None:  # each record counted once, as the shares are
                values["reward"] = sum(share * self.reward(c) for c, share in shares.items())
            if stage != "predict":  # Lightning does not log while predicting; the table and files say it all
                module.log_dict({f"{key}/{name}": value for name, value in values.items()}, add_dataloader_idx=False)
            table.append((key.split("/", 1)[1], int(metrics.n.compute()), values))
            self.write_rows(key, log_dir, trainer)
            for metric in metrics.metrics():
                metric.reset()
        if stage != "predict":
            module.log(f"{stage}/generation_seconds", self.seconds, reduce_fx="max", add_dataloader_idx=False)
        if trainer.is_global_zero and table and stage in ("test", "predict"):
            print(eval_sets_table(table))
        for key in [k for k in self.rows if k.startswith(f"{stage}/")]:
            del self.rows[key]
        self.seconds = 0.0

    def write_rows(self, key: str, log_dir: str | None, trainer: L.Trainer) -> None:
        """Every prediction to `<run>/predictions/`, and a few samples to TensorBoard."""
        rows = self.rows[key]
        if log_dir is None:
            return
        stage, name = key.split("/", 1)
        folder = Path(log_dir) / "predictions"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / prediction_file(stage, trainer.global_step, name,
                                        trainer.global_rank if trainer.world_size > 1 else None)
        path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))
        experiment = getattr(trainer.logger, "experiment", None)
        if trainer.is_global_zero and hasattr(experiment, "add_text"):
            samples = "\n\n".join(
                f"**{row['id']}** ({row['category']})  \nprediction: `{row['prediction'].strip()[:300]}`  \n"
                f"gold: `{json.dumps(row['gold'])[:300]}`"
                for row in rows[: self.samples_to_log]
            )
            experiment.add_text(f"{key}/samples", samples, trainer.global_step)


