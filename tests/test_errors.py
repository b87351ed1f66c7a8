"""User errors are one line on the command line; bugs keep their traceback."""

import pytest

from jaxnn.app import cli
from jaxnn.errors import UserError


def test_user_error_is_a_value_error():
    assert issubclass(UserError, ValueError)


def test_the_cli_prints_a_user_error_as_one_line_and_exits_2(monkeypatch, capsys):
    def fail(args):
        raise UserError("expected X, got Y")

    monkeypatch.setitem(cli.COMMANDS, "book", fail)
    assert cli.main(["book"]) == 2
    assert capsys.readouterr().err == "jaxnn book: error: expected X, got Y\n"


def test_a_bug_is_not_swallowed(monkeypatch):
    def bug(args):
        raise ZeroDivisionError("a bug")

    monkeypatch.setitem(cli.COMMANDS, "book", bug)
    with pytest.raises(ZeroDivisionError):
        cli.main(["book"])


def test_a_plain_value_error_from_inside_a_command_is_a_bug(monkeypatch):
    def bug(args):
        raise ValueError("internal")

    monkeypatch.setitem(cli.COMMANDS, "book", bug)
    with pytest.raises(ValueError, match="internal"):
        cli.main(["book"])
