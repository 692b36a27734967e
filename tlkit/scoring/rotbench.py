"""RoTBench's own TS / PI / CF for one ReAct-style prediction (`score_rotbench`), as a pure function.

The rules docs/metrics.md states ("RoTBench's rules"), checked against RoTBench's evaluate.py; where a point
is open, the docstrings say how it is read here.
"""

from __future__ import annotations

from collections.abc import Sequence

from tlkit.calls import parse_react
from tlkit.records import Tool

FINISH, ASK_TO_USER = "finish", "ask_to_user"


def score_rotbench(prediction_text: str, alternatives: Sequence[str], tools: Sequence[Tool]) -> tuple[bool, bool, bool]:
    """(TS, PI, CF) of one prediction against a record's acceptable answers, as RoTBench's evaluate.py scores them.

    `alternatives` are the record's assistant texts (`Thought: ...\\nAction: NAME\\nAction Input:
    {JSON}`) in their stored order, `tools` the record's tool list in order, which RoTBench ends
    with `ask_to_user`, `finish` (either may be renamed by noise, so they are found by position).
    Read here:
    - the action is stripped of surrounding whitespace (the stated rule strips one trailing newline,
      and the reference skips the space after `Action:`);
    - a prediction whose input is not JSON, not an object, or `{}` fails all three;
      an alternative that does not parse is skipped;
    - each metric walks the alternatives in order and passes at the first one that passes it
      (`rotbench_level`): TS at the same action, PI at the same action and argument names, CF at
      those and equal values once the "None"-valued gold names are dropped. The walk keeps two
      of the reference's side effects: CF deletes those names from the prediction for the rest
      of the walk, and a predicted `finish` becomes the last tool's name for the rest of the walk
      at the first alternative that calls the last tool.
    """
    prediction = parse_react(prediction_text)
    if prediction is None or not isinstance(prediction[1], dict) or not prediction[1]:
        return False, False, False
    golds = [gold for gold in map(parse_react, alternatives) if gold is not None and isinstance(gold[1], dict)]
    names = [tool.name for tool in tools]
    ts, pi, cf = (rotbench_level(*prediction, golds, names, level) for level in (1, 2, 3))
    return ts, pi, cf


def rotbench_level(
    action: str, arguments: dict, golds: Sequence[tuple[str, dict]], names: Sequence[str], level: int
) -> bool:
    """evaluate.py's `ts_eval` (level 1), `pi_eval` (2) or `cf_eval` (3) on one record.

    Its state carries across the alternatives, as there: `action` and `arguments` change on the
    way. Values are compared with Python's `==`, as the reference's dict comparison does
    (`"5" != 5`, while `5 == 5.0` and `1 == true`); for the last two tools (finish,
    ask_to_user, by position or by name) values are not compared.
    """
    last_tool = names[-1] if names else FINISH
    no_values = {FINISH, ASK_TO_USER, *names[-2:]}
    arguments = dict(arguments)
    for gold_action, gold_arguments in golds:
        if action == FINISH and gold_action == last_tool:
            action = gold_action  # for good: a later alternative that calls a tool named `finish` no longer matches
        if gold_action != action:
            continue
        if level == 1:
            return True
        if gold_arguments.keys() != arguments.keys():  # in CF, the prediction as earlier alternatives reduced it
            continue
        if level == 2:
            return True
        unset = [name for name, value in gold_arguments.items() if value == "None"]
        for name in unset:  # for good: later alternatives are compared with the reduced prediction
            del arguments[name]
        if gold_action in no_values or all(arguments[name] == gold_arguments[name] for name in arguments):
            return True
    return False
