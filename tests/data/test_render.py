"""What the model is shown of a tool's schema, in every render format, on real schemas from experiments/data."""

import json
from pathlib import Path

import pytest

from tlkit.calls import python_literal
from tlkit.data.argument_types import normalise_calls
from tlkit.data.features import encode
from tlkit.data.readers import read_trajectories
from tlkit.data.render import python_signature, python_type, render, render_prompt

DATA = Path(__file__).resolve().parents[2] / "experiments/data"
MULTIPLE, GLAIVE = "bfcl_v3/BFCL_v3_multiple.json", "glaive_toolcall/glaive_toolcall_en_subset.json"
# The tools block of Qwen2.5's chat template (each tool as `tool | tojson`), around plain turns.
QWEN_TOOLS_TEMPLATE = (
    "{%- if tools %}{{- '<|im_start|>system\\n# Tools\\n\\nYou are provided with function signatures within "
    "<tools></tools> XML tags:\\n<tools>' }}{%- for tool in tools %}{{- '\\n' }}{{- tool | tojson }}{%- endfor %}"
    "{{- '\\n</tools><|im_end|>\\n' }}{%- endif %}"
    "{%- for m in messages %}{{- '<|im_start|>' + m.role + '\\n' }}{%- if m.tool_calls %}{%- for c in m.tool_calls %}"
    "{{- '<tool_call>\\n{\"name\": \"' + c.function.name + '\", \"arguments\": ' + (c.function.arguments | tojson)"
    " + '}\\n</tool_call>' }}"
    "{%- endfor %}{%- else %}{{- m.content }}{%- endif %}{{- '<|im_end|>\\n' }}{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)


def record(path: str, format: str, record_id: str):
    return next(r for r in read_trajectories(str(DATA / path), format) if r.id == record_id)


def tool(path: str, format: str, record_id: str, name: str):
    return next(t for t in record(path, format, record_id).tools if t.name == name)


@pytest.fixture(scope="module")
def templated(tokenizer):
    copy = tokenizer.__class__.from_pretrained(tokenizer.name_or_path)
    copy.chat_template = QWEN_TOOLS_TEMPLATE
    return copy


def test_paper_shows_enum_values_and_the_declared_default():
    """BFCL simple_34: `exploration_type` is optional, one of four values, default 'urban' (not None)."""
    assert python_signature(tool("bfcl_v3/BFCL_v3_simple.json", "bfcl", "simple_34", "travel_itinerary_generator")) == (
        "def travel_itinerary_generator(destination: str, days: int, daily_budget: int, "
        "exploration_type: str = 'urban'):\n"
        '    """Generate a travel itinerary based on specific destination, duration and daily budget, with preferred '
        "exploration type.\n\n    Args:\n"
        "        destination (str): Destination city of the trip.\n"
        "        days (int): Number of days for the trip.\n"
        "        daily_budget (int): The maximum daily budget for the trip.\n"
        "        exploration_type (str): The preferred exploration type. "
        "One of: 'nature', 'urban', 'history', 'culture'.\n"
        '    """'
    )


def test_paper_shows_array_items_and_nested_properties():
    assert python_signature(tool("bfcl_v3/BFCL_v3_simple.json", "bfcl", "simple_96", "database.query")) == (
        "def database.query(table: str, conditions: list[dict]):\n"
        '    """Query the database based on certain conditions.\n\n    Args:\n'
        "        table (str): Name of the table to query.\n"
        "        conditions (list[dict]): Conditions for the query.\n"
        "            field (str): The field to apply the condition.\n"
        "            operation (str): The operation to be performed. One of: '<', '>', '=', '>=', '<='.\n"
        "            value (str): The value to be compared.\n"
        '    """'
    )
    budget = python_signature(tool(MULTIPLE, "bfcl", "multiple_8", "realestate.find_properties"))
    assert "budget: dict)" in budget and "\n            min (float, optional): Minimum budget limit.\n" in budget
    coordinates = python_signature(tool(MULTIPLE, "bfcl", "multiple_5", "weather.get_by_coordinates_date"))
    assert coordinates.startswith("def weather.get_by_coordinates_date(coordinates: list[float], date: str):")
    invoice = python_signature(tool(GLAIVE, "glaive", "glaive_toolcall_en_subset/134", "generate_invoice"))
    assert invoice.startswith("def generate_invoice(invoice_number: str, items: list[dict], tax_rate: float = None):")
    assert "        items (list[dict]): The items included in the invoice\n            description (str): " in invoice


def test_paper_every_declared_default_and_enum_of_the_shipped_bfcl_files_is_shown():
    """Over every BFCL tool shipped: an optional argument with a declared default shows that default, never None."""
    checked = 0
    for name in ("BFCL_v3_simple.json", "BFCL_v3_multiple.json"):
        for r in read_trajectories(str(DATA / "bfcl_v3" / name), "bfcl"):
            for t in r.tools:
                text, required = python_signature(t), t.parameters.get("required", [])
                for arg, schema in t.parameters["properties"].items():
                    if "default" in schema:  # in the signature, or (a required argument) in its docstring line
                        default = python_literal(schema["default"])
                        signature, doc = text.split("\n", 1)
                        if arg in required:
                            assert f"Default: {default}." in doc
                        else:
                            assert f"{arg}: {python_type(schema)} = {default}" in signature
                        checked += 1
                    for value in schema.get("enum", []):
                        assert python_literal(value) in text
    assert checked == 38  # 7 in simple, 31 in multiple


SEAL = {  # Seal-Tools dev-easy-14 (the file writes "age": "63"): the declared type, and the call's value in it
    "paper": ["program_id: str, participant_name: str, age: int, parent_name: str = None):", "age=63)</s>"],
    "json": ['"age": {"type": "integer"', '"age": 63}}</s>'],
    "chat_template": ['"age": {"type": "integer"', '"age": 63}'],
}


@pytest.mark.parametrize("format", ["paper", "json", "chat_template"])
def test_seal_tools_shows_the_declared_types_and_trains_typed_values(format, tokenizer, templated):
    r, _ = normalise_calls(record("seal_tools/dev_subset.jsonl", "seal_tools", "dev-easy-14"))
    text = render(r, format, templated if format == "chat_template" else tokenizer).text
    for fragment in SEAL[format]:
        assert fragment in text, fragment


# In each format the same facts, written the way that format writes values.
SHOWN = {
    "paper": ["exploration_type: str = 'urban'", "One of: 'nature', 'urban', 'history', 'culture'."],
    "json": ['"enum": ["nature", "urban", "history", "culture"]', '"default": "urban"'],
    "chat_template": ['"enum": ["nature", "urban", "history", "culture"]', '"default": "urban"'],
}
NESTED = {
    "paper": ["conditions: list[dict]", "operation (str): The operation to be performed. One of: '<', '>', '='"],
    "json": ['"items": {"type": "object", "properties": {"field": {"type": "string"', '"enum": ["<", ">"'],
    "chat_template": ['"items": {"type": "object", "properties": {"field": {"type": "string"', '"enum": ["<", ">"'],
}


@pytest.mark.parametrize("format", ["paper", "json", "chat_template"])
def test_every_format_shows_enum_default_items_and_properties(format, tokenizer, templated):
    tok = templated if format == "chat_template" else tokenizer
    for record_id, expected in (("simple_34", SHOWN), ("simple_96", NESTED)):
        r = record("bfcl_v3/BFCL_v3_simple.json", "bfcl", record_id)
        prompt = render_prompt(r, len(r.messages) - 1, format, tok)
        for fragment in expected[format]:
            assert fragment in prompt, (record_id, fragment)


@pytest.mark.parametrize("format", ["paper", "json", "chat_template"])
def test_call_spans_still_fall_on_the_calls(format, tokenizer, templated):
    """Richer tool listings move the calls; their spans (which PKT reads) must move with them."""
    tok = templated if format == "chat_template" else tokenizer
    written = {"paper": python_literal, "json": lambda v: json.dumps(v, ensure_ascii=False)}
    for path, fmt, record_id in (("bfcl_v3/BFCL_v3_simple.json", "bfcl", "simple_96"),
                                 (MULTIPLE, "bfcl", "multiple_5"),
                                 (GLAIVE, "glaive", "glaive_toolcall_en_subset/134")):
        r = record(path, fmt, record_id)
        rendered = render(r, format, tok)
        names = []
        for target in rendered.targets:
            calls = r.messages[target.message_index].tool_calls
            names += [c.name for c in target.calls]
            assert [rendered.text[c.name[0]:c.name[1]] for c in target.calls] == [c.name for c in calls]
            if format in written:  # the chat template's calls carry names only
                for spans, call in zip(target.calls, calls):
                    assert [rendered.text[a.value[0]:a.value[1]] for a in spans.arguments] == [
                        written[format](v) for v in call.arguments.values()]
        offsets = tok(rendered.text, return_offsets_mapping=True)["offset_mapping"]
        keys = [offsets[i] for i, key in enumerate(encode(r, tok, format)["key_mask"]) if key]
        assert all(any(k[0] < e and s < k[1] for s, e in names) for k in keys)  # key tokens only on called names
        if record_id == "multiple_5":  # weather.get_by_coordinates_date among two other weather.get_* tools
            assert len(keys) >= 2
