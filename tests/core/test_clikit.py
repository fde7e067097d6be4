"""seqverse.core.clikit: argument types, the user-error rule, help that shows defaults once, and
system groups listed only when they import."""

import argparse
import sys

import pytest

from seqverse.core import clikit


@pytest.mark.parametrize("parse, text, value", [
    (clikit.positive_int, "3", 3), (clikit.positive_int, "1e3", 1000), (clikit.nonneg_int, "0", 0),
    (clikit.int_range(2, 4), "4", 4), (clikit.probability, "1", 1.0), (clikit.positive_float, "1e-9", 1e-9),
    (clikit.float_range(0, 1, hi_open=True), "0", 0.0), (clikit.int_list(1), "2, 4,8", [2, 4, 8]),
])
def test_types_accept(parse, text, value):
    assert parse(text) == value


@pytest.mark.parametrize("parse, text, message", [
    (clikit.positive_int, "0", "must be >= 1, got 0"), (clikit.positive_int, "1.5", "expected an integer"),
    (clikit.positive_int, "1e400", "expected an integer"), (clikit.nonneg_int, "-1", "must be >= 0"),
    (clikit.int_range(2, 4), "5", "must be >= 2 and <= 4, got 5"), (clikit.probability, "1.01", "<= 1"),
    (clikit.positive_float, "0", "must be > 0"), (clikit.positive_float, "inf", "finite"),
    (clikit.float_range(0, 1, hi_open=True), "1", "< 1"), (clikit.int_list(1), "", "comma-separated"),
    (clikit.int_list(1), "1,0", "must be >= 1, got 0 (in '1,0')"),
])
def test_types_refuse_with_a_reason(parse, text, message):
    with pytest.raises(argparse.ArgumentTypeError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse(text)


def test_path_types(tmp_path):
    (tmp_path / "f.txt").write_text("x")
    assert clikit.existing_file(str(tmp_path / "f.txt")) == str(tmp_path / "f.txt")
    assert clikit.existing_dir(str(tmp_path)) == str(tmp_path)
    for parse, arg, message in [(clikit.existing_file, tmp_path / "none", "no such file"),
                                (clikit.existing_file, tmp_path, "is a directory"),
                                (clikit.existing_dir, tmp_path / "f.txt", "not a directory"),
                                (clikit.output_file, tmp_path, "is a directory"),
                                (clikit.output_dir, tmp_path / "f.txt", "exists and is not a directory"),
                                (clikit.output_file, " ", "empty output path")]:
        with pytest.raises(argparse.ArgumentTypeError, match=message):
            parse(str(arg))


def _parser():
    parser, sub = clikit.package_parser("prog", "seqverse-core", "test")
    p = sub.add_parser("go", formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("-n", type=clikit.int_range(1, 9), default=5, help="count")
    p.add_argument("--rate", type=float, default=0.5, help="a rate (default 0.5)")
    p.add_argument("--seed", type=int, default=0, help="seed")
    p.add_argument("--name", help="no default to show")
    p.add_argument("--fail", choices=["user", "os", "bug"], help="what to raise")

    def go(args):
        if args.fail == "user":
            raise clikit.UserError("in.fa: record 3 (r7): bad base\nsecond line")
        if args.fail == "os":
            open(args.name)
        if args.fail == "bug":
            raise ZeroDivisionError("a bug")
        print(args.n)

    p.set_defaults(func=go)
    return parser


def test_the_user_error_rule(capsys, tmp_path):
    parser = _parser()
    assert clikit.run(parser, ["go", "-n", "0"]) == 2
    err = capsys.readouterr().err
    assert err == "prog go: error: argument -n: must be >= 1 and <= 9, got 0 (see prog go --help)\n"  # one line, no usage
    assert clikit.run(parser, ["go", "--fail", "user"]) == 2
    assert capsys.readouterr().err == "prog: error: in.fa: record 3 (r7): bad base; second line\n"  # joined to one line
    assert clikit.run(parser, ["go", "--fail", "os", "--name", str(tmp_path / "gone.txt")]) == 2
    assert capsys.readouterr().err == f"prog: error: {tmp_path / 'gone.txt'}: No such file or directory\n"
    with pytest.raises(ZeroDivisionError):  # anything else is a bug: it propagates (a traceback)
        clikit.run(parser, ["go", "--fail", "bug"])
    assert clikit.run(parser, ["go", "-n", "7"]) == 0 and capsys.readouterr().out == "7\n"


def test_help_shows_each_default_once(capsys):
    assert clikit.run(_parser(), ["go", "--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "count (default: 5)" in out and "seed (default: 0)" in out
    assert "a rate (default 0.5)" in out and out.count("0.5") == 1  # already said: not repeated
    assert "no default to show" in out and "no default to show (default" not in out


def test_groups_listed_only_when_importable(tmp_path, monkeypatch, capsys):
    pkg = tmp_path / "fakedomain"
    for name, body in {"good": "", "needs_missing": "REQUIRES = ('no_such_module_xyz',)\n",
                       "broken": "import no_such_module_abc\n"}.items():
        (pkg / name).mkdir(parents=True)
        (pkg / name / "__init__.py").write_text("")
        (pkg / name / "cli.py").write_text(body + f"def register(sub):\n    sub.add_parser({name!r}, help='the {name} system')\n")
    (pkg / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    parser, sub = clikit.package_parser("fake", "seqverse-core", "fake domain")
    added = clikit.add_system_groups(sub, "fakedomain", ["good", "needs_missing", "broken", "not_landed"])
    assert added == ["good"]
    parser.print_help()
    out = capsys.readouterr().out
    assert "the good system" in out and "needs_missing" not in out and "broken" not in out
    for name in list(sys.modules):
        if name.startswith("fakedomain"):
            del sys.modules[name]
