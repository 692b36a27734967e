"""Rendering and tokenisation: spans, key-token masks through the offset mapping, MAE masks."""

from pathlib import Path

import pytest

from tlkit.data.features import encode, fit_prompt
from tlkit.data.readers import read_trajectories
from tlkit.data.render import render, render_prompt
from tlkit.mae import DEFAULT_ERROR_REGEXES, ErrorDetector, mark_untrained
from tlkit.records import Message, Tool, ToolCall, Trajectory

TOOLS = tuple(Tool(name, f"{name} tool",
                   {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]})
              for name in ("getPaperDetails", "getPapersByKeywords", "finish"))


def trajectory(gold: str, feedback: str = "ok", tools=TOOLS) -> Trajectory:
    return Trajectory("t", tools, (
        Message("user", "Find papers on tool learning."),
        Message("assistant", "", (ToolCall(gold, {"query": "tool learning"}),)),
        Message("tool", feedback),
        Message("assistant", "Here they are."),
    ))


def key_token_texts(record: Trajectory, tokenizer, format="paper") -> list[tuple[int, int]]:
    features = encode(record, tokenizer, format)
    return [i for i, k in enumerate(features["key_mask"]) if k], features


@pytest.mark.parametrize("format", ["paper", "json"])
def test_key_tokens_cover_the_design_doc_positions(tokenizer, format):
    record = trajectory("getPapersByKeywords")
    text = render(record, format, tokenizer).text
    name_start = text.index("getPapersByKeywords", text.index("Assistant:"))
    keys, features = key_token_texts(record, tokenizer, format)
    offsets = tokenizer(text, return_offsets_mapping=True)["offset_mapping"]
    covered = [(offsets[i][0], offsets[i][1]) for i in keys]
    # one key token covers the name's first character, one the "s" after "getPaper"
    assert len(keys) == 2
    assert covered[0][0] <= name_start < covered[0][1]
    assert covered[1][0] <= name_start + len("getPaper") < covered[1][1]
    assert all(features["turn_ids"][i] == 0 for i in keys)

    keys, _ = key_token_texts(trajectory("finish"), tokenizer, format)
    assert len(keys) == 1


def test_prefix_names_key_token_follows_the_name(tokenizer):
    tools = tuple(Tool(n) for n in ("search", "search_all"))
    record = Trajectory("p", tools, (Message("user", "q"), Message("assistant", "", (ToolCall("search", {}),))))
    text = render(record, "paper", tokenizer).text
    after_name = text.index("search()", text.index("Assistant:")) + len("search")
    keys, _ = key_token_texts(record, tokenizer)
    offsets = tokenizer(text, return_offsets_mapping=True)["offset_mapping"]
    assert any(offsets[i][0] <= after_name < offsets[i][1] for i in keys)


def test_targets_are_the_assistant_turns_and_prompt_is_their_prefix(tokenizer):
    record = trajectory("getPaperDetails")
    rendered = render(record, "paper", tokenizer)
    assert [t.message_index for t in rendered.targets] == [1, 3]
    first = rendered.targets[0]
    assert rendered.text[first.start:first.end] == " getPaperDetails(query='tool learning')" + tokenizer.eos_token
    prompt = render_prompt(record, 1, "paper", tokenizer)
    assert rendered.text.startswith(prompt) and prompt.endswith("Assistant:")
    features = encode(record, tokenizer, "paper")
    supervised = tokenizer.decode([t for t, turn in zip(features["input_ids"], features["turn_ids"]) if turn == 0])
    assert supervised.strip() == "getPaperDetails(query='tool learning')" + tokenizer.eos_token


def test_mae_masks_the_failed_call_but_keeps_it_in_context(tokenizer):
    failed = trajectory("getPaperDetails", "Status Code: 404. Response: not found")
    features = encode(mark_untrained(failed, ErrorDetector()), tokenizer, "paper")
    assert features["n_turns"] == 1 and features["masked"] == [f"regex: {DEFAULT_ERROR_REGEXES[0]}"]
    text = tokenizer.decode(features["input_ids"])
    assert "getPaperDetails(query='tool learning')" in text  # still context
    trained = tokenizer.decode([t for t, turn in zip(features["input_ids"], features["turn_ids"]) if turn >= 0])
    assert "getPaperDetails" not in trained and "Here they are." in trained
    assert encode(failed, tokenizer, "paper")["n_turns"] == 2  # MAE off: both turns train


