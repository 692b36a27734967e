"""Readers on the real public files: counts, known records field by field, error verdicts, bad input."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tlkit.data.readers import READERS, read_trajectories
from tlkit.records import Message, RecordError, Tool, ToolCall, Trajectory

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def read(path: Path | str, format: str) -> list[Trajectory]:
    return list(read_trajectories(str(path), format))


def by_id(records: list[Trajectory], record_id: str) -> Trajectory:
    return next(t for t in records if t.id == record_id)


def tool_verdicts(records: list[Trajectory]) -> Counter:
    """How many tool messages say error=True / False / None."""
    return Counter(m.error for t in records for m in t.messages if m.role == "tool")


def schema_types(schema: Any) -> set[str]:
    """Every `type` name in a (nested) JSON schema."""
    if isinstance(schema, list):
        return set().union(*map(schema_types, schema)) if schema else set()
    if not isinstance(schema, dict):
        return set()
    found = {schema["type"]} if isinstance(schema.get("type"), str) else set()
    for key in ("items", "properties"):
        value = schema.get(key)
        found |= schema_types(list(value.values()) if key == "properties" and isinstance(value, dict) else value)
    return found


# Every reader on (one of) its real files, for the common checks below.
REAL_FILES = [
    ("bfcl", "bfcl_v3/BFCL_v3_simple.json"),
    ("bfcl", "bfcl_v3/BFCL_v3_parallel_multiple.json"),
    ("bfcl", "bfcl_v3/BFCL_v3_irrelevance.json"),
    ("bfcl", "bfcl_v3/BFCL_v3_java.json"),
    ("seal_tools", "seal_tools/dev.jsonl"),
    ("toolalpaca", "toolalpaca/eval_real.json"),
    ("toolalpaca_golden", "toolalpaca_golden/golden-eval_mix.json"),
    ("toolbench", "toolbench_examples"),
    ("api_bank", "api_bank"),
    ("glaive", "glaive_toolcall/glaive_toolcall_en_demo.json"),
]
FIXTURE_FILES = [
    ("rotbench", "rotbench/First_Turn_clean.json"),
    ("rotbench", "rotbench/Third_Turn_clean.json"),
    ("tl_training", "tl_training/raw_data.json"),
]


@pytest.fixture(scope="module")
def real(public_data: Path) -> dict[tuple[str, str], list[Trajectory]]:
    """Each real file, read once."""
    return {(fmt, name): read(public_data / name, fmt) for fmt, name in REAL_FILES}


def test_registry_names_and_unknown_format():
    assert set(READERS) == {
        "tlkit", "bfcl", "seal_tools", "toolalpaca", "toolalpaca_golden", "toolbench", "api_bank", "glaive",
        "rotbench", "tl_training", "openai", "hermes", "xlam",
    }
    with pytest.raises(ValueError, match="unknown format 'sharegpt'.*bfcl.*tl_training"):
        read_trajectories("x.json", "sharegpt")


# ---- BFCL ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("category", "count", "calls"),
    [("simple", 400, 400), ("multiple", 200, 200), ("parallel", 200, 538), ("parallel_multiple", 200, 607),
     ("irrelevance", 240, 0), ("java", 100, 100), ("javascript", 50, 50)],
)
def test_bfcl_counts(public_data, category, count, calls):
    records = read(public_data / f"bfcl_v3/BFCL_v3_{category}.json", "bfcl")
    assert len(records) == len({t.id for t in records}) == count
    assert sum(len(m.tool_calls) for t in records for m in t.messages) == calls
    assert all(t.meta["category"] == category for t in records)
    # Type names are JSON schema's: BFCL's dict / float / tuple are gone.
    types = set().union(*(schema_types(tool.parameters) for t in records for tool in t.tools))
    assert not types & {"dict", "float", "tuple", "str", "int", "bool", "String", "Boolean", "HashMap"}


def test_bfcl_simple_0_field_by_field(real):
    record = real["bfcl", "bfcl_v3/BFCL_v3_simple.json"][0]
    assert record.id == "simple_0"
    assert record.messages[0] == Message(
        "user", "Find the area of a triangle with a base of 10 units and height of 5 units."
    )
    (tool,) = record.tools
    assert tool.name == "calculate_triangle_area"
    assert tool.parameters["type"] == "object"  # BFCL's "dict"
    assert tool.parameters["properties"]["base"] == {"type": "integer", "description": "The base of the triangle."}
    assert tool.parameters["required"] == ["base", "height"]
    # Gold: the first allowed value that is not "" ("units" before "").
    assert record.messages[-1] == Message("assistant", "", (ToolCall("calculate_triangle_area",
                                                                   {"base": 10, "height": 5, "unit": "units"}),))
    assert record.meta["possible_answer"] == [{"calculate_triangle_area": {"base": [10], "height": [5],
                                                                           "unit": ["units", ""]}}]


def test_bfcl_gold_values(public_data, real):
    simple = real["bfcl", "bfcl_v3/BFCL_v3_simple.json"]
    # cc's only allowed value is "": left out.
    assert "cc" not in by_id(simple, "simple_211").messages[-1].tool_calls[0].arguments
    # Lists of dicts list allowed values per key: each key gets its first.
    assert by_id(simple, "simple_96").messages[-1].tool_calls[0].arguments["conditions"] == [
        {"field": "age", "operation": ">", "value": "25"}, {"field": "job", "operation": "=", "value": "engineer"}
    ]
    java_1 = by_id(real["bfcl", "bfcl_v3/BFCL_v3_java.json"], "java_1")
    assert java_1.messages[-1].tool_calls[0] == ToolCall(
        "SQLCompletionAnalyzer.makeProposalsFromObject",
        {"object": "Customers", "useShortName": True, "params": {"limit": 50, "schemaFilter": "public"}},
    )
    parallel_0 = by_id(read(public_data / "bfcl_v3/BFCL_v3_parallel.json", "bfcl"), "parallel_0")
    assert parallel_0.messages[-1].tool_calls == (
        ToolCall("spotify.play", {"artist": "Taylor Swift", "duration": 20}),
        ToolCall("spotify.play", {"artist": "Maroon 5", "duration": 15}),
    )
    irrelevance = real["bfcl", "bfcl_v3/BFCL_v3_irrelevance.json"]
    assert all(len(t.messages) == 1 and "possible_answer" not in t.meta for t in irrelevance)


# ---- Seal-Tools ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "count", "calls"), [("dev", 700, 1804), ("test_in_domain", 700, 1795),
                                                      ("test_out_domain", 654, 1937)])
def test_seal_tools_counts(public_data, name, count, calls):
    records = read(public_data / f"seal_tools/{name}.jsonl", "seal_tools")
    assert len(records) == len({t.id for t in records}) == count
    assert sum(len(t.messages[1].tool_calls) for t in records) == calls
    # Offered tools are exactly the called APIs, deduplicated in order.
    for t in records:
        assert [tool.name for tool in t.tools] == list(dict.fromkeys(c.name for c in t.messages[1].tool_calls))


def test_seal_tools_known_records(real):
    records = real["seal_tools", "seal_tools/dev.jsonl"]
    first = records[0]
    assert first.id == "dev-easy-0"
    assert first.messages == (
        Message("user", "Retrieve information about the number of nurses in a specific country."),
        Message("assistant", "", (ToolCall("getHealthWorkforce", {"location": "country", "occupation": "nurses"}),)),
    )
    assert first.tools[0].name == "getHealthWorkforce"
    assert {p["type"] for p in first.tools[0].parameters["properties"].values()} <= {"string", "integer", "number",
                                                                                     "boolean"}
    several = by_id(records, "dev-difficult-299")
    assert [c.name for c in several.messages[1].tool_calls] == [
        "getEnergySustainability", "getSolarRadiation", "calculateWaterNeeds"]
    assert several.messages[1].tool_calls[0].arguments == {"country": "United States", "year": 2025}


# ---- ToolAlpaca ---------------------------------------------------------------------------------


def test_toolalpaca_counts_and_records(public_data, real):
    simulated = read(public_data / "toolalpaca/eval_simulated.json", "toolalpaca")
    real_apis = real["toolalpaca", "toolalpaca/eval_real.json"]
    assert (len(simulated), len(real_apis)) == (100, 114)
    assert len({t.id for t in simulated}) == 100 and len({t.id for t in real_apis}) == 114

    axolotl = by_id(simulated, "Axolotl/1")
    assert [tool.name for tool in axolotl.tools] == ["getRandomAxolotlImage", "searchAxolotlImages", "getAxolotlFacts"]
    search = axolotl.tools[1]
    assert search.parameters["properties"]["page"] == {"type": "integer",
                                                       "description": "The page number for pagination purposes."}
    assert search.parameters["required"] == []
    gold = ToolCall("searchAxolotlImages", {"color": "wild", "gender": "", "size": "medium", "page": 1})
    assert axolotl.messages[1:] == (Message("assistant", "", (gold,)),)
    assert axolotl.meta["golden_answers"] == [{"name": gold.name, "arguments": gold.arguments}]

    nager = by_id(real_apis, "Nager.Date/4")
    country_info = next(tool for tool in nager.tools if tool.name == "CountryCountryInfo")
    assert country_info.parameters["required"] == ["countryCode"]  # "Required. string. ..."
    assert nager.messages[-1].tool_calls == (ToolCall("LongWeekendLongWeekend", {"year": 2024, "countryCode": "US"}),)


def test_toolalpaca_placeholders_and_unreadable_gold(public_data, real):
    simulated = read(public_data / "toolalpaca/eval_simulated.json", "toolalpaca")
    # `${x from f}` placeholders (a value from an earlier step) are read as strings.
    anime = by_id(simulated, "AniAPI/0")
    assert anime.messages[-1].tool_calls == (ToolCall("getCastAndCrew", {"animeId": "${animeId from searchAnime}"}),)
    steps = [s for t in simulated for s in t.meta["golden_answers"]]
    assert sum("${" in json.dumps(s["arguments"]) for s in steps if s["arguments"]) == 32
    # The five inputs that are not JSON even so: kept raw in meta, the turns stop before them.
    unreadable = [t.id for t in simulated + real["toolalpaca", "toolalpaca/eval_real.json"]
                  if any(s["arguments"] is None for s in t.meta["golden_answers"])]
    assert unreadable == ["Auth0/10", "CurrencyBeacon/4", "CurrencyBeacon/8", "CurrencyBeacon/9", "CurrencyBeacon/10"]
    beacon = by_id(real["toolalpaca", "toolalpaca/eval_real.json"], "CurrencyBeacon/4")
    assert [m.role for m in beacon.messages] == ["user"]
    assert beacon.meta["golden_answers"][0]["raw_arguments"].endswith('"symbols": "symbols": ["EUR", "GBP"]}')


def test_toolalpaca_golden_status_codes(public_data, real):
    mix = real["toolalpaca_golden", "toolalpaca_golden/golden-eval_mix.json"]
    real_apis = read(public_data / "toolalpaca_golden/golden-eval_real.json", "toolalpaca_golden")
    # 214 instructions, 15 runs crashed (no trajectory); the README's 199 and 64 with an HTTP >= 400.
    assert len(mix) == len({t.id for t in mix}) == 199
    assert sum(any(m.error for m in t.messages) for t in mix) == 64
    assert tool_verdicts(mix) == Counter({False: 190, True: 76, None: 1})  # 200 / 400+404+500 / no code
    assert len(real_apis) == 108 and sum(any(m.error for m in t.messages) for t in real_apis) == 18
    assert tool_verdicts(real_apis) == Counter({False: 115, True: 21})

    first = mix[0]
    assert first.id == "Nager.Date/0"
    assert first.messages == (
        Message("user", "Can you check if today is a public holiday in China?"),
        Message("assistant", "", (ToolCall("PublicHolidayIsTodayPublicHoliday", {"countryCode": "CN"}),)),
        Message("tool", 'Status Code: 200. Response: {"isPublicHoliday":false,"countryCode":"CN","date":"2022-11-11"}',
                error=False),
    )
    # No status code: left to MAE's patterns.
    no_code = by_id(mix, "AniAPI/1").messages[2]
    assert no_code.error is None and no_code.content.startswith("Missing required parameters")
    # Inputs the environment rejected as not JSON end the trajectory, kept in meta.
    assert [t.id for t in mix if "truncated_at" in t.meta] == ["Auth0/10", "Apache Superset/2", "Apache Superset/10"]
    auth0 = by_id(mix, "Auth0/10")
    assert [m.role for m in auth0.messages] == ["user", "assistant", "tool"] and auth0.messages[2].error is True
    assert auth0.meta["truncated_at"]["action"] == "getUserProfile"


# ---- ToolBench ----------------------------------------------------------------------------------


def test_toolbench_envelope(public_data, real):
    records = real["toolbench", "toolbench_examples"]
    assert len(records) == 13  # 15 queries, 2 without train_messages
    assert tool_verdicts(records) == Counter({None: 31, True: 6})
    first = by_id(records, "G1_answer/11_ChatGPT_DFS_woFilter_w2")
    assert [tool.name for tool in first.tools] == ["transitaire_for_transitaires", "transitaires_for_transitaires",
                                                   "Finish"]
    assert [m.role for m in first.messages] == ["system", "user"] + ["assistant", "tool"] * 3 + ["assistant"]
    assert first.messages[4] == Message("assistant", "", (ToolCall("transitaire_for_transitaires",
                                                                   {"is_id": "Gondrand"}),))
    # An empty error field is no verdict: a 400 or 403 may sit in `response`, MAE's patterns read it.
    assert first.messages[5] == Message("tool", '{"error": "", "response": ""}', error=None)
    assert first.messages[-1].tool_calls[0].name == "Finish"
    assert first.messages[-1].tool_calls[0].arguments["return_type"] == "give_answer"
    timeout = by_id(records, "G2_answer/10_ChatGPT_DFS_woFilter_w2").messages[-2]
    assert timeout.error is True and "Timeout error" in json.loads(timeout.content)["error"]
    # A reply cut mid-string still shows its error field.
    cut = by_id(records, "G3_answer/15_ChatGPT_DFS_woFilter_w2")
    assert cut.messages[8].error is True and cut.messages[8].content.startswith('{"error": "Message error...", "')
    with pytest.raises(json.JSONDecodeError):
        json.loads(cut.messages[8].content)
    # A thought recorded as its own message joins the call after it.
    assert cut.messages[9].content.startswith("Great! The modified function call") and cut.messages[9].tool_calls
    assert [m.role for m in cut.messages].count("assistant") == 4
    # One file reads the same as through its folder.
    single = read(public_data / "toolbench_examples/answer/G1_answer/11_ChatGPT_DFS_woFilter_w2.json", "toolbench")
    assert single == [first]
    with pytest.raises(RecordError, match="no records"):  # no train_messages: a file alone is no data
        read(public_data / "toolbench_examples/answer/G1_answer/69_ChatGPT_DFS_woFilter_w2.json", "toolbench")


# ---- API-Bank -----------------------------------------------------------------------------------


def test_api_bank_dialogues(public_data, real):
    records = real["api_bank", "api_bank"]
    assert len(records) == len({t.id for t in records}) == 263  # 264 files, one of them empty
    assert sum(len(m.tool_calls) for t in records for m in t.messages) == 508
    assert tool_verdicts(records) == Counter({False: 508})  # no result carries an exception
    alarm = by_id(records, "level-1-given-desc/AddAlarm-level-1-1")
    assert [tool.name for tool in alarm.tools] == ["GetUserToken", "AddAlarm"]
    assert alarm.tools[0].parameters["properties"]["username"] == {"type": "string",
                                                                   "description": "The username of the user."}
    call, reply = alarm.messages[4], alarm.messages[5]
    assert call == Message("assistant", "", (ToolCall("GetUserToken", {"username": "foo", "password": "bar"}),))
    assert json.loads(reply.content)["output"] == {"token": "z9x8c7v6b5n4m3q2w1"} and reply.error is False
    # ToolSearcher is not in all_apis.csv: its schema comes from the call's arguments.
    searcher = by_id(records, "level-2-toolsearcher/AddAgenda-level-3-1").tools[0]
    assert searcher == Tool("ToolSearcher", "", {"type": "object", "properties": {
        "keywords": {"type": "string", "description": ""}}, "required": ["keywords"]})
    # ImageCaption's api_info is "." in all_apis.csv: its signature column `(image: str)` gives the schema.
    caption = by_id(records, "level-1-given-desc/ImageCaption-level-1-1").tools[0]
    assert caption == Tool("ImageCaption", "", {"type": "object", "properties": {
        "image": {"type": "string", "description": ""}}, "required": ["image"]})
    empty = public_data / "api_bank/lv1-lv2-samples/level-1-given-desc/SearchEngine-level-1-1.jsonl"
    assert empty.stat().st_size == 0
    with pytest.raises(RecordError, match="no records"):  # in its folder it is skipped; alone it is no data
        read(empty, "api_bank")


def test_api_bank_exception_sets_error(public_data, tmp_path):
    source = public_data / "api_bank/lv1-lv2-samples/level-1-given-desc/AddAlarm-level-1-1.jsonl"
    lines = [json.loads(line) for line in source.read_text().splitlines()]
    lines[4]["result"]["exception"] = "Invalid token"
    broken = tmp_path / "AddAlarm-level-1-1.jsonl"
    broken.write_text("\n".join(json.dumps(line) for line in lines))
    (record,) = read(broken, "api_bank")
    assert [m.error for m in record.messages if m.role == "tool"] == [True, False]
    # No all_apis.csv above tmp_path: every schema comes from the calls.
    assert record.tools[1].parameters["properties"] == {"token": {"type": "string", "description": ""},
                                                        "time": {"type": "string", "description": ""}}


# ---- Glaive -------------------------------------------------------------------------------------


def test_glaive(real):
    records = real["glaive", "glaive_toolcall/glaive_toolcall_en_demo.json"]
    assert len(records) == len({t.id for t in records}) == 300
    assert sum(len(m.tool_calls) for t in records for m in t.messages) == 211
    assert tool_verdicts(records) == Counter({None: 211})  # no error field: MAE's patterns decide
    first = records[0]
    assert first.id == "glaive_toolcall_en_demo/0"
    assert first.tools[0].name == "search_recipes"
    assert first.messages[3] == Message("assistant", "", (ToolCall("search_recipes", {
        "ingredients": ["chicken", "bell peppers", "rice"]}),))
    assert first.messages[4].role == "tool" and first.messages[4].content.startswith('{"recipes": [')


# ---- RoTBench and TL-Training (real records in tests/fixtures) -----------------------------------


def test_rotbench_first_turn():
    (record,) = read(FIXTURES / "rotbench/First_Turn_clean.json", "rotbench")
    assert record.id == "Turn 1: What is the translation of the English phrase 'See you later' in Japanese?"
    assert [tool.name for tool in record.tools] == ["get_translation_nllb", "get_translation_baidu", "ask_to_user",
                                                    "finish"]
    assert record.tools[0].parameters["required"] == ["input_text", "tgt_lang", "src_lang", "max_length"]
    assert [m.role for m in record.messages] == ["user", "assistant"]  # the ReAct system prompt is dropped
    first = {"input_text": "See you later", "tgt_lang": "jpn_Jpan", "src_lang": "eng_Latn", "max_length": "None"}
    assert record.messages[-1] == Message("assistant", "", (ToolCall("get_translation_nllb", first),))
    assert record.meta == {"scenario": "TG", "alternatives": [
        {"name": "get_translation_nllb", "arguments": first},
        {"name": "get_translation_baidu", "arguments": {"text": "See you later", "tgt_lang": "jp"}},
    ]}


def test_rotbench_third_turn_keeps_feedback():
    (record,) = read(FIXTURES / "rotbench/Third_Turn_clean.json", "rotbench")
    assert [m.role for m in record.messages] == ["user", "assistant", "tool", "assistant", "tool", "assistant"]
    assert record.messages[2] == Message(
        "tool", "get_translation_nllb() missing 1 required positional argument: 'max_length'")
    assert record.messages[3].tool_calls[0].arguments["max_length"] == "100"
    assert len(record.meta["alternatives"]) == 2


def test_tl_training():
    records = read(FIXTURES / "tl_training/raw_data.json", "tl_training")
    assert [t.id for t in records] == [
        "Turn 3: What is the translation of the English phrase 'See you later' in Japanese?",
        "Turn 3: Could you recommend an event with maximum accessibility and minimum price?",
    ]
    event = records[1]
    assert len(event.tools) == 10 and event.tools[-1].name == "finish"
    assert [m.role for m in event.messages] == ["user"] + ["assistant", "tool"] * 2 + ["assistant"]
    assert event.messages[1].tool_calls == (ToolCall("get_activity_by_accessibility", {"accessibility": "1"}),)
    assert event.messages[-1].tool_calls[0].name == "finish"


def test_tl_training_plain_answer_and_from_value(tmp_path):
    spec = {"type": "function", "function": {"name": "calculator", "description": "Calculate.", "parameters": {
        "type": "object", "properties": {"input_query": {"type": "str", "description": "An expression."}},
        "required": ["input_query"]}}}
    sample = {"conversations": [
        {"from": "system", "value": json.dumps([spec])},
        {"from": "user", "value": "107 - 20?"},
        {"from": "assistant", "value": 'calculator\n{"input_query": "107 - 20"}'},
        {"from": "function", "value": "87.0"},
        {"from": "assistant", "value": "It is 87."},
    ]}
    path = tmp_path / "data.json"
    path.write_text(json.dumps([sample, sample]))
    first, second = read(path, "tl_training")
    assert (first.id, second.id) == ("data/0", "data/1")
    assert first.tools[0].parameters["properties"]["input_query"]["type"] == "string"
    assert first.messages[1].tool_calls == (ToolCall("calculator", {"input_query": "107 - 20"}),)
    assert first.messages[3] == Message("assistant", "It is 87.")


# ---- Round trips --------------------------------------------------------------------------------


def test_round_trip_and_tlkit_reader(real, tmp_path):
    everything = [t for records in real.values() for t in records]
    everything += [t for fmt, name in FIXTURE_FILES for t in read(FIXTURES / name, fmt)]
    for t in everything:
        assert Trajectory.from_dict(t.to_dict()) == t, t.id
    path = tmp_path / "all.jsonl"
    path.write_text("".join(t.to_json() + "\n" for t in everything), encoding="utf-8")
    assert read(path, "tlkit") == everything
    listed = tmp_path / "some.json"
    listed.write_text(json.dumps([t.to_dict() for t in everything[:5]]))
    assert read(listed, "tlkit") == everything[:5]


# ---- Bad input: the error names the file, the record and the field ------------------------------


def lines_of(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def write_lines(path: Path, records: list[Any]) -> Path:
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in records) + "\n")
    return path


def broken_bfcl(shared: Path, tmp: Path) -> Path:
    records = lines_of(shared / "bfcl_v3/BFCL_v3_simple.json")[:3]
    del records[1]["function"]
    return write_lines(tmp / "BFCL_v3_simple.json", records)


def broken_bfcl_json(shared: Path, tmp: Path) -> Path:
    lines = (shared / "bfcl_v3/BFCL_v3_simple.json").read_text().splitlines()[:3]
    return write_lines(tmp / "BFCL_v3_simple.json", [lines[0], lines[1][:-5], lines[2]])


def broken_bfcl_gold(shared: Path, tmp: Path) -> Path:
    (tmp / "possible_answer").mkdir()
    gold = lines_of(shared / "bfcl_v3/possible_answer/BFCL_v3_simple.json")[:2]
    gold[1]["ground_truth"] = [{"math.factorial": {"number": 5}}]
    write_lines(tmp / "possible_answer/BFCL_v3_simple.json", gold)
    return write_lines(tmp / "BFCL_v3_simple.json", lines_of(shared / "bfcl_v3/BFCL_v3_simple.json")[:2])


def broken_seal(shared: Path, tmp: Path) -> Path:
    shutil.copy(shared / "seal_tools/tool.jsonl", tmp / "tool.jsonl")
    records = lines_of(shared / "seal_tools/dev.jsonl")[:3]
    records[2]["calling"][0]["api"] = "noSuchApi"
    return write_lines(tmp / "dev.jsonl", records)


def broken_seal_type(shared: Path, tmp: Path) -> Path:
    shutil.copy(shared / "seal_tools/tool.jsonl", tmp / "tool.jsonl")
    records = lines_of(shared / "seal_tools/dev.jsonl")[:2]
    records[1]["calling"][0]["parameters"] = "location=country"
    return write_lines(tmp / "dev.jsonl", records)


def broken_toolalpaca(shared: Path, tmp: Path) -> Path:
    apis = json.loads((shared / "toolalpaca/eval_simulated.json").read_text())[:2]
    del apis[0]["Golden_Answers"][3][0]["Action"]
    (tmp / "eval.json").write_text(json.dumps(apis))
    return tmp / "eval.json"


def broken_toolalpaca_tools(shared: Path, tmp: Path) -> Path:
    apis = json.loads((shared / "toolalpaca/eval_real.json").read_text())[:1]
    apis[0]["Function_Description"]["CountryCountryInfo"] = "Get country info, no parameters line"
    (tmp / "eval.json").write_text(json.dumps(apis))
    return tmp / "eval.json"


def broken_golden(shared: Path, tmp: Path) -> Path:
    apis = json.loads((shared / "toolalpaca_golden/golden-eval_real.json").read_text())[:1]
    apis[0]["Instances"][2]["intermediate_steps"][0] = ["CountryAvailableCountries", "Status Code: 200."]
    (tmp / "golden.json").write_text(json.dumps(apis))
    return tmp / "golden.json"


def broken_toolbench(shared: Path, tmp: Path) -> Path:
    data = json.loads((shared / "toolbench_examples/answer/G1_answer/10_ChatGPT_DFS_woFilter_w2.json").read_text())
    data["answer_generation"]["train_messages"][-1][2]["function_call"]["arguments"] = "{is_id: Gondrand"
    (tmp / "G1_answer").mkdir()
    (tmp / "G1_answer/10_ChatGPT_DFS_woFilter_w2.json").write_text(json.dumps(data))
    return tmp


def broken_api_bank(shared: Path, tmp: Path) -> Path:
    lines = lines_of(shared / "api_bank/lv1-lv2-samples/level-1-given-desc/AddAlarm-level-1-1.jsonl")
    lines[4]["param_dict"] = ["foo", "bar"]
    return write_lines(tmp / "AddAlarm-level-1-1.jsonl", lines)


def broken_api_bank_json(shared: Path, tmp: Path) -> Path:
    lines = (shared / "api_bank/lv1-lv2-samples/level-1-given-desc/AddAlarm-level-1-1.jsonl").read_text()
    return write_lines(tmp / "AddAlarm-level-1-1.jsonl", lines.splitlines()[:2] + ['{"role": "User", "text": '])


def broken_glaive(shared: Path, tmp: Path) -> Path:
    data = json.loads((shared / "glaive_toolcall/glaive_toolcall_en_demo.json").read_text())[:3]
    data[2]["tools"] = data[2]["tools"][:-2]
    (tmp / "glaive.json").write_text(json.dumps(data))
    return tmp / "glaive.json"


def broken_rotbench(shared: Path, tmp: Path) -> Path:
    data = json.loads((FIXTURES / "rotbench/Third_Turn_clean.json").read_text())
    data[0]["conversations"][-1]["value"][1] = "Thought:\nAction: get_translation_baidu\nAction Input: {text: hi}"
    (tmp / "clean.json").write_text(json.dumps(data))
    return tmp / "clean.json"


def broken_tl_training(shared: Path, tmp: Path) -> Path:
    data = json.loads((FIXTURES / "tl_training/raw_data.json").read_text())
    data[1]["conversations"][0]["content"] = '{"name": "finish"}'
    (tmp / "raw.json").write_text(json.dumps(data))
    return tmp / "raw.json"


def broken_tlkit(shared: Path, tmp: Path) -> Path:
    record = Trajectory("a", (), (Message("user", "hi"),)).to_dict()
    return write_lines(tmp / "records.jsonl", [record, {**record, "id": "b", "messages": "hi"}])


BROKEN = [
    ("bfcl", broken_bfcl, "BFCL_v3_simple.json", "simple_1", "function", "missing; expected a list"),
    ("bfcl", broken_bfcl_json, "BFCL_v3_simple.json", "line 2", "<json>", "invalid JSON"),
    ("bfcl", broken_bfcl_gold, "possible_answer/BFCL_v3_simple.json", "simple_1",
     "ground_truth[0].math.factorial.number", "expected a list of allowed values"),
    ("seal_tools", broken_seal, "dev.jsonl", "dev-easy-2 (line 3)", "calling[0].api", "'noSuchApi' is not in"),
    ("seal_tools", broken_seal_type, "dev.jsonl", "dev-easy-1 (line 2)", "calling[0].parameters",
     "expected an object, got str"),
    ("toolalpaca", broken_toolalpaca, "eval.json", "Axolotl/3", "Golden_Answers[3][0].Action", "missing"),
    ("toolalpaca", broken_toolalpaca_tools, "eval.json", "Nager.Date", "Function_Description.CountryCountryInfo",
     "Parameters"),
    ("toolalpaca_golden", broken_golden, "golden.json", "Nager.Date/2", "Instances[2].intermediate_steps[0][0]",
     "expected a list, got str"),
    ("toolbench", broken_toolbench, "G1_answer/10_ChatGPT_DFS_woFilter_w2.json",
     "G1_answer/10_ChatGPT_DFS_woFilter_w2", "answer_generation.train_messages[2][2].function_call.arguments",
     "expected JSON text"),
    ("api_bank", broken_api_bank, "AddAlarm-level-1-1.jsonl", "{tmp}/AddAlarm-level-1-1", "line 5.param_dict",
     "expected an object, got list"),
    ("api_bank", broken_api_bank_json, "AddAlarm-level-1-1.jsonl", "line 3", "<json>", "invalid JSON"),
    ("glaive", broken_glaive, "glaive.json", "glaive/2", "tools", "expected JSON text"),
    ("rotbench", broken_rotbench, "clean.json",
     "Turn 3: What is the translation of the English phrase 'See you later' in Japanese?",
     "conversations[6].value[1] (Action Input)", "expected JSON text"),
    ("tl_training", broken_tl_training, "raw.json",
     "Turn 3: Could you recommend an event with maximum accessibility and minimum price?",
     "conversations[0].content", "expected a JSON list"),
    ("tlkit", broken_tlkit, "records.jsonl", "b", "messages", "expected a non-empty list"),
]


@pytest.mark.parametrize(("format", "build", "file", "record", "field", "problem"), BROKEN,
                         ids=[f"{case[0]}-{case[1].__name__}" for case in BROKEN])
def test_bad_input_names_file_record_field(public_data, tmp_path, format, build, file, record, field, problem):
    path = build(public_data, tmp_path)
    with pytest.raises(RecordError) as caught:
        read(path, format)
    error = caught.value
    record = record.replace("{tmp}", tmp_path.name)
    assert (Path(error.source), str(error.record), error.field) == (tmp_path / file, record, field)
    assert problem in error.problem
    assert str(tmp_path / file) in str(error) and f"record {record}" in str(error) and f"'{field}'" in str(error)
