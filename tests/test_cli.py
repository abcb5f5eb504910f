"""The ``rtq`` command line's parser (rtq.cli)."""
from __future__ import annotations

import pytest

from rtq.cli import COMMANDS, build_parser, main


def subparser(parser, name):
    (action,) = parser._subparsers._group_actions
    return action.choices[name]


@pytest.mark.parametrize("name", COMMANDS)
def test_a_command_parses_alike_with_its_parser_alone(name):
    """main builds only the named command's parser: its usage and help are the same as
    in the parser of every command."""
    assert subparser(build_parser([name]), name).format_help() == subparser(build_parser(), name).format_help()


def test_a_command_line_without_a_known_command_is_parsed_with_every_command(capsys):
    with pytest.raises(SystemExit):
        main(["rendr", "in.wav"])
    err = capsys.readouterr().err
    assert all(repr(name) in err for name in COMMANDS), err