def test_truncation_is_counted(tokenizer):
    features = encode(trajectory("finish"), tokenizer, "paper", max_length=16)
    assert features["truncated"] and len(features["input_ids"]) == 16 == features["length"]
    assert features["n_turns"] == 2 and features["cut_turns"] == 2  # the prompt alone fills 16 tokens
    whole = len(encode(trajectory("finish"), tokenizer, "paper")["input_ids"])
    assert encode(trajectory("finish"), tokenizer, "paper", max_length=whole - 1)["cut_turns"] == 0  # last turn: cut


def test_a_long_prompt_leaves_out_its_oldest_exchanges_never_the_tools(tokenizer):
    """API-Bank's AddAlarm dialogue: 3 exchanges before the AddAlarm call (message 9), 408 tokens in all."""
    api_bank = Path(__file__).resolve().parents[2] / "experiments/data/api_bank"
    (record,) = [r for r in read_trajectories(str(api_bank), "api_bank") if r.id.endswith("/AddAlarm-level-1-1")]
    full = render_prompt(record, 9, "paper", tokenizer)
    head = full[: full.index("\nUser: ") + 1]  # the system prompt and the tool list
    assert "def AddAlarm(" in head and len(tokenizer(full)["input_ids"]) == 408
    users = [i for i, m in enumerate(record.messages) if m.role == "user"]
    assert users == [0, 2, 7]
    # the smallest cut that fits: nothing, the first exchange (2 messages), the first two (7 messages)
    for max_length, left_out in ((408, 0), (407, 2), (300, 7), (241, 7)):
        prompt, n, fits = fit_prompt(record, 9, "paper", tokenizer, max_length)
        kept_from = full.index(f"User: {record.messages[left_out].content}")
        assert fits and n == left_out and prompt == head + full[kept_from:], max_length
        assert len(tokenizer(prompt)["input_ids"]) <= max_length
    # too long even with only the last exchange: the shortest prompt, whole, and said so
    assert fit_prompt(record, 9, "paper", tokenizer, 240) == (head + full[full.index("User: 8 am"):], 7, False)


TEMPLATE = (
    "{% if tools %}<|tools|>{{ tools | tojson }}</s>{% endif %}"
    "{% for m in messages %}<|{{ m.role }}|>{% if m.tool_calls %}{% for c in m.tool_calls %}"
    "{{ c.function.name }}({{ c.function.arguments | tojson }}){% endfor %}"
    "{% else %}{{ m.content }}{% endif %}</s>{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def test_chat_template_format_finds_turns_and_key_tokens(tokenizer):
    templated = tokenizer.__class__.from_pretrained(tokenizer.name_or_path)
    templated.chat_template = TEMPLATE
    record = trajectory("getPapersByKeywords")
    rendered = render(record, "chat_template", templated)
    first = rendered.targets[0]
    assert rendered.text[first.start:first.end] == 'getPapersByKeywords({"query": "tool learning"})</s>'
    assert rendered.text[:first.start].endswith("<|assistant|>")
    keys, features = key_token_texts(record, templated, "chat_template")
    assert len(keys) == 2 and features["n_turns"] == 2


def test_nothing_after_the_last_target_is_fed(tokenizer):
    """Tokens after the last trained turn carry no loss and cannot change an earlier one: cut."""
    record = Trajectory("t", TOOLS, (
        Message("user", "Find papers."),
        Message("assistant", "Which topic?"),
        Message("user", "Tool learning."),
        Message("assistant", "", (ToolCall("getPapersByKeywords", {"query": "tool learning"}),)),
        Message("tool", "NameError: name 'getPapersByKeywords' is not defined"),
    ))
    features = encode(mark_untrained(record, ErrorDetector()), tokenizer, "paper")
    assert features["n_turns"] == 1 and features["turn_ids"][-1] == 0
    assert tokenizer.decode(features["input_ids"]).endswith("Which topic?" + tokenizer.eos_token)
    assert encode(record, tokenizer, "paper")["n_turns"] == 2  # without MAE the call trains, so it is kept
