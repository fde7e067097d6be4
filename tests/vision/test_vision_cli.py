"""The vision package installs beside core and its command line answers."""

from seqverse.vision import cli


def test_info_reports_versions(capsys):
    assert cli.main(["info", "--json"]) == 0
    assert '"seqverse-vision"' in capsys.readouterr().out


def test_no_command_exits_2():
    assert cli.main([]) == 2
