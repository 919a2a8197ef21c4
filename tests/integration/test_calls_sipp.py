"""The everyday call outcomes with sipp on both ends: caller cancel, busy, no
answer (ring timeout) and forking to two devices where one answers."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.peers import SCENARIOS, Pbx, run_sipp, running_pbx, sipp_callee

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("sipp") is None, reason="sipp not installed"),
]

USERS = {n: f"sipp-{n}-pw" for n in ("2001", "2002", "2003", "2004", "2005")}
SECTIONS = "\n[2005]\nsecret = sipp-2005-pw\nring_timeout = 5\nvoicemail = no\n"


@pytest.fixture(scope="module")
def pbx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pbx]:
    users = {n: p for n, p in USERS.items() if n != "2005"}
    with running_pbx(tmp_path_factory.mktemp("sipp-calls"), users, sections=SECTIONS) as server:
        yield server


def refused(tmp: Path, status: int) -> str:
    """call_refused.xml.in with the status the caller must get."""
    path = tmp / f"call_refused_{status}.xml"
    path.write_text((SCENARIOS / "call_refused.xml.in").read_text().replace("STATUS", str(status)))
    return str(path)


def caller(number: str, callee: str) -> list[tuple[str, str, str]]:
    return [(number, USERS[number], callee)]


def test_caller_cancels_while_it_rings(pbx: Pbx, tmp_path: Path) -> None:
    with sipp_callee(tmp_path, pbx, "2002", USERS["2002"], ["-m", "1"], scenario="uas_ring.xml") as phone:
        result = run_sipp("call_cancel.xml", pbx, caller("2001", "2002"), tmp=tmp_path)
        assert result.returncode == 0 and result.successful == 1, result.output[-2000:]
        assert phone.wait(10) == 0  # the ringing phone got the PBX's CANCEL


def test_busy(pbx: Pbx, tmp_path: Path) -> None:
    with sipp_callee(tmp_path, pbx, "2003", USERS["2003"], ["-m", "1"], scenario="uas_busy.xml") as phone:
        result = run_sipp(refused(tmp_path, 486), pbx, caller("2001", "2003"), tmp=tmp_path)
        assert result.returncode == 0 and result.successful == 1, result.output[-2000:]
        assert phone.wait(10) == 0  # the PBX ACKed the 486


def test_no_answer(tmp_path: Path) -> None:
    with running_pbx(tmp_path, {"2001": USERS["2001"]}, sections=SECTIONS) as server:
        with sipp_callee(tmp_path, server, "2005", USERS["2005"], ["-m", "1"],
                         scenario="uas_ring.xml") as phone:
            result = run_sipp(refused(tmp_path, 480), server, caller("2001", "2005"),
                              tmp=tmp_path, timeout=20)
            assert result.returncode == 0 and result.successful == 1, result.output[-2000:]
            assert phone.wait(10) == 0  # cancelled after ring_timeout = 5


def test_forking_to_two_devices_one_answers(pbx: Pbx, tmp_path: Path) -> None:
    with sipp_callee(tmp_path, pbx, "2004", USERS["2004"], ["-m", "1"], scenario="uas_ring.xml") as desk, \
            sipp_callee(tmp_path, pbx, "2004", USERS["2004"], ["-m", "1"]) as dect:
        result = run_sipp("call_uac.xml", pbx, caller("2001", "2004"), tmp=tmp_path,
                          extra=["-d", "1000"])
        assert result.returncode == 0 and result.successful == 1, result.output[-2000:]
        assert desk.wait(10) == 0  # rang, then was cancelled when the other answered
        assert dect.wait(15) == 0  # answered, talked, got the BYE
