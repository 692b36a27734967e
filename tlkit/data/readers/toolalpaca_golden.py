"""`toolalpaca_golden`: ToolAlpaca trajectories with real API replies (the Octobrist/ToolAlpaca fork).

The API objects of `toolalpaca`, plus `Instances`, one per instruction: `{input,
intermediate_steps: [[[action, action input (JSON text)], reply], ...], output?}`, or `{error}`
where the run crashed (no trajectory: skipped). Ids are `<API Name>/<instance index>`. Replies
start with `Status Code: NNN.`: error = NNN >= 400; a reply without a code leaves error None.
A step whose input is not JSON was rejected by the environment ("Invalid JSON format"): no call
was made, so the trajectory ends before it and `meta["truncated_at"]` keeps the step.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tlkit.data.readers._common import JSON_ERRORS, At
from tlkit.data.readers.toolalpaca import api_objects
from tlkit.records import Message, ToolCall, Trajectory

STATUS = re.compile(r"Status Code: (\d{3})\b")
REJECTED = "Invalid JSON format"


def read_toolalpaca_golden(path: str | Path) -> Iterator[Trajectory]:
    """User input, then a call and its reply per step, then the final answer where there is one."""
    for api, at, tools in api_objects(path):
        instances = at.get(api, "Instances", list, "Instances")
        for i in range(len(instances)):
            record, field = At(at.source, f"{at.record}/{i}"), f"Instances[{i}]"
            instance = record.get(instances, i, dict, field)
            if "intermediate_steps" not in instance and "error" in instance:
                continue
            messages = [Message("user", record.get(instance, "input", str, f"{field}.input"))]
            meta: dict[str, Any] = {}
            steps = record.get(instance, "intermediate_steps", list, f"{field}.intermediate_steps")
            for k, step in enumerate(steps):
                action, text, reply = unpack_step(step, record, f"{field}.intermediate_steps[{k}]")
                arguments = json_object(text)
                if arguments is None:
                    if not reply.startswith(REJECTED):
                        where = f"{field}.intermediate_steps[{k}][0][1]"
                        raise record.error(where, "expected a JSON object of arguments")
                    meta["truncated_at"] = {"step": k, "action": action, "action_input": text, "reply": reply}
                    break
                messages.append(Message("assistant", "", (ToolCall(action, arguments),)))
                messages.append(Message("tool", reply, error=status_error(reply)))
            output = instance.get("output")
            if isinstance(output, str) and output and not meta:
                messages.append(Message("assistant", output))
            yield Trajectory(record.record, tools, tuple(messages), meta)


def unpack_step(step: Any, at: At, field: str) -> tuple[str, str, str]:
    """`[[action, action input], reply]` -> its three strings."""
    call = at.get(step, 0, list, f"{field}[0]")
    return (
        at.get(call, 0, str, f"{field}[0][0]"),
        at.get(call, 1, str, f"{field}[0][1]"),
        at.get(step, 1, str, f"{field}[1]"),
    )


def json_object(text: str) -> dict[str, Any] | None:
    try:
        value = json.loads(text)
    except JSON_ERRORS:
        return None
    return value if isinstance(value, dict) else None


def status_error(reply: str) -> bool | None:
    """`Status Code: 404. ...` -> True; a 2xx/3xx code -> False; no code -> None."""
    match = STATUS.match(reply)
    return None if match is None else int(match.group(1)) >= 400
