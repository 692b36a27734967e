"""MAE's error detector: precision and recall on every labelled tool reply of the public data, the cases of issue 11."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from tlkit.data.readers.toolalpaca_golden import status_error
from tlkit.data.readers.toolbench import envelope_error
from tlkit.mae import ErrorDetector, mark_untrained, masked_turns
from tlkit.records import Message, ToolCall, Trajectory

LABELLED = Path(__file__).parent / "fixtures" / "mae" / "labelled_feedback.jsonl"
# The verdict each reader gives a reply from its text (API-Bank's reader: `exception` is set).
VERDICTS = {
    "toolbench": envelope_error,
    "toolalpaca_golden": status_error,
    "api_bank": lambda text: bool(json.loads(text)["exception"]),
    "glaive": lambda text: None,
}


def tool_reply(text: str, format: str = "glaive") -> Message:
    """A tool message as the reader of `format` makes it (glaive's has no verdict)."""
    return Message("tool", text, error=VERDICTS[format](text))


def confusion(detector: ErrorDetector, rows: list[dict]) -> Counter:
    """(label, detected) -> count."""
    return Counter((row["label"], detector.reason(tool_reply(row["text"], row["format"])) is not None) for row in rows)


def test_default_detector_precision_and_recall_on_the_labelled_public_data():
    rows = [json.loads(line) for line in LABELLED.read_text(encoding="utf-8").splitlines()]
    assert Counter(row["source"] for row in rows) == {
        "api_bank/lv1-lv2-samples": 508, "toolalpaca_golden/golden-eval_mix.json": 267,
        "glaive_toolcall/glaive_toolcall_en_demo.json": 211, "toolbench_examples/answer": 37,
        "toolbench_examples/answer (tree)": 46}
    assert sum(row["label"] for row in rows) == 119
    counts = confusion(ErrorDetector(), rows)
    tp, fp, fn = counts[True, True], counts[False, True], counts[True, False]
    # Measured: 108 / 112 = 0.964 and 108 / 119 = 0.908 (before issue 11: 94 / 98 = 0.959, 94 / 119 = 0.790).
    assert tp / (tp + fp) >= 0.964
    assert tp / (tp + fn) >= 0.907


# Real ToolBench replies (public data) whose error field is empty but whose response is an HTTP error.
TOOLBENCH_400 = (
    '{"error": "", "response": "{\'type\': \'https://tools.ietf.org/html/rfc7231#section-6.5.1\', '
    "'title': 'Bad Request', 'status': 400, 'traceId': '|b1da66ad-47a57f57d8b1a7d2.'}\"}"
)
TOOLBENCH_403 = (
    '{"error": "", "response": "\\"<html><head><title>Forbidden</title></head><body><h1>Forbidden</h1>Access is '
    'denied. Retrying will not help. Please verify your <pre>key=</pre> parameter.</body></html>\\""}'
)


@pytest.mark.parametrize("text", [TOOLBENCH_400, TOOLBENCH_403], ids=["400", "403"])
def test_an_empty_toolbench_error_field_leaves_the_response_to_the_patterns(text):
    assert envelope_error(text) is None
    assert ErrorDetector().reason(tool_reply(text, "toolbench")) is not None


@pytest.mark.parametrize("text", [
    "get_weather() takes 1 positional argument but 2 were given",
    "Invalid API call: unknown endpoint",
    "Response error",
    "Object of type SerpResults is not JSON serializable",
    "Language 'xx' is not supported",
    "slice indices must be integers or None or have an __index__ method",
    "ConnectionError",
    "{'error': 'Quota exceeded for this key'}",
    '{"error": {"code": 404}}',
    '{"status": "401", "msg": "Authentication required"}',
    "request invalid, data error. status_code=500",
    "{'success': False, 'message': 'Tracking information not found'}",
])
def test_errors_the_reference_catches(text):
    assert ErrorDetector().reason(tool_reply(text)) is not None


@pytest.mark.parametrize("text", [
    '{"message": "No exception records found"}',
    "Status: OK. Error: none",
    '{"error": "", "response": "{\'value\': []}"}',
    '{"api_name": "GetToday", "input": {}, "output": "2023-03-31", "exception": null}',
    '{"errors": [], "total": 0}',
    "{'ads': [], 'related_searches': {'images': [], 'text': []}, 'total': None}",
    '{"status": "unavailable", "message": "The website www.randomsite123.com is unavailable"}',
])
def test_replies_that_are_no_error(text):
    assert ErrorDetector().reason(tool_reply(text)) is None


def test_a_format_verdict_decides_alone():
    # A 200 reply whose data names "Unauthorized Access" (ToolAlpaca golden, AbuseIPDB/7).
    ok = 'Status Code: 200. Response: {"reports":[{"category":"Unauthorized Access"}]}'
    assert ErrorDetector().reason(tool_reply(ok, "toolalpaca_golden")) is None
    assert ErrorDetector().reason(Message("tool", "all fine", error=True)) == "error field"


def test_masked_turns_names_the_call_whose_reply_failed():
    call = Message("assistant", "", (ToolCall("search", {"q": "x"}),))
    trajectory = Trajectory("t", (), (
        Message("user", "find x"), call, Message("tool", TOOLBENCH_400), call, Message("tool", '{"hits": 3}'),
        Message("assistant", "3 hits")))
    assert masked_turns(trajectory, ErrorDetector()) == {1: "substring: bad request"}


def test_mark_untrained_marks_the_failed_call_and_nothing_else():
    call = Message("assistant", "", (ToolCall("search", {"q": "x"}),))
    trajectory = Trajectory("t", (), (
        Message("user", "find x"), call, Message("tool", TOOLBENCH_400), call, Message("tool", '{"hits": 3}'),
        Message("assistant", "3 hits")))
    marked = mark_untrained(trajectory, ErrorDetector())
    assert [m.untrained for m in marked.messages] == [None, "substring: bad request", None, None, None, None]
    assert marked.messages[1].tool_calls == call.tool_calls and trajectory.messages[1].untrained is None  # a copy
    fine = Trajectory("u", (), (Message("user", "x"), call, Message("tool", '{"hits": 3}')))
    assert mark_untrained(fine, ErrorDetector()) is fine
    by_hand = Trajectory("v", (), (Message("user", "x"), Message("assistant", "", call.tool_calls, untrained="mine"),
                                   Message("tool", TOOLBENCH_400)))
    assert mark_untrained(by_hand, ErrorDetector()).messages[1].untrained == "mine"  # the record's mark stays
