"""RoTBench-style noise on tool and parameter names, as a seeded transform of a `Trajectory`.

Which names: every gold tool (those the target turn, or a RoTBench alternative, calls) and about
half of the other tools; within each tool, the parameters the gold calls use and about half of
the rest ("about half": exactly half, an odd count rounded up or down at random).
What happens to a chosen name, by level (RoTBench's levels; docs/metrics.md, "Noise"):
- slight: one or two letters inserted, deleted or substituted;
- medium: the name reversed, or replaced by random letters;
- heavy: tool names are shuffled among the chosen tools (every one moves; a lone chosen tool swaps
  with a random other tool, and a record with one tool keeps its name). Per tool, a coin decides
  between shuffling its chosen parameter names (needs two) and adding a new required parameter
  with a random name whose description states its fixed value ("must be set to 'qzfm'"); every
  gold tool gets one of the two;
- union: each chosen name draws slight, medium or heavy; the heavy-drawn tool names are shuffled
  among themselves (a lone one swaps with an unchosen tool, or, with none, gets medium noise), the
  heavy-drawn parameter names of a tool likewise when there are two or more, while a lone one stays
  and its tool gets a new required parameter instead.
Renaming is consistent: tool schemas (name, properties, required), every assistant call (name,
argument keys), BFCL's `possible_answer` and RoTBench's `alternatives` in meta; an added parameter
also enters every call to its tool with its fixed value, so a gold call stays right against the
noisy tools. New names never collide with any name of their group (re-drawn), and a name that
could be written as a Python call (`a.b_c`) stays one. Message texts are not touched.
"""

from __future__ import annotations

import keyword
import random
import string
from collections.abc import Callable, Iterable
from typing import Any, Literal

from tlkit.records import Trajectory, gold_calls

NoiseLevel = Literal["slight", "medium", "heavy", "union"]
NOISE_LEVELS = ("slight", "medium", "heavy", "union")
LETTERS = string.ascii_lowercase
MAX_TRIES = 100  # re-draws of a colliding or unusable name before falling back to fresh random letters

Edit = Callable[[str, random.Random], str]


# ---------------------------------------------------------------------------------------------
# One name


def slight_edit(name: str, rng: random.Random) -> str:
    """One or two letters inserted, deleted or substituted."""
    chars = list(name)
    for _ in range(rng.randint(1, 2)):
        operation = rng.choice(("insert", "delete", "substitute") if chars else ("insert",))
        if operation == "insert":
            chars.insert(rng.randint(0, len(chars)), rng.choice(LETTERS))
        elif operation == "delete":
            del chars[rng.randrange(len(chars))]
        else:
            i = rng.randrange(len(chars))
            chars[i] = rng.choice(LETTERS.replace(chars[i].lower(), ""))
    return "".join(chars)


def random_letters(length: int, rng: random.Random) -> str:
    return "".join(rng.choice(LETTERS) for _ in range(length))


def medium_edit(name: str, rng: random.Random) -> str:
    """The name reversed, or random letters of about its length."""
    if rng.random() < 0.5:
        return name[::-1]
    return random_letters(rng.randint(max(3, len(name) - 2), max(4, len(name) + 2)), rng)


def callable_name(name: str) -> bool:
    """The name can be written in a Python call (dotted identifiers, no keyword)."""
    return all(part.isidentifier() and not keyword.iskeyword(part) for part in name.split("."))


def fresh_name(name: str, edit: Edit, taken: set[str], rng: random.Random) -> str:
    """`edit(name)`, re-drawn until it is new in `taken` (and callable if `name` was)."""
    must_call = callable_name(name)
    for _ in range(MAX_TRIES):
        new = edit(name, rng)
        if new and new not in taken and (callable_name(new) or not must_call):
            return new
    while True:  # an edit that keeps failing (a one-letter name among many): plain random letters
        new = random_letters(rng.randint(6, 10), rng)
        if new not in taken and callable_name(new):
            return new


def derange(names: list[str], rng: random.Random) -> dict[str, str]:
    """A random cyclic permutation of the names (Sattolo's algorithm): every name moves."""
    shuffled = list(names)
    for i in range(len(shuffled) - 1, 0, -1):
        j = rng.randrange(i)
        shuffled[i], shuffled[j] = shuffled[j], shuffled[i]
    return dict(zip(names, shuffled))


# ---------------------------------------------------------------------------------------------
# One group of names (the record's tools, or one tool's parameters)


def choose(names: list[str], always: set[str], rng: random.Random) -> list[str]:
    """`always` and half of the other names (an odd count rounded at random), in their order."""
    others = [n for n in names if n not in always]
    count = len(others) // 2 + (rng.random() < 0.5 if len(others) % 2 else 0)
    picked = set(rng.sample(others, count))
    return [n for n in names if n in always or n in picked]


def draw_levels(chosen: list[str], level: NoiseLevel, rng: random.Random) -> dict[str, str]:
    """Each chosen name's level: the record's, or under union one drawn per name."""
    return {n: rng.choice(("slight", "medium", "heavy")) if level == "union" else level for n in chosen}


def edit_names(names: Iterable[str], levels: dict[str, str], taken: set[str], rng: random.Random) -> dict[str, str]:
    """Slight or medium noise on each name; `taken` grows with every new name."""
    mapping = {}
    for name in names:
        mapping[name] = fresh_name(name, slight_edit if levels[name] == "slight" else medium_edit, taken, rng)
        taken.add(mapping[name])
    return mapping


