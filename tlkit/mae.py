"""MAE: an assistant call whose tool feedback shows an error stays in the context, but gets no loss.

A tool message is an error when its source format says so (`Message.error` True, e.g. API-Bank's
`exception` or ToolAlpaca's `Status Code: 404`); a format's "no error" (`Message.error` False: an
HTTP 2xx status, API-Bank's null `exception`) is trusted too. Otherwise (no verdict: `None`) its
text decides: substrings, compared case- and punctuation-insensitively as the reference does, and
regexes. The defaults are the reference's list (Junjie-Ye/TL-Training, `code/mae/mae.py`) read
as the failures it names, plus HTTP statuses and common API failure messages; measured on every
tool reply of the public data (tests/fixtures/public_data) in `tests/fixtures/mae/labelled_feedback.jsonl`
(docs/mae.md).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import replace

from tlkit.records import Message, Trajectory

DEFAULT_ERROR_SUBSTRINGS = (
    # The reference's list, less its tool-specific `'related_searches'` (a KeyError of one search
    # tool; a successful search reply holds that key) and its `"error":` (stripped of punctuation it
    # is the word "error", in every ToolBench reply): the error-field regex below stands for it.
    "is not defined",
    "positional argument",
    "unexpected keyword",
    "not supported",
    "invalid api call",
    "response error",
    "not json serializable",
    "slice indices",
    "connection error",
    # Python, HTTP and API failures the reference's data did not show.
    "missing required parameter",
    "invalid parameter",
    "invalid argument",
    "invalid request",
    "no such function",
    "does not exist",
    "doesn't exist",
    "bad request",
    "unauthorized",
    "authentication required",
    "api key is required",
    "forbidden",
    "access is denied",
    "internal server error",
    "service unavailable",
    "connection refused",
    "timed out",
    "rate limit",
    "traceback",
)
DEFAULT_ERROR_REGEXES = (
    # HTTP statuses: `Status Code: 404`, `status_code=500`, `'statusCode': 400`, `"status": "401"`, `HTTP 500`.
    r"\b(status[ _]?code|status|http)['\"]?\s*[:=]?\s*['\"]?[45]\d\d\b",
    r"\b[45]\d\d\s+(client error|server error|not found)\b",
    # A Python or Java exception type named anywhere: `ConnectionError`, `KeyError: 'x'`, `FooException`.
    r"(?-i:\b[A-Z]\w*(Error|Exception)\b)",
    # An `error(s)` / `exception` field or label with a value (JSON, Python repr, text), and an explicit
    # `success: false`; "error": "", `exception: null` and "Error: none" say there is none.
    r"\b(errors?|exception)['\"]?\s*:(?!\s*(\"\"|''|null|none|false|0|\[\]|\{\})\s*([,;}\].]|$))",
    r"\bsuccess['\"]?\s*:\s*false\b",
)


def normalise(text: str) -> str:
    """Lower-case, punctuation to spaces, whitespace collapsed."""
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


class ErrorDetector:
    """Decides whether tool feedback shows an error, and says why."""

    def __init__(self, substrings: Sequence[str] | None = None, regexes: Sequence[str] | None = None):
        self.substrings = [(s, normalise(s)) for s in (DEFAULT_ERROR_SUBSTRINGS if substrings is None else substrings)]
        regexes = DEFAULT_ERROR_REGEXES if regexes is None else regexes
        self.regexes = [(r, re.compile(r, re.IGNORECASE)) for r in regexes]

    def reason(self, message: Message) -> str | None:
        """Why `message` (a tool reply) is an error, or None if it is not."""
        if message.error is not None:
            return "error field" if message.error else None
        text = normalise(message.content)
        for raw, pattern in self.substrings:
            if pattern and pattern in text:
                return f"substring: {raw}"
        for raw, regex in self.regexes:
            if regex.search(message.content):
                return f"regex: {raw}"
        return None


def masked_turns(trajectory: Trajectory, detector: ErrorDetector) -> dict[int, str]:
    """Assistant turns (by message index) that call tools and get error feedback, with the reason."""
    masked, messages = {}, trajectory.messages
    for i, message in enumerate(messages):
        if message.role != "assistant" or not message.tool_calls:
            continue
        j = i + 1
        while j < len(messages) and messages[j].role == "tool":
            reason = detector.reason(messages[j])
            if reason is not None:
                masked[i] = reason
                break
            j += 1
    return masked


def mark_untrained(trajectory: Trajectory, detector: ErrorDetector) -> Trajectory:
    """The trajectory with every turn MAE leaves untrained marked (`Message.untrained`, the reason): the one
    place MAE acts; the tokeniser gives those turns no loss and PPO takes no prompt from them."""
    masked = masked_turns(trajectory, detector)
    if not masked:
        return trajectory
    messages = tuple(replace(m, untrained=masked[i]) if i in masked and m.untrained is None else m
                     for i, m in enumerate(trajectory.messages))  # a mark the record carries stays
    return replace(trajectory, messages=messages)
