"""The vision package installs beside core and its command line answers."""

from seqverse.vision import cli


def test_info_reports_versions(capsys):
    import json
    import platform
    from importlib import metadata

    import torch

    assert cli.main(["info", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {
        "package": "seqverse-vision", "seqverse-vision": metadata.version("seqverse-vision"),
        "seqverse-core": metadata.version("seqverse-core"), "python": platform.python_version(),
        "torch": torch.__version__, "device": "cuda" if torch.cuda.is_available() else "cpu"}


def test_no_command_prints_the_installed_groups_and_exits_2(capsys):
    import argparse

    groups = [a for a in cli.build_parser()._actions if isinstance(a, argparse._SubParsersAction)][0].choices
    assert cli.main([]) == 2
    out = capsys.readouterr().out
    assert "info" in groups and len(groups) >= 2  # info and at least one system
    assert all(f"    {name}" in out for name in groups), out
