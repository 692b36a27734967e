"""Public tool-use formats in (OpenAI / TRL, Hermes, xLAM records) and the call syntaxes chat models
write out (Hermes / Qwen, Llama 3.x, Mistral, OpenAI objects), each checked on real published text."""

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from tlkit.calls import parse_calls, parse_turn
from tlkit.cli import main
from tlkit.data.readers import read_trajectories
from tlkit.models import load_tokenizer
from tlkit.modules.evaluation import answer_texts, end_of_turn_ids, stop_token_ids
from tlkit.records import RecordError, ToolCall
from tlkit.score import main as score_main

ROOT = Path(__file__).resolve().parents[2]
FORMATS = ROOT / "tests/fixtures/formats"
TEMPLATES = ROOT / "tests/fixtures/chat_templates"


# --- data in --------------------------------------------------------------------------------------

def test_openai_and_trl_records():
    first, second = read_trajectories(str(FORMATS / "openai_trl.jsonl"), "openai")
    assert [t.name for t in first.tools] == ["control_light"]
    assert first.tools[0].parameters["required"] == ["room", "state"]
    assert [m.role for m in first.messages] == ["user", "assistant", "tool", "assistant"]
    assert first.messages[1].tool_calls == (ToolCall("control_light", {"room": "living room", "state": "on"}),)
    assert first.messages[2].content == "The lights in the living room are now on."
    # OpenAI's own shape: arguments as JSON text, content null, a tool_call_id on the result.
    assert second.messages[1].tool_calls == (ToolCall("get_weather", {"latitude": 48.8566, "longitude": 2.3522}),)
    assert second.messages[1].content == "" and second.messages[2].content == "14"
    assert second.id == "openai_trl/2"


def test_the_tlkit_reader_points_openai_records_to_the_openai_format():
    with pytest.raises(RecordError, match="tools\\[0\\].name.*read it with format 'openai'"):
        list(read_trajectories(str(FORMATS / "openai_trl.jsonl"), "tlkit"))


def test_hermes_record():
    (record,) = read_trajectories(str(FORMATS / "hermes_function_calling.json"), "hermes")
    assert record.id == "753d8365-0e54-43b1-9514-3f9b819fd31c"
    (tool,) = record.tools
    assert tool.name == "search_flights" and tool.parameters["properties"]["class"]["enum"] == [
        "economy", "business", "first"]
    assert [m.role for m in record.messages] == ["system", "user", "assistant", "tool", "assistant"]
    system = record.messages[0].content
    assert "search_flights" not in system and system.startswith("You are a function calling AI model.")
    assert record.messages[2].tool_calls == (ToolCall("search_flights", {
        "departure_city": "Los Angeles", "destination_city": "Auckland", "departure_date": "2023-07-10",
        "return_date": "2023-07-24", "class": "economy", "flexible_cancellation": True}),)
    assert json.loads(record.messages[3].content)["name"] == "search_flights"  # unwrapped from <tool_response>


def test_xlam_records():
    first, second = read_trajectories(str(FORMATS / "xlam_function_calling.json"), "xlam")
    assert first.id == "0" and second.id == "xlam_function_calling/1"
    assert first.messages[0].content == "Where can I find live giveaways for beta access and games?"
    assert first.messages[1].tool_calls == (ToolCall("live_giveaways_by_type", {"type": "beta"}),
                                            ToolCall("live_giveaways_by_type", {"type": "game"}))
    assert first.tools[0].parameters["properties"]["type"] == {
        "type": "string", "description": "The type of giveaways to retrieve (e.g., game, loot, beta).",
        "default": "game"}
    assert first.tools[0].parameters["required"] == ["type"]
    search = second.tools[3]
    assert search.parameters["required"] == [] and search.parameters["properties"]["page"]["type"] == "integer"
    assert second.messages[1].tool_calls[0] == ToolCall("retreive_collections", {})


