"""What every module shares (`tlkit.modules.base`): the export, and `last_export` naming the newest one."""


def test_last_export_names_the_newest_fit_and_is_replaced_atomically(tmp_path):
    from tlkit.modules.base import point_last_export

    for version in (0, 1):
        export = tmp_path / "sft" / f"version_{version}" / "hf_model"
        export.mkdir(parents=True)
        (export / "config.json").write_text(str(version))
        point_last_export(export)
    link = tmp_path / "sft/last_export"
    assert link.is_symlink() and (link / "config.json").read_text() == "1"
    assert [p.name for p in (tmp_path / "sft").iterdir() if p.name.startswith(".")] == []  # no temporary left
