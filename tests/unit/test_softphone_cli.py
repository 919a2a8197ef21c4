"""``pbx softphone``'s input checks: bad input is refused before anything is
sent, with exit code 2 and a message naming what is wrong."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from pbx.cli import build_parser
from softphone.cli import main

BASE = ["softphone", "--server", "192.0.2.10", "--user", "1001"]


@pytest.mark.parametrize("args, message", [
    (["--call", "1002", "--digits", "12x"], "not a DTMF key: X"),
    (["--call", "1002", "--hangup-after", "soon"], "not a number of seconds: soon"),
    (["--call", "1002", "--answer"], "not allowed with argument"),
    (["--call", "1002", "--transport", "sctp"], "invalid choice: 'sctp'"),
])
def test_the_parser_refuses(args: list[str], message: str,
                            capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(BASE + args)
    assert exited.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("args, message", [
    (["--password", "x"], "nothing to do: give --call NUMBER, --answer or --interactive"),
    (["--call", "1002"], "no password"),
    (["--password", "x", "--call", "1002", "--server", "pbx:99999"], "the port must be 1-65535"),
    (["--password", "x", "--call", "1002", "--play", "/no/such.wav"], "--play: /no/such.wav: no such file"),
    (["--password", "x", "--call", "1002", "--expiry", "30"], "--expiry: from 60 to 86400"),
    (["--password", "x", "--call", "1002", "--record", "/no/such/dir/out.wav"],
     "--record: no such directory /no/such/dir"),
])
def test_the_command_refuses(args: list[str], message: str, monkeypatch: pytest.MonkeyPatch,
                             tmp_path: Path) -> None:
    monkeypatch.delenv("PBX_SOFTPHONE_PASSWORD", raising=False)
    err = io.StringIO()
    assert main(build_parser().parse_args(BASE + args), io.StringIO(), err) == 2
    assert message in err.getvalue()
