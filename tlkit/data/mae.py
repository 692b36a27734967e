"""MAE: an assistant call whose tool feedback shows an error stays in the context, but gets no loss.

A tool message is an error when its source format says so (`Message.error`, e.g. ToolBench's
`{"error": "..."}` envelope or API-Bank's `exception`); otherwise when its text matches one of the
patterns (substrings, compared case- and punctuation-insensitively as the reference does, and
regexes), or it is a JSON object with a non-empty `error` field.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence

from tlkit.data.records import Message, Trajectory

DEFAULT_ERROR_SUBSTRINGS = (
    "is not defined",
    "required positional argument",
    "unexpected keyword argument",
    "missing required parameter",
    "invalid parameter",
    "invalid argument",
    "invalid request",
    "bad request",
    "unauthorized",
    "forbidden",
    "internal server error",
    "service unavailable",
    "connection error",
    "connection refused",
    "timed out",
    "rate limit",
    "traceback",
    "exception",
)
# HTTP status lines (`Status Code: 404`, `HTTP 500`, `404 Not Found`) and error-typed words.
DEFAULT_ERROR_REGEXES = (
    r"\b(status code|http)\s*:?\s*[45]\d\d\b",
    r"\b[45]\d\d\s+(client error|server error|not found)\b",
    r"\b\w*Error:",
)


def normalise(text: str) -> str:
    """Lower-case, punctuation to spaces, whitespace collapsed."""
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


def json_error_field(text: str) -> bool:
    """True for a JSON object whose `error` / `errors` field is non-empty."""
    if not text.lstrip().startswith("{"):
        return False
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        return False
    return isinstance(data, dict) and any(data.get(key) not in (None, "", [], {}, False) for key in ("error", "errors"))


class ErrorDetector:
    """Decides whether tool feedback shows an error, and says why."""

    def __init__(self, substrings: Sequence[str] | None = None, regexes: Sequence[str] | None = None):
        self.substrings = [(s, normalise(s)) for s in (DEFAULT_ERROR_SUBSTRINGS if substrings is None else substrings)]
        self.regexes = [(r, re.compile(r, re.IGNORECASE)) for r in (DEFAULT_ERROR_REGEXES if regexes is None else regexes)]

    def reason(self, message: Message) -> str | None:
        """Why `message` (a tool reply) is an error, or None if it is not."""
        if message.error is not None:
            return "error field" if message.error else None
        if json_error_field(message.content):
            return "json error field"
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
