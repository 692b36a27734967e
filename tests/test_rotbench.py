"""RoTBench's content-filling rule as its evaluate.py runs it, through `tlkit score` on real RoTBench records.

evaluate.py (Junjie-Ye/RoTBench, Code/Evaluation/evaluate.py, `cf_eval`) keeps one prediction dict per
record while it walks the acceptable answers in order: at an answer with the same action and the same
keys it deletes the keys whose gold value is "None" from that dict for good, before comparing values.
It also turns a predicted `finish` into the last tool's name, for good, at the first answer that calls
the last tool.
"""

from __future__ import annotations

import json
from pathlib import Path

from tlkit.score import main

FIXTURES = Path(__file__).parent / "fixtures" / "rotbench"
DANISH = FIXTURES / "First_Turn_clean_danish.json"  # answers: NLLB cat, Baidu cat, NLLB dog, Baidu dog, ...
HEAVY = FIXTURES / "Third_Turn_heavy.json"  # tools (shuffled names): ask_to_user, finish, ..., get_translation_nllb


def react(action: str, arguments: dict) -> str:
    return f"Thought:\nAction: {action}\nAction Input: {json.dumps(arguments)}"


def nllb(word: str, **extra) -> dict:
    return {"input_text": word, "tgt_lang": "dan_Latn", "src_lang": "eng_Latn", **extra}


def score_one(tmp_path: Path, record: dict, prediction: str) -> tuple[str, bool, bool, bool]:
    """`tlkit score` on one RoTBench record (the shared format) and one prediction: (category, TS, PI, CF)."""
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
