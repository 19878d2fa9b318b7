"""The command line: every sub-command is listed and documents itself."""

from __future__ import annotations

import subprocess
import sys

import pytest

from flatness.cli import _command_modules, main

EXPECTED = {"train", "minimizers", "attack", "targets", "sharpness", "landscape", "chapter",
            "book", "reproduce", "robust-datasets"}


def test_help_lists_every_sub_command():
    out = subprocess.run([sys.executable, "-m", "flatness", "--help"], capture_output=True,
                         text=True, check=True).stdout
    names = {m.NAME for m in _command_modules()}
    assert names >= EXPECTED, EXPECTED - names
    for name in names:
        assert name in out


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_sub_command_has_help(name, capsys):
    with pytest.raises(SystemExit) as stop:
        main([name, "--help"])
    assert stop.value.code == 0
    assert "usage:" in capsys.readouterr().out


def test_chapter_list_and_unknown_chapter(capsys):
    assert main(["chapter", "list"]) == 0
    assert "lr_decay" in capsys.readouterr().out
    assert main(["chapter", "no_such_chapter"]) == 2
    assert "unknown chapter" in capsys.readouterr().err
