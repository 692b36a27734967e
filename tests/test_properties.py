"""Property tests: on arbitrary text and arbitrary JSON, the call parsers, the classifier, the reward and the
readers return their documented results or raise only their documented error (`RecordError` for readers).

The reader inputs are real records (the shipped subsets and fixtures) with one value replaced by arbitrary
JSON or removed, so that the mutations reach past each reader's first check; plus arbitrary text and JSON.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tlkit.calls import parse_calls, parse_turn
from tlkit.data.readers import READERS, read_trajectories
from tlkit.irm import Category, ErrorCategoryReward, classify_call
from tlkit.records import RecordError, Tool, ToolCall, Trajectory
from tlkit.scoring.rules import judge

ROOT = Path(__file__).resolve().parents[1]
DATA, FIXTURES = ROOT / "experiments/data", ROOT / "tests/fixtures"
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12)
JSON = st.recursive(
    SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
NAMES = st.sampled_from(["get_weather", "finish", "a.b", ""]) | st.text(max_size=10)
ARGUMENTS = st.dictionaries(st.sampled_from(["city", "date", "n"]) | st.text(max_size=6), JSON, max_size=4)
CALL_TEXT = st.one_of(
    st.text(),
    st.text(alphabet="()[]{}=,:'\"\\\n abc_.0-1eETtrufalsnN"),
    st.builds(lambda name, args: f"{name}({', '.join(f'{k}={v!r}' for k, v in args.items())})", NAMES, ARGUMENTS),
    st.builds(lambda name, args: json.dumps({"name": name, "arguments": args}), NAMES, ARGUMENTS | JSON),
    st.builds(lambda name, args: f"Thought: x\nAction: {name}\nAction Input: {args}", NAMES, JSON.map(json.dumps)),
    JSON.map(json.dumps),
)
FORMATS = st.sampled_from(["python", "json", "react"])
TOOLS = st.lists(
    st.builds(lambda name, properties: Tool(name, "", {"type": "object", "properties": properties}), NAMES,
              st.dictionaries(st.text(max_size=6), JSON, max_size=3)),
    max_size=3,
)


def is_call_list(calls: Any) -> bool:
    return calls is None or all(
        isinstance(c, ToolCall) and isinstance(c.name, str) and c.name and isinstance(c.arguments, dict) for c in calls
    )


@SETTINGS
@given(CALL_TEXT, FORMATS)
def test_parsers_return_calls_or_none(text, call_format):
    assert is_call_list(parse_calls(text, call_format))
    assert is_call_list(parse_turn(text, call_format))


@SETTINGS
@given(CALL_TEXT, FORMATS, NAMES, ARGUMENTS, TOOLS)
def test_classify_and_reward_give_a_category(text, call_format, name, arguments, tools):
    gold = ToolCall(name, arguments)
    assert isinstance(classify_call(parse_calls(text, call_format), gold, tools), Category)
    # a call to an offered tool, so that the argument and value rules are reached
    offered = ToolCall(tools[0].name if tools else name, arguments)
    assert isinstance(classify_call([offered], gold, tools, strict=True), Category)
    reward = ErrorCategoryReward()
    category = judge(text, [gold], tools, {}, call_format=call_format).category
    value = reward(category)
    assert isinstance(category, Category) and value == reward.rewards[category]


# ---------------------------------------------------------------------------------------------
# Readers: each format's real sample, the file layout its reader expects, and how a file holds records


def first_line(path: Path) -> Any:
    return json.loads(path.read_text().splitlines()[0])


def canonical() -> dict:
    return next(iter(read_trajectories(str(DATA / "seal_tools/dev_subset.jsonl"), "seal_tools"))).to_dict()


# format -> (the sample, the file to write it to, how the file holds it, files copied beside it)
SAMPLES = {
    "tlkit": (canonical(), "data.jsonl", "lines", {}),
    "bfcl": (first_line(DATA / "bfcl_v3/BFCL_v3_simple.json"), "BFCL_v3_simple.json", "lines",
             {"possible_answer/BFCL_v3_simple.json": DATA / "bfcl_v3/possible_answer/BFCL_v3_simple.json"}),
    "seal_tools": (first_line(DATA / "seal_tools/dev_subset.jsonl"), "dev.jsonl", "lines",
                   {"tool.jsonl": DATA / "seal_tools/tool.jsonl"}),
    "api_bank": ([json.loads(line) for line in (DATA / "api_bank/level-1-given-desc/PlayMusic-level-1-1.jsonl")
                  .read_text().splitlines()], "level-1-given-desc/PlayMusic-level-1-1.jsonl", "each line",
                 {"all_apis.csv": DATA / "api_bank/all_apis.csv"}),
    "toolbench": (json.loads((DATA / "toolbench_examples/answer/G1_answer/10_ChatGPT_DFS_woFilter_w2.json")
                             .read_text()), "answer/G1_answer/10_ChatGPT_DFS_woFilter_w2.json", "object", {}),
    "glaive": (json.loads((DATA / "glaive_toolcall/glaive_toolcall_en_subset.json").read_text())[0], "glaive.json",
               "list", {}),
    "toolalpaca_golden": (json.loads((DATA / "toolalpaca_golden/golden-eval_real.json").read_text())[0],
                          "golden-eval_real.json", "list", {}),
    "toolalpaca": ({"Name": "x", "Function_Description": {}, "Instructions": [], "Golden_Answers": []},
                   "eval_real.json", "list", {}),
    "rotbench": (json.loads((FIXTURES / "rotbench/Third_Turn_clean.json").read_text())[0], "clean.json", "list", {}),
    "tl_training": (json.loads((FIXTURES / "tl_training/raw_data.json").read_text())[0], "raw.json", "list", {}),
    "openai": (first_line(FIXTURES / "formats/openai_trl.jsonl"), "openai.jsonl", "lines", {}),
    "hermes": (json.loads((FIXTURES / "formats/hermes_function_calling.json").read_text())[0],
               "hermes.json", "list", {}),
    "xlam": (json.loads((FIXTURES / "formats/xlam_function_calling.json").read_text())[0], "xlam.json", "list", {}),
}
assert SAMPLES.keys() == READERS.keys()
DELETE = object()


def paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    """Every place in a JSON value, as a key path (the root is `()`)."""
    found = [prefix]
    children = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, child in children:
        found += paths(child, (*prefix, key))
    return found


def replaced(value: Any, path: tuple, new: Any) -> Any:
    """A copy of `value` with the place at `path` set to `new` (removed where `new` is DELETE)."""
    if not path:
        return None if new is DELETE else new
    copy = list(value) if isinstance(value, list) else dict(value)
    if len(path) == 1 and new is DELETE:
        del copy[path[0]]
    else:
        copy[path[0]] = replaced(value[path[0]], path[1:], new)
    return copy


@st.composite
def reader_inputs(draw) -> tuple[str, bytes]:
    """(format, file content): a real sample with one place changed (to arbitrary JSON, to nothing, or to
    brackets nested up to far deeper than Python's parser goes), or arbitrary JSON, text or bytes."""
    format = draw(st.sampled_from(list(SAMPLES)))
    sample, _, holds, _ = SAMPLES[format]
    kind = draw(st.sampled_from(["mutated", "mutated", "mutated", "deep", "json", "text", "bytes"]))
    if kind == "bytes":
        return format, draw(st.binary())
    if kind == "text":
        return format, draw(st.text()).encode()
    if kind == "json":
        return format, json.dumps(draw(JSON)).encode()
    new = "DEEP" if kind == "deep" else draw(JSON | st.just(DELETE))
    value = replaced(sample, draw(st.sampled_from(paths(sample))), new)
    if holds in ("lines", "list") or (holds == "each line" and not isinstance(value, list)):
        value = [value]
    text = "\n".join(json.dumps(item) for item in value) if holds in ("lines", "each line") else json.dumps(value)
    if kind == "deep":
        depth = draw(st.integers(1, 5000))
        text = text.replace('"DEEP"', "[" * depth + "]" * depth)
    return format, text.encode()


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(reader_inputs())
def test_readers_yield_records_or_raise_record_error(case):
    format, content = case
    _, name, _, beside = SAMPLES[format]
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        for relative, source in beside.items():
            (root / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(source, root / relative)
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(content)
        try:
            records = list(read_trajectories(str(root / name), format))
        except RecordError as error:
            assert str(root) in error.source, error
            return
        assert records and all(isinstance(r, Trajectory) for r in records)
