"""The documentation: the site builds without warnings, and every `tlkit` command it shows parses."""

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tlkit import ablate, score
from tlkit.cli import main

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def shown_commands() -> list[tuple[str, str]]:
    """(page, command) for each `tlkit ...` line of a fenced block, continuation lines joined."""
    commands = []
    for page in PAGES:
        for block in re.findall(r"```[\w-]*\n(.*?)```", page.read_text(), re.S):
            for line in re.sub(r"\\\n\s*", " ", block).splitlines():
                line = line.strip().removeprefix("$ ")
                if line.startswith("tlkit "):
                    commands.append((page.name, line))
    return commands


COMMANDS = shown_commands()


def test_the_docs_show_commands_of_every_verb():
    assert {shlex.split(c, comments=True)[1] for _, c in COMMANDS} >= {"fit", "test", "predict", "score", "ablate"}


@pytest.mark.parametrize("page,command", COMMANDS, ids=[f"{p}:{c[:60]}" for p, c in COMMANDS])
def test_every_command_shown_parses(page, command, monkeypatch, capsys):
    monkeypatch.chdir(ROOT)  # the docs run commands from the repository root
    verb, *args = shlex.split(command, comments=True)[1:]
    if verb == "score":  # placeholders such as FILE are still arguments of the right shape
        score.build_parser().parse_args(args)
    elif verb == "ablate":
        options = ablate.parse_args(args)
        ablate.parse_seeds(options.seeds), ablate.parse_overrides(options.override)
        ablate.check_configs(ablate.parse_rows(options.rows))
    else:  # LightningCLI parses the whole configuration, YAML and overrides, before printing it
        with pytest.raises(SystemExit) as exit:
            main([verb, *args] if "--help" in args or "--print_config" in args else [verb, *args, "--print_config"])
        assert exit.value.code in (0, None), capsys.readouterr().err[-2000:]


def test_the_site_builds_strictly(tmp_path):
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)],
                            cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
