"""Tokenisation: a rendered trajectory becomes token ids and the per-token masks the losses need.

Every span is mapped through the tokenizer's offset mapping (characters to tokens), never by
matching token strings, so any fast tokenizer works.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tlkit.data.render import PromptFormat, render, render_prompt
from tlkit.pkt import key_char_offsets
from tlkit.records import Trajectory


def token_at(starts: np.ndarray, ends: np.ndarray, char: int) -> int | None:
    """Index of the token whose [start, end) covers character `char`."""
    i = int(np.searchsorted(ends, char, side="right"))
    return i if i < len(starts) and starts[i] <= char < ends[i] else None


def encode(
    trajectory: Trajectory,
    tokenizer: Any,
    format: PromptFormat = "paper",
    max_length: int | None = None,
) -> dict[str, Any]:
    """Token ids and masks for one trajectory; every assistant turn not marked untrained (MAE) is a target.

    Returns lists aligned with `input_ids`: `turn_ids` (index of the supervised turn a token
    belongs to, -1 for context), `key_mask`, `argument_end_mask`; and `masked` (the MAE reason of
    each assistant turn that got no loss), `n_turns`, `truncated` (trained tokens lay past
    `max_length` and were cut) and `cut_turns` (trained turns with no token left).
    """
    rendered = render(trajectory, format, tokenizer)
    encoding = tokenizer(rendered.text, return_offsets_mapping=True, add_special_tokens=True)
    offsets = np.asarray(encoding["offset_mapping"], dtype=np.int64).reshape(-1, 2)
    starts, ends = offsets[:, 0], offsets[:, 1]
    real = ends > starts  # special tokens carry empty spans
    turn_ids = np.full(len(starts), -1, dtype=np.int64)
    key_mask = np.zeros(len(starts), dtype=bool)
    argument_end_mask = np.zeros(len(starts), dtype=bool)
    offered = [tool.name for tool in trajectory.tools]

    trained = [t for t in rendered.targets if trajectory.messages[t.message_index].untrained is None]
    for turn, target in enumerate(trained):
        turn_ids[real & (ends > target.start) & (starts < target.end)] = turn
        for call in target.calls:
            name = rendered.text[call.name[0] : call.name[1]]
            for offset in key_char_offsets(name, offered):
                if (i := token_at(starts, ends, call.name[0] + offset)) is not None:
                    key_mask[i] = True
            for argument in call.arguments:
                if (i := token_at(starts, ends, argument.value[1] - 1)) is not None:
                    argument_end_mask[i] = True

    ids = list(encoding["input_ids"])
    supervised = np.flatnonzero(turn_ids >= 0)
    # Tokens after the last target carry no loss and change no earlier one (causal): not fed at all.
    end = int(supervised[-1]) + 1 if len(supervised) else len(ids)
    keep = end if max_length is None else min(end, max_length)
    truncated = len(supervised) > 0 and keep < end
    cut_turns = len(np.unique(turn_ids[turn_ids >= 0])) - len(np.unique(turn_ids[:keep][turn_ids[:keep] >= 0]))
    return {
        "input_ids": ids[:keep],
        "turn_ids": turn_ids[:keep].tolist(),
        "key_mask": key_mask[:keep].tolist(),
        "argument_end_mask": argument_end_mask[:keep].tolist(),
        "length": keep,
        "n_turns": len(trained),
        "masked": sorted(m.untrained for m in trajectory.messages if m.untrained is not None),
        "truncated": truncated,
        "cut_turns": cut_turns,
    }


def fit_prompt(
    trajectory: Trajectory, index: int, format: PromptFormat, tokenizer: Any, max_length: int
) -> tuple[str, int, bool]:
    """The prompt for the assistant turn at `index` in at most `max_length` tokens, leaving out the oldest exchanges.

    An exchange runs from a user turn to the next; the system prompt, the tool list and the last
    exchange (its user turn and what follows it) always stay: the format can lose old turns, never
    the tools. Returns the prompt, how many messages were left out, and whether it fits; when even
    the last exchange alone is too long, the shortest prompt, whole.
    """
    messages = trajectory.messages[: index + 1]
    first = 1 if messages and messages[0].role == "system" else 0
    starts = [first] + [i for i in range(first + 1, index) if messages[i].role == "user"]
    for start in starts:
        kept = Trajectory(trajectory.id, trajectory.tools, (*messages[:first], *messages[start:]), trajectory.meta)
        prompt = render_prompt(kept, index - (start - first), format, tokenizer)
        if len(tokenizer(prompt, add_special_tokens=True)["input_ids"]) <= max_length:
            return prompt, start - first, True
    return prompt, start - first, False
