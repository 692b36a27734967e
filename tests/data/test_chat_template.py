"""The `paper` chat template builds, from OpenAI-style messages and tools, exactly the text and tokens training
rendered: on the shipped data, on hand-made corner cases, and in an export."""

from pathlib import Path

import pytest
from tokenizers import processors
from transformers import AutoTokenizer

from tlkit.data.argument_types import normalise_calls
from tlkit.data.chat_template import PAPER_CHAT_TEMPLATE, paper_chat_template
from tlkit.data.datamodule import ToolCallDataModule
from tlkit.data.readers import read_trajectories
from tlkit.data.render import chat_messages, render, render_prompt
from tlkit.models import load_tokenizer
from tlkit.records import Trajectory

ROOT = Path(__file__).resolve().parents[2]
MODEL = str(ROOT / "experiments/models/tiny-llama")
SOURCES = [
    ("experiments/data/bfcl_v3/BFCL_v3_simple.json", "bfcl"),
    ("experiments/data/bfcl_v3/BFCL_v3_multiple.json", "bfcl"),
    ("tests/fixtures/bfcl_v3/BFCL_v3_parallel_multiple.json", "bfcl"),
    ("experiments/data/seal_tools/dev_subset.jsonl", "seal_tools"),
    ("experiments/data/glaive_toolcall/glaive_toolcall_en_subset.json", "glaive"),
    ("experiments/data/toolalpaca_golden/golden-eval_real.json", "toolalpaca_golden"),
    ("experiments/data/api_bank", "api_bank"),
    ("experiments/data/toolbench_examples", "toolbench"),
    ("tests/fixtures/formats/openai_trl.jsonl", "openai"),
    ("tests/fixtures/formats/hermes_function_calling.json", "hermes"),
    ("tests/fixtures/formats/xlam_function_calling.json", "xlam"),
]


def openai_tools(trajectory: Trajectory) -> list[dict] | None:
    """The tools as transformers and vLLM pass them to a chat template."""
    return [{"type": "function", "function": {"name": t.name, "description": t.description, "parameters": t.parameters}}
            for t in trajectory.tools] or None


@pytest.fixture(scope="module")
def templated():
    tokenizer = load_tokenizer(MODEL)
    tokenizer.chat_template = paper_chat_template(tokenizer)
    return tokenizer


def assert_renders_as_training(trajectory: Trajectory, tokenizer, tools=None, lead: str = "") -> None:
    """The whole trajectory and the prompt of each assistant turn: the same text (after `lead`, the special
    tokens the tokenizer adds), and the same token ids as training's `tokenizer(text, add_special_tokens=True)`."""
    messages, tools = chat_messages(trajectory), tools or openai_tools(trajectory)
    text = render(trajectory, "paper", tokenizer).text
    assert tokenizer.apply_chat_template(messages, tools=tools, tokenize=False) == lead + text
    ids = tokenizer.apply_chat_template(messages, tools=tools, return_dict=True)["input_ids"]
    assert ids == tokenizer(text, add_special_tokens=True)["input_ids"]
    for i, message in enumerate(trajectory.messages):
        if message.role == "assistant":
            prompt = render_prompt(trajectory, i, "paper", tokenizer)
            assert tokenizer.apply_chat_template(messages[:i], tools=tools, tokenize=False,
                                                 add_generation_prompt=True) == lead + prompt
            ids = tokenizer.apply_chat_template(messages[:i], tools=tools, add_generation_prompt=True,
                                                return_dict=True)["input_ids"]
            assert ids == tokenizer(prompt, add_special_tokens=True)["input_ids"]


@pytest.mark.parametrize("path, format", SOURCES, ids=[Path(p).stem for p, _ in SOURCES])
def test_every_shipped_trajectory_and_prompt_renders_as_in_training(path, format, templated):
    """As read, and with argument values normalised to their declared types (what training renders)."""
    n = 0
    for trajectory in read_trajectories(str(ROOT / path), format):
        for version in (trajectory, normalise_calls(trajectory)[0]):
            assert_renders_as_training(version, templated)
        n += 1
    assert n > 0


def test_the_shipped_data_exercises_what_the_template_writes(templated):
    """Enums, defaults in the signature and in the docstring, nested optional properties, typed and quoted
    call values: the comparison above covers each of them."""
    texts = "\n".join(render(t, "paper", templated).text for path, format in SOURCES[:6]
                      for t in read_trajectories(str(ROOT / path), format))
    for fragment in (" = 'urban'", "One of: 'nature', 'urban'", " Default: ", ", optional): ", "list[dict]",
                     "=True", "=False", '="', "=[", "={", "=0.05"):
        assert fragment in texts, fragment


STRINGS = ["it's", 'say "hi"', "both ' and \"", "back\\slash", "line\nbreak\ttab\rcr", "nul\x00 del\x7f",
           "zero\u200bwidth nbsp\xa0", "café 日本 😀", "", " padded "]
