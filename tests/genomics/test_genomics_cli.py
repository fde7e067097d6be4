"""The genomics package installs beside core and its command line answers."""

from seqverse.genomics import cli


def test_info_reports_versions(capsys):
    assert cli.main(["info", "--json"]) == 0
    assert '"seqverse-genomics"' in capsys.readouterr().out


def test_no_command_exits_2():
    assert cli.main([]) == 2
