"""RoTBench's TS / PI / CF (`tlkit.scoring.rotbench`): its content-filling rule as its evaluate.py runs it, through
`tlkit score` on real RoTBench records, and the rules on hand-built records.

evaluate.py (Junjie-Ye/RoTBench, Code/Evaluation/evaluate.py, `cf_eval`) keeps one prediction dict per
record while it walks the acceptable answers in order: at an answer with the same action and the same
keys it deletes the keys whose gold value is "None" from that dict for good, before comparing values.
It also turns a predicted `finish` into the last tool's name, for good, at the first answer that calls
the last tool.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tlkit.records import Tool
from tlkit.score import main
from tlkit.scoring.rotbench import score_rotbench

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "rotbench"
DANISH = FIXTURES / "First_Turn_clean_danish.json"  # answers: NLLB cat, Baidu cat, NLLB dog, Baidu dog, ...
HEAVY = FIXTURES / "Third_Turn_heavy.json"  # tools (shuffled names): ask_to_user, finish, ..., get_translation_nllb


def react(action: str, arguments: dict) -> str:
    return f"Thought:\nAction: {action}\nAction Input: {json.dumps(arguments)}"


def nllb(word: str, **extra) -> dict:
    return {"input_text": word, "tgt_lang": "dan_Latn", "src_lang": "eng_Latn", **extra}


def score_one(tmp_path: Path, record: dict, prediction: str) -> tuple[str, bool, bool, bool]:
    """`tlkit score` on one RoTBench record (its file format) and one prediction: (category, TS, PI, CF)."""
    tmp_path.mkdir(exist_ok=True)
    data, predictions, out = tmp_path / "data.json", tmp_path / "p.jsonl", tmp_path / "r.jsonl"
    data.write_text(json.dumps([record]))
    predictions.write_text(json.dumps({"id": record["id"], "prediction": prediction}) + "\n")
    main(["--data", str(data), "--data-format", "rotbench", "--predictions", str(predictions), "--out", str(out)])
    (row,) = [json.loads(line) for line in out.read_text().splitlines()]
    return row["category"], row["ts"], row["pi"], row["cf"]


def test_an_earlier_answer_deletes_a_key_a_later_one_needs(tmp_path):
    (record,) = json.loads(DANISH.read_text())
    answers = record["conversations"][-1]["value"]
    assert answers[2] == react("get_translation_nllb", nllb("dog", max_length="None"))
    # The first NLLB answer (cat) deletes max_length from the prediction; the "dog" answer has it: CF fails,
    # though the prediction is that answer word for word.
    assert score_one(tmp_path / "a", record, answers[2]) == ("content_error", True, True, False)
    assert score_one(tmp_path / "b", record, answers[0]) == ("correct", True, True, True)  # cat: the first answer
    assert score_one(tmp_path / "c", record, answers[3]) == ("correct", True, True, True)  # Baidu: no "None" value


def test_the_reduced_prediction_lets_a_later_answer_pass(tmp_path):
    (record,) = json.loads(DANISH.read_text())
    answers = record["conversations"][-1]["value"]
    answers[2] = react("get_translation_nllb", nllb("dog"))  # the "dog" answer without max_length
    prediction = react("get_translation_nllb", nllb("dog", max_length="100"))
    # PI passes at the "cat" answer, which deletes max_length; the reduced prediction then equals the "dog" answer.
    assert score_one(tmp_path, record, prediction) == ("correct", True, True, True)


def test_a_predicted_finish_becomes_the_last_tool_for_good(tmp_path):
    (record,) = json.loads(HEAVY.read_text())
    answers = record["conversations"][-1]["value"]
    assert answers[1] == 'Thought:\nAction: finish\nAction Input: {"text": "See you later", "tgt_lang": "jp"}'
    assert score_one(tmp_path / "a", record, answers[1]) == ("correct", True, True, True)
    # An answer that calls the last tool (here named get_translation_nllb) first: a predicted `finish` is that tool
    # from then on, so the answer named `finish` no longer matches it, though the prediction is that answer.
    answers.insert(0, react("get_translation_nllb", {"answer": "じゃあまたね"}))
    assert score_one(tmp_path / "b", record, answers[2]) == ("redundant_or_missing", True, False, False)


# --- RoTBench on hand-built records (its file schema) ------------------------------------------


def rotbench_record(tools: list[dict], answers: list[str], history: list[dict] = ()) -> dict:
    system = (
        "You can use the following tools:\n" + json.dumps(tools) + "\nAnswer with Thought, Action and Action Input."
    )
    return {
        "id": "Turn 1: x",
        "scenario": "TG",
        "conversations": [
            {"from": "system", "value": system},
            {"from": "user", "value": "question"},
            *history,
            {"from": "assistant", "value": answers},
        ],
    }


def rotbench_inputs(record: dict) -> tuple[list[str], list[Tool]]:
    """(alternatives, tools) of a record: the last assistant turn's answers, the system prompt's tool list."""
    system = record["conversations"][0]["value"]
    tools, _ = json.JSONDecoder().raw_decode(system, system.index("["))
    return record["conversations"][-1]["value"], [
        Tool(t["name"], t.get("description", ""), t["parameters"]) for t in tools
    ]


def schema(*names: str) -> dict:
    return {"type": "object", "properties": {n: {"type": "string"} for n in names}, "required": list(names)}


def answer(action: str, arguments) -> str:
    text = arguments if isinstance(arguments, str) else json.dumps(arguments)
    return f"Thought: ok\nAction: {action}\nAction Input: {text}"


TOOLS = [
    {"name": "get_weather", "description": "", "parameters": schema("city", "date")},
    {"name": "count", "description": "", "parameters": schema("n")},
    {"name": "ask_to_user", "description": "", "parameters": schema("question")},
    {"name": "finish", "description": "", "parameters": schema("answer")},
]
WEATHER = rotbench_record(TOOLS, [answer("get_weather", {"city": "Paris", "date": "None"})])


@pytest.mark.parametrize(
    "prediction, expected",
    [
        (answer("get_weather", {"city": "Paris", "date": "None"}), (True, True, True)),
        (answer("get_weather", {"city": "Paris", "date": "2024-01-01"}), (True, True, True)),  # gold "None": any value
        (answer("get_weather", {"city": "Paris"}), (True, False, False)),  # a "None" name must still be there
        (answer("get_weather", {"city": "paris", "date": "None"}), (True, True, False)),  # values exact
        (answer("get_weather", {"city": "Paris", "date": "x", "unit": "C"}), (True, False, False)),
        (answer("Get_weather", {"city": "Paris", "date": "None"}), (False, False, False)),  # names case-sensitive
        (answer("finish", {"answer": "Paris"}), (False, False, False)),  # finish is not the gold here
        ('Thought: ok\nAction: get_weather\n\nAction Input: {"city": "Paris", "date": "None"}', (True, True, True)),
        (answer("get_weather", "{'city': 'Paris', 'date': 'None'}"), (False, False, False)),  # not JSON
        (answer("get_weather", '["Paris"]'), (False, False, False)),  # not an object
        (answer("get_weather", {}), (False, False, False)),  # empty object
        ("get_weather(city='Paris')", (False, False, False)),
    ],
)
def test_rotbench_rules(prediction, expected):
    assert score_rotbench(prediction, *rotbench_inputs(WEATHER)) == expected


def test_rotbench_content_filling_is_type_sensitive():
    alternatives, tools = rotbench_inputs(rotbench_record(TOOLS, [answer("count", {"n": 5})]))
    assert score_rotbench(answer("count", {"n": "5"}), alternatives, tools) == (True, True, False)
    assert score_rotbench(answer("count", {"n": 5}), alternatives, tools) == (True, True, True)
    assert score_rotbench(answer("count", {"n": 5.0}), alternatives, tools) == (
        True,
        True,
        True,
    )  # JSON equality, as the reference


def test_rotbench_finish_renamed_by_noise_and_values_not_compared():
    noisy = TOOLS[:2] + [
        {"name": "ask_2_usr", "description": "", "parameters": schema("question")},
        {"name": "fnish", "description": "", "parameters": schema("answer")},
    ]
    alternatives, tools = rotbench_inputs(rotbench_record(noisy, [answer("fnish", {"answer": "It is sunny."})]))
    assert score_rotbench(answer("finish", {"answer": "Something else"}), alternatives, tools) == (True, True, True)
    assert score_rotbench(answer("fnish", {"answer": "Something else"}), alternatives, tools) == (True, True, True)
    assert score_rotbench(answer("finish", {"result": "It is sunny."}), alternatives, tools) == (True, False, False)
    alternatives, tools = rotbench_inputs(rotbench_record(noisy, [answer("ask_2_usr", {"question": "Which city?"})]))
    assert score_rotbench(answer("ask_2_usr", {"question": "Where?"}), alternatives, tools) == (True, True, True)
    assert score_rotbench(answer("ask_to_user", {"question": "Which city?"}), alternatives, tools) == (
        False,
        False,
        False,
    )


def test_rotbench_any_alternative_and_multi_turn():
    history = [
        {"from": "assistant", "value": answer("count", {"n": 1})},
        {"from": "function", "value": '{"result": 1}'},
    ]
    record = rotbench_record(
        TOOLS,
        [
            answer("get_weather", {"city": "Paris"}),
            answer("get_weather", {"city": "Paris", "date": "today"}),
            "Thought: broken\nAction: count\nAction Input: {oops",
            answer("count", {"n": 2}),
        ],
        history,
    )
    alternatives, tools = rotbench_inputs(record)
    assert score_rotbench(answer("get_weather", {"city": "Paris", "date": "today"}), alternatives, tools) == (
        True,
        True,
        True,
    )
    assert score_rotbench(answer("get_weather", {"city": "Paris", "date": "tomorrow"}), alternatives, tools) == (
        True,
        True,
        False,
    )
    assert score_rotbench(answer("count", {"n": 2}), alternatives, tools) == (
        True,
        True,
        True,
    )  # the unparseable alternative is skipped
    assert score_rotbench(answer("count", {"n": 3}), alternatives, tools) == (True, True, False)