CORNERS = Trajectory.from_dict({
    "id": "corners",
    "tools": [
        {"name": "f", "description": "  Two\n  lines.  ", "parameters": {
         "type": "object", "required": ["n", "gone", "s"], "properties": {
            "s": {"type": "string", "description": "A   string\n with\twhitespace", "enum": STRINGS},
            "maybe": {"type": ["number", "null"], "description": None},
            "grid": {"type": "array", "items": {"type": "array", "items": {"type": "integer"}},
                     "default": [[1, 2], [3]]},
            "rows": {"type": "array", "description": "Rows.", "items": {
                "type": "object", "required": ["k"], "properties": {
                    "k": {"type": "string", "enum": [1, None, True, 2.5, "x"]},
                    "opt": {"type": "object", "default": {"a": None, "b": [False, 1e-05]}, "properties": {
                        "deep": {"type": "boolean", "default": False}}}}}},
            "loose": "not a schema",
            "n": {"type": "integer", "default": 3},
            "big": {"type": "number", "default": 1e16},
         }}},
        {"name": "g"},
        {"name": "h", "description": " ", "parameters": {"type": "object", "properties": {}}},
    ],
    "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Go."},
        {"role": "assistant", "content": "  Let me see.  ", "tool_calls": [
            {"name": "f", "arguments": {"s": s, "maybe": None, "rows": [{"k": 1, "opt": {"deep": True}}], "x": -0.0,
                                        "big": 10**20, "e": [], "o": {}}} for s in STRINGS]},
        {"role": "tool", "content": '{"ok": true}'},
        {"role": "assistant", "content": "   ", "tool_calls": [{"name": "g", "arguments": {}}]},
        {"role": "tool", "content": ""},
        {"role": "system", "content": "A later system turn."},
        {"role": "assistant", "content": "Done: 'ok'\n"},
    ],
})


def test_corner_cases_of_schemas_values_and_turns(templated):
    """Every quoting and escape of Python's repr, None / True / floats / nested values, untyped, nested and
    required-but-undeclared parameters, tools without parameters or description, free text beside calls."""
    assert_renders_as_training(CORNERS, templated)
    text = render(CORNERS, "paper", templated).text
    assert "s=\"it's\"" in text and "s='both \\' and \"'" in text and "s='zero\\u200bwidth nbsp\\xa0'" in text
    assert "def f(n: int, s: str, maybe: Any = None, grid: list[list[int]] = [[1, 2], [3]]" in text


def test_tools_without_the_function_wrapper_and_without_tools(templated):
    bare = [{"name": t.name, "description": t.description, "parameters": t.parameters} for t in CORNERS.tools]
    assert_renders_as_training(CORNERS, templated, tools=bare)
    no_tools = Trajectory(CORNERS.id, (), CORNERS.messages[:2])
    assert templated.apply_chat_template(chat_messages(no_tools), tokenize=False, add_generation_prompt=True) == (
        "System: Be brief.\nUser: Go.\nAssistant:")
    no_system = Trajectory(CORNERS.id, (), CORNERS.messages[1:3])
    assert_renders_as_training(no_system, templated)


def test_arguments_as_a_json_string_are_refused(templated):
    """The OpenAI wire format's string cannot be turned into Python literals inside the template."""
    call = {"type": "function", "function": {"name": "g", "arguments": "{}"}}
    messages = [{"role": "user", "content": "Go."}, {"role": "assistant", "tool_calls": [call]}]
    with pytest.raises(Exception, match="decode them first"):
        templated.apply_chat_template(messages, tokenize=False)


def test_a_tokenizer_that_adds_bos_gets_it_from_the_template():
    """Training encodes with the tokenizer's special tokens; a server encodes the templated text without."""
    tokenizer = load_tokenizer(MODEL)
    tokenizer._tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A", special_tokens=[("<s>", tokenizer.bos_token_id)])
    assert paper_chat_template(tokenizer) == "{{- bos_token -}}" + PAPER_CHAT_TEMPLATE
    tokenizer.chat_template = paper_chat_template(tokenizer)
    assert_renders_as_training(CORNERS, tokenizer, lead="<s>")
    assert paper_chat_template(load_tokenizer(MODEL)) == PAPER_CHAT_TEMPLATE  # tiny-llama adds none


def test_the_data_module_gives_the_paper_format_its_template_and_leaves_others_alone(tmp_path):
    own = "{% for m in messages %}{{ m.content }}{% endfor %}"
    folder = tmp_path / "tokenizer"
    tokenizer = load_tokenizer(MODEL)
    tokenizer.chat_template = own
    tokenizer.save_pretrained(folder)
    assert ToolCallDataModule(str(folder), prompt_format="paper").tokenizer.chat_template == PAPER_CHAT_TEMPLATE
    for format in ("json", "chat_template"):
        assert ToolCallDataModule(str(folder), prompt_format=format).tokenizer.chat_template == own


def test_the_export_of_a_fit_serves_the_training_prompts(tmp_path, monkeypatch):
    from tlkit.cli import main

    monkeypatch.chdir(ROOT)
    main(["fit", "--config", "experiments/smoke.yaml",
          "--data.train=[{path: tests/fixtures/formats/xlam_function_calling.json, format: xlam}]",
          "--data.val=[]", "--data.test=[]", "--trainer.max_steps=1", "--trainer.limit_val_batches=0",
          "--data.batch_size=2", "--data.max_length=512", "--model.init_args.eval_generation=false",
          f"--trainer.logger.init_args.save_dir={tmp_path / 'runs'}", f"--data.cache_dir={tmp_path / 'cache'}"])
    exported = AutoTokenizer.from_pretrained(tmp_path / "runs/smoke/last_export")
    assert exported.chat_template == PAPER_CHAT_TEMPLATE
    for trajectory in read_trajectories(str(ROOT / "tests/fixtures/formats/xlam_function_calling.json"), "xlam"):
        assert_renders_as_training(trajectory, exported)
