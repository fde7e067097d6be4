"""Every domain package installs beside core and its command line answers (one test, four packages)."""

import argparse
import importlib
import json
import platform
from importlib import metadata

import pytest
import torch

DOMAINS = ["genomics", "recsys", "speech", "vision"]


def _cli(domain: str):
    return importlib.import_module(f"seqverse.{domain}.cli")


@pytest.mark.parametrize("domain", DOMAINS)
def test_info_reports_versions(domain, capsys):
    package = f"seqverse-{domain}"
    assert _cli(domain).main(["info", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {
        "package": package, package: metadata.version(package),
        "seqverse-core": metadata.version("seqverse-core"), "python": platform.python_version(),
        "torch": torch.__version__, "device": "cuda" if torch.cuda.is_available() else "cpu"}


@pytest.mark.parametrize("domain", DOMAINS)
def test_no_command_prints_the_installed_groups_and_exits_2(domain, capsys):
    cli = _cli(domain)
    groups = [a for a in cli.build_parser()._actions if isinstance(a, argparse._SubParsersAction)][0].choices
    assert cli.main([]) == 2
    out = capsys.readouterr().out
    assert "info" in groups and len(groups) >= 2  # info and at least one system
    assert all(f"    {name}" in out for name in groups), out
