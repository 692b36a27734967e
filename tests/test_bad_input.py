"""Malformed data files through the real commands: `tlkit score` and `tlkit fit` stop with
`tlkit: error: <file>: record <id or line>: field '<field>': <what>` and a non-zero exit, never a traceback.

Every file is built from a real record (the first of the shipped Seal-Tools subset, as a canonical record).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tlkit.cli import main
from tlkit.data.readers import read_trajectories

ROOT = Path(__file__).resolve().parents[1]
SEAL = ROOT / "experiments/data/seal_tools/dev_subset.jsonl"
DEPTH = 5000  # far deeper than Python's JSON parser goes


def base() -> dict:
    """A real record in the canonical format (one tool with `required` names, a gold call)."""
    return next(iter(read_trajectories(str(SEAL), "seal_tools"))).to_dict()


def lines(*records: dict) -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode()


def deeply_nested_line() -> tuple[bytes, str]:
    record = base()
    deep = {**record, "id": "deep", "meta": {"x": "DEEP"}}
    text = lines(record, deep).decode().replace('"DEEP"', "[" * DEPTH + "]" * DEPTH)
    return text.encode(), "line 2"


def deeply_nested_list() -> tuple[bytes, str]:
    """A JSON list file: the error names the line where the nesting is."""
    record = base()
    text = json.dumps([record, {**record, "id": "deep", "meta": {"x": "DEEP"}}], indent=1)
    line = next(i for i, text_line in enumerate(text.split("\n"), start=1) if "DEEP" in text_line)
    return text.replace('"DEEP"', "[" * DEPTH + "]" * DEPTH).encode(), f"line {line}"


def repeated_tool() -> tuple[bytes, str]:
    record = base()
    record["tools"].append(dict(record["tools"][0]))
    return lines(record), record["id"]


def unknown_required() -> tuple[bytes, str]:
    record = base()
    record["tools"][0]["parameters"]["required"] = [*record["tools"][0]["parameters"]["required"], "no_such_name"]
    return lines(record), record["id"]


def empty() -> tuple[bytes, str]:
    return b"", "line 1"


def not_utf8() -> tuple[bytes, str]:
    record = base()
    return lines(record) + lines({**record, "id": "café"}).decode().encode("latin-1"), "line 2"


CASES = [  # (build, file name, field, what the problem says)
    (deeply_nested_line, "data.jsonl", "<json>", "nested deeper than Python's JSON parser goes"),
    (deeply_nested_list, "data.json", "<json>", "nested deeper than Python's JSON parser goes"),
    (repeated_tool, "data.jsonl", "tools[1].name", "repeats the name of tools[0]"),
    (unknown_required, "data.jsonl", "tools[0].parameters.required", "'no_such_name' is not among the parameters"),
    (empty, "data.jsonl", "<file>", "no records"),
    (not_utf8, "data.jsonl", "<text>", "not UTF-8: byte 0xe9"),
]


def error_of(args: list[str]) -> str:
    """The message `tlkit ...` exits with; a string exit code means exit status 1 and the text on stderr."""
    with pytest.raises(SystemExit) as exit:
        main(args)
    assert isinstance(exit.value.code, str), exit.value.code
    return exit.value.code


def check(message: str, path: Path, record: str, field: str, problem: str) -> None:
    assert message.startswith(f"tlkit: error: {path}: record {record}: field '{field}': "), message
    assert problem in message, message


@pytest.mark.parametrize(("build", "name", "field", "problem"), CASES, ids=[case[0].__name__ for case in CASES])
def test_score_names_file_record_and_field(tmp_path, build, name, field, problem):
    data, record = build()
    path = tmp_path / name
    path.write_bytes(data)
    predictions = tmp_path / "predictions.jsonl"
    predictions.write_text(json.dumps({"id": base()["id"], "prediction": "getHealthWorkforce(location='x')"}) + "\n")
    message = error_of(["score", "--data", str(path), "--data-format", "tlkit", "--predictions", str(predictions),
                        "--out", str(tmp_path / "results.jsonl")])
    check(message, path, record, field, problem)
    assert not (tmp_path / "results.jsonl").exists()


@pytest.mark.parametrize(("build", "name", "field", "problem"), CASES, ids=[case[0].__name__ for case in CASES])
def test_fit_names_file_record_and_field(tmp_path, monkeypatch, build, name, field, problem):
    monkeypatch.chdir(ROOT)
    data, record = build()
    path = tmp_path / name
    path.write_bytes(data)
    message = error_of(["fit", "--config", "experiments/smoke.yaml", f"--data.train=[{{path: {path}, format: tlkit}}]",
                        f"--data.cache_dir={tmp_path / 'cache'}", f"--trainer.logger.init_args.save_dir={tmp_path}"])
    check(message, path, record, field, problem)


def test_predictions_that_are_not_utf8_name_the_line(tmp_path):
    data = tmp_path / "data.jsonl"
    data.write_bytes(lines(base()))
    predictions = tmp_path / "predictions.jsonl"
    predictions.write_bytes(lines({"id": base()["id"], "prediction": "x"}) + '{"id": "é"}\n'.encode("latin-1"))
    message = error_of(["score", "--data", str(data), "--data-format", "tlkit", "--predictions", str(predictions),
                        "--out", str(tmp_path / "results.jsonl")])
    check(message, predictions, "line 2", "<text>", "not UTF-8")