def rename_tools(names: list[str], gold: set[str], level: NoiseLevel, rng: random.Random) -> dict[str, str]:
    """Old -> new tool name for every tool that changes."""
    chosen = choose(names, gold, rng)
    levels = draw_levels(chosen, level, rng)
    heavy = [n for n in chosen if levels[n] == "heavy"]
    if len(heavy) == 1:
        spare = [n for n in names if n not in chosen]
        if spare:
            heavy.append(rng.choice(spare))
        elif level == "union":
            levels[heavy.pop()] = "medium"  # nothing to swap with; the name was drawn, so it still changes
        else:
            heavy.pop()  # heavy with a single tool: nothing to shuffle, the parameters carry the noise
    mapping = derange(heavy, rng) if len(heavy) >= 2 else {}
    edited = [n for n in chosen if n not in mapping and levels[n] != "heavy"]
    return mapping | edit_names(edited, levels, set(names), rng)


def noise_parameters(
    names: list[str], used: set[str], is_gold: bool, level: NoiseLevel, rng: random.Random
) -> tuple[dict[str, str], tuple[str, str] | None]:
    """(old -> new parameter name, the added required parameter and its fixed value, if any) for one tool."""
    chosen = choose(names, used, rng)
    levels = draw_levels(chosen, level, rng)
    heavy = [n for n in chosen if levels[n] == "heavy"]
    mapping: dict[str, str] = {}
    add = False
    if level == "heavy":
        if len(heavy) >= 2 and rng.random() < 0.5:
            mapping = derange(heavy, rng)
        else:
            add = bool(heavy) or is_gold
    elif len(heavy) >= 2:
        mapping = derange(heavy, rng)
    else:
        add = bool(heavy)
    taken = set(names)
    mapping |= edit_names([n for n in chosen if levels[n] != "heavy"], levels, taken, rng)
    if not add:
        return mapping, None
    added = fresh_name("", lambda _, r: random_letters(r.randint(5, 8), r), taken, rng)
    return mapping, (added, random_letters(rng.randint(4, 6), rng))


# ---------------------------------------------------------------------------------------------
# The record


def gold_names(trajectory: Trajectory) -> list[dict[str, Any]]:
    """The record's gold calls as `{name, arguments}`: the target turn's and RoTBench's alternatives."""
    target = [{"name": c.name, "arguments": c.arguments} for c in gold_calls(trajectory)]
    alternatives = trajectory.meta.get("alternatives") or []
    return [c for c in [*target, *alternatives] if isinstance(c, dict) and isinstance(c.get("name"), str)]


def rename_call(call: dict[str, Any], tools: dict[str, str], params: dict[str, dict[str, str]], added: dict) -> None:
    """Rewrite a `{name, arguments}` call in place (the caller owns the copy)."""
    old = call["name"]
    mapping = params.get(old, {})
    call["arguments"] = {mapping.get(k, k): v for k, v in (call.get("arguments") or {}).items()}
    if old in added:
        name, value = added[old]
        call["arguments"][name] = value
    call["name"] = tools.get(old, old)


def rename_answer(entry: dict[str, Any], tools: dict[str, str], params: dict[str, dict[str, str]], added: dict) -> dict:
    """One BFCL `possible_answer` entry `{function: {param: [allowed]}}`, renamed."""
    ((old, allowed),) = entry.items()
    mapping = params.get(old, {})
    out = {mapping.get(k, k): v for k, v in allowed.items()}
    if old in added:
        out[added[old][0]] = [added[old][1]]
    return {tools.get(old, old): out}


def add_noise(trajectory: Trajectory, level: NoiseLevel, seed: int) -> Trajectory:
    """A noisy copy of `trajectory` (the original is untouched); deterministic for (id, level, seed)."""
    if level not in NOISE_LEVELS:
        raise ValueError(f"unknown noise level {level!r}: expected one of {', '.join(NOISE_LEVELS)}")
    rng = random.Random(f"{seed}:{level}:{trajectory.id}")
    data = trajectory.to_dict()  # a deep copy: everything below rewrites it in place
    gold = gold_names(trajectory)
    tool_names = list(dict.fromkeys(t["name"] for t in data["tools"]))
    tools = rename_tools(tool_names, {c["name"] for c in gold}, level, rng)

    params: dict[str, dict[str, str]] = {}
    added: dict[str, tuple[str, str]] = {}
    for tool in data["tools"]:
        name, schema = tool["name"], tool["parameters"]
        if name in params:  # a repeated tool name: renamed like its first occurrence
            continue
        used = {k for c in gold if c["name"] == name for k in (c.get("arguments") or {})}
        names = list(schema.get("properties") or {})
        params[name], extra = noise_parameters(names, used & set(names), name in {c["name"] for c in gold}, level, rng)
        if extra:
            added[name] = extra

    for tool in data["tools"]:
        old, schema, mapping = tool["name"], tool["parameters"], params.get(tool["name"], {})
        properties = {mapping.get(k, k): v for k, v in (schema.get("properties") or {}).items()}
        required = [mapping.get(k, k) for k in schema.get("required") or []]
        if old in added:
            extra, value = added[old]
            properties[extra] = {"type": "string", "description": f"Required: must be set to '{value}'."}
            required.append(extra)
        schema["properties"] = properties
        if required or "required" in schema:
            schema["required"] = required
        tool["name"] = tools.get(old, old)
    for message in data["messages"]:
        for call in message.get("tool_calls") or []:
            rename_call(call, tools, params, added)
    meta = data.get("meta") or {}
    for call in meta.get("alternatives") or []:
        rename_call(call, tools, params, added)
    if isinstance(meta.get("possible_answer"), list):
        meta["possible_answer"] = [rename_answer(entry, tools, params, added) for entry in meta["possible_answer"]]
    return Trajectory.from_dict(data, source="<noise>", record=trajectory.id)
