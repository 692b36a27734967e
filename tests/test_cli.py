"""The `tlkit` command: every shipped YAML parses, --help helps, bad input gets a clear error."""

import json
import shutil
from pathlib import Path

import pytest

from tlkit.cli import main

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted((ROOT / "experiments").rglob("*.yaml"))


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_shipped_yaml_parses(config, monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    assert config.read_text().startswith("#"), "each YAML opens with a comment giving its command"
    with pytest.raises(SystemExit) as exit:
        main(["fit", "--config", str(config), "--print_config"])
    assert exit.value.code in (0, None)
    printed = capsys.readouterr().out
    assert "class_path: tlkit." in printed and "trainer:" in printed


def test_help_lists_the_options(capsys):
    with pytest.raises(SystemExit):
        main(["fit", "--help"])
    text = capsys.readouterr().out
    for option in ("--data.train", "--data.mae", "--data.max_length", "--model CONFIG", "--trainer.max_steps"):
        assert option in text, option
    assert "tlkit.WeightedSFT" in text and "tlkit.ErrorAwarePPO" in text  # the known modules, by name
    with pytest.raises(SystemExit):
        main(["fit", "--model.help", "WeightedSFT"])  # a short name resolves too
    assert "--model.loss" in capsys.readouterr().out


def test_usage_and_an_unknown_command_list_every_verb(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "usage: tlkit [-h] {fit,validate,test,predict,score,ablate} ..." in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit:
        main(["scor", "--help"])
    message = str(exit.value.code)
    assert "unknown command 'scor'" in message and "score, ablate" in message and "did you mean 'score'?" in message


def test_a_misspelt_lora_setting_is_named_when_the_config_is_parsed(monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    with pytest.raises(SystemExit) as exit:
        main(["fit", "--config", "experiments/smoke.yaml", "--model.init_args.lora={r: 8, lora_alpah: 16}",
              "--print_config"])
    assert exit.value.code == 2
    error = capsys.readouterr().err
    assert "Unexpected keys: {'lora_alpah'}" in error and "Traceback" not in error


def test_malformed_record_names_file_record_and_field(tmp_path, monkeypatch, public_data):
    monkeypatch.chdir(ROOT)
    broken = tmp_path / "seal"
    broken.mkdir()
    lines = (public_data / "seal_tools/dev.jsonl").read_text().splitlines()[:5]
    record = json.loads(lines[2])
    record["calling"][0]["parameters"] = "not an object"
    lines[2] = json.dumps(record)
    (broken / "dev.jsonl").write_text("\n".join(lines) + "\n")
    shutil.copy(public_data / "seal_tools/tool.jsonl", broken / "tool.jsonl")
    with pytest.raises(SystemExit) as exit:
        main(["fit", "--config", "experiments/smoke.yaml",
              f"--data.train=[{{path: {broken / 'dev.jsonl'}, format: seal_tools}}]",
              f"--data.cache_dir={tmp_path / 'cache'}", f"--trainer.logger.init_args.save_dir={tmp_path / 'runs'}"])
    message = str(exit.value.code)
    assert message.startswith("tlkit: error:")
    assert str(broken / "dev.jsonl") in message and record["id"] in message and "parameters" in message