def test_a_misspelt_format_fails_when_the_config_is_parsed(monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    with pytest.raises(SystemExit) as exit:
        main(["fit", "--config", "experiments/smoke.yaml", "--data.train=[{path: x.json, format: openai_chat}]",
              "--print_config"])
    assert exit.value.code not in (0, None)
    error = capsys.readouterr().err
    assert "openai_chat" in error and all(name in error for name in ("'openai'", "'hermes'", "'xlam'", "'tlkit'"))


# --- calls out: answers rendered by real chat templates --------------------------------------------

GOLD = ToolCall("get_weather", {"latitude": 48.8566, "longitude": 2.3522})
TOOLS = [{"type": "function", "function": {
    "name": "get_weather", "description": "Get current temperature.", "parameters": {
        "type": "object", "properties": {"latitude": {"type": "number"}, "longitude": {"type": "number"}}}}}]
USER = {"role": "user", "content": "What's the weather like in Paris today?"}
CALL = {"role": "assistant", "tool_calls": [{"id": "call12345", "type": "function",
                                              "function": {"name": GOLD.name, "arguments": GOLD.arguments}}]}


def template_answer(file: str, end_of_turn: str) -> str:
    """What the template writes for the assistant's call, without its end-of-turn token."""
    tokenizer = load_tokenizer(str(ROOT / "experiments/models/tiny-llama"))
    tokenizer.chat_template = (TEMPLATES / file).read_text()
    full = tokenizer.apply_chat_template([USER, CALL], tools=TOOLS, tokenize=False)
    prompt = tokenizer.apply_chat_template([USER], tools=TOOLS, tokenize=False, add_generation_prompt=True)
    return full[len(prompt):].rstrip("\n").removesuffix(end_of_turn)


@pytest.mark.parametrize("file, end_of_turn, syntax", [
    ("qwen2.5-instruct.jinja", "<|im_end|>", "hermes"),
    ("llama-3.2-3b-instruct.jinja", "<|eot_id|>", "llama"),
    ("mistral-nemo-instruct-2407.jinja", "</s>", "mistral"),
])
def test_template_answers_parse_in_their_syntax_and_with_auto(file, end_of_turn, syntax):
    answer = template_answer(file, end_of_turn)
    assert parse_calls(answer, syntax) == [GOLD]
    assert parse_calls(answer, "auto") == [GOLD]


def test_json_reads_llama_parameters_and_openai_objects():
    llama = template_answer("llama-3.2-3b-instruct.jinja", "<|eot_id|>")
    assert llama.startswith('{"name": "get_weather", "parameters": {')
    assert parse_calls(llama, "json") == [GOLD]  # not get_weather() with every argument missing
    openai = json.dumps({"type": "function", "function": {"name": GOLD.name, "arguments": json.dumps(GOLD.arguments)}})
    assert parse_calls(openai, "json") == [GOLD]


@pytest.mark.parametrize("builtin, answer", [
    (True, '<|python_tag|>brave_search.call(query="Who won NBA in 2024?")<|eom_id|>'),
    (False, '{"name": "brave_search", "parameters": {"query": "Who won NBA in 2024?"}}<|eot_id|>'),
])
def test_llama_3_1_python_tag(builtin, answer):
    tokenizer = load_tokenizer(str(ROOT / "experiments/models/tiny-llama"))
    tokenizer.chat_template = (TEMPLATES / "llama-3.1-tool-call-excerpt.jinja").read_text()
    call = {"role": "assistant", "tool_calls": [{"type": "function", "function": {
        "name": "brave_search", "arguments": {"query": "Who won NBA in 2024?"}}}]}
    text = tokenizer.apply_chat_template([call], tokenize=False,
                                         **({"builtin_tools": ["brave_search"]} if builtin else {}))
    assert text == "<|start_header_id|>assistant<|end_header_id|>\n\n" + answer
    body = answer.removesuffix("<|eom_id|>").removesuffix("<|eot_id|>")
    assert parse_calls(body, "llama") == parse_calls(body, "auto") == [
        ToolCall("brave_search", {"query": "Who won NBA in 2024?"})]


def test_mistral_v13_name_args_form():
    # Magistral-Small-2509 / Ministral-3 (mistral-common tokenizer v13) write `[TOOL_CALLS]NAME[ARGS]{JSON}`.
    text = '[TOOL_CALLS]get_weather[ARGS]{"city": "Zürich"}'
    assert parse_calls(text, "mistral") == parse_calls(text, "auto") == [ToolCall("get_weather", {"city": "Zürich"})]


def test_hermes_dataset_calls_and_free_text_before_them():
    (record,) = json.loads((FORMATS / "hermes_function_calling.json").read_text())
    answer = record["conversations"][2]["value"]  # Python-literal dict, `True`
    assert parse_calls(answer, "hermes")[0].arguments["flexible_cancellation"] is True
    qwen = template_answer("qwen2.5-instruct.jinja", "<|im_end|>")
    assert parse_turn("I will look that up.\n" + qwen, "auto") == [GOLD]
    assert parse_calls(qwen + "\nmore text", "hermes") is None
    assert parse_calls("The weather is fine.", "auto") is None


def test_score_auto_reads_tool_call_wrapped_predictions(tmp_path, capsys):
    data = FORMATS / "openai_trl.jsonl"
    wrap = lambda call: (  # noqa: E731
        "<tool_call>\n" + json.dumps({"name": call.name, "arguments": call.arguments}) + "\n</tool_call>")
    rows = [{"id": "openai_trl/1",
             "prediction": wrap(ToolCall("control_light", {"room": "living room", "state": "on"}))},
            {"id": "openai_trl/2", "prediction": wrap(GOLD)}]
    predictions = tmp_path / "p.jsonl"
    predictions.write_text("".join(json.dumps(r) + "\n" for r in rows))
    ts = {}
    for call_format in ("json", "auto"):
        summary = score_main(["--data", str(data), "--data-format", "openai", "--predictions", str(predictions),
                              "--out", str(tmp_path / f"{call_format}.jsonl"), "--call-format", call_format])
        ts[call_format] = summary["TS"]
    assert ts == {"json": 0.0, "auto": 100.0}


# --- generation: where answers stop, and how they are read -----------------------------------------

def tokenizer_with(template: str, *specials: str):
    tokenizer = load_tokenizer(str(ROOT / "experiments/models/tiny-llama"))
    tokenizer.add_special_tokens({"additional_special_tokens": list(specials)})
    tokenizer.chat_template = (TEMPLATES / template).read_text()
    return tokenizer


@pytest.mark.parametrize("template, token", [
    ("qwen2.5-instruct.jinja", "<|im_end|>"),
    ("llama-3.2-3b-instruct.jinja", "<|eot_id|>"),
    ("mistral-nemo-instruct-2407.jinja", "</s>"),
])
def test_end_of_turn_token_of_real_templates(template, token):
    tokenizer = tokenizer_with(template, "<|im_end|>", "<|eot_id|>", "<|start_header_id|>", "<|end_header_id|>")
    assert end_of_turn_ids(tokenizer) == [tokenizer.convert_tokens_to_ids(token)]


def test_stop_ids_join_eos_generation_config_and_end_of_turn():
    tokenizer = tokenizer_with("qwen2.5-instruct.jinja", "<|im_end|>", "<|eom_id|>")
    im_end, eom = tokenizer.convert_tokens_to_ids(["<|im_end|>", "<|eom_id|>"])
    model = SimpleNamespace(generation_config=SimpleNamespace(eos_token_id=[tokenizer.eos_token_id, eom]))
    assert stop_token_ids(model, tokenizer) == [tokenizer.eos_token_id, eom, im_end]


def test_answers_end_at_the_first_stop_token_and_keep_call_markers():
    tokenizer = tokenizer_with("qwen2.5-instruct.jinja", "<|im_end|>", "<|python_tag|>")
    im_end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    ids = tokenizer("<|python_tag|>" + '{"name": "f", "parameters": {}}', add_special_tokens=False)["input_ids"]
    row = torch.tensor([ids + [im_end] + tokenizer("after", add_special_tokens=False)["input_ids"]
                        + [tokenizer.pad_token_id]])
    (kept,) = answer_texts(tokenizer, row, [im_end, tokenizer.eos_token_id], keep_special=True)
    assert kept.replace(" ", "") == '<|python_tag|>{"name":"f","parameters":{}}'
    (dropped,) = answer_texts(tokenizer, row, [im_end], keep_special=False)
    assert "<|python_tag|>" not in dropped and "after" not in dropped


def test_auto_answers_are_judged_by_their_own_syntax_in_evaluation():
    """Evaluation hands the raw answer to the one judge; `auto` finds the Hermes call in it."""
    answer = template_answer("qwen2.5-instruct.jinja", "").split("<|im_end|>")[0]  # answer_texts cuts at the stop
    assert parse_turn(answer, "auto") == [GOLD]
    assert parse_turn("It is sunny.", "auto") is None
