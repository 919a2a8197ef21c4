"""Listening in with real phones (scripted, real RTP): a supervisor dials
*55 and the agent's extension; in listen mode the supervisor hears both
parties and nobody hears the supervisor; after key 5 (whisper) the agent hears
the supervisor and the caller still does not."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.integration.audio import RtpPhone, level
from tests.integration.peers import ADMIN_PASSWORD, Pbx, running_pbx
from tests.integration.sipclient import SipClient

USERS = {n: f"pw-{n}-secret" for n in ("1001", "1002", "1003")}
TONES = {"1001": 440.0, "1002": 1000.0, "1003": 700.0}


@pytest.fixture(scope="module")
def pbx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pbx]:
    with running_pbx(tmp_path_factory.mktemp("spy"), USERS,
                     admin_password=ADMIN_PASSWORD) as server:
        admin = server.login("admin", ADMIN_PASSWORD)
        made = httpx.post(f"{server.api}/users", headers=admin, json={
            "username": "sue", "password": "sue-pass-1234", "role": "supervisor",
            "extension": "1003"})
        assert made.status_code == 201, made.text
        licensed = httpx.post(f"{server.api}/licenses", headers=admin,
                              json={"kind": "fixed", "user_id": made.json()["id"]})
        assert licensed.status_code == 201, licensed.text
        yield server


def talk(phones: dict[str, RtpPhone], seconds: float) -> dict[str, np.ndarray]:
    """Every phone sends its tone while every phone listens; what each heard."""
    heard: dict[str, np.ndarray] = {}
    threads = [threading.Thread(target=phone.send_tone, args=(TONES[n], seconds))
               for n, phone in phones.items()]
    threads += [threading.Thread(target=lambda n=n, p=phone: heard.__setitem__(n, p.listen(seconds)))
                for n, phone in phones.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {n: audio[8000:] for n, audio in heard.items()}  # the first second settles


def hears(audio: np.ndarray, number: str) -> bool:
    others = [level(audio, f) for n, f in TONES.items() if n != number]
    return level(audio, TONES[number]) > 0.2 * max(others + [1e-3])


def test_listen_then_whisper(pbx: Pbx, tmp_path: Path) -> None:
    with SipClient(pbx.host, pbx.sip_port) as agent, SipClient(pbx.host, pbx.sip_port) as caller, \
            SipClient(pbx.host, pbx.sip_port) as boss, RtpPhone() as a, RtpPhone() as b, \
            RtpPhone() as s:
        contact = [f"<sip:1002@{agent.host_port()}>"]
        assert agent.register("1002", USERS["1002"], contacts=contact).status == 200  # type: ignore[union-attr]
        rang: list[object] = []
        picking = threading.Thread(target=lambda: rang.append(agent.pick_up(b.port)))
        picking.start()
        _, ok = caller.invite("1001", USERS["1001"], "1002", body=caller.sdp(a.port, "0 101"))
        picking.join()
        assert ok is not None and ok.status == 200
        caller.in_dialog("ACK", ok, cseq=ok.cseq.number)
        a.answered(ok.body)
        b.answered(rang[0].body)  # type: ignore[attr-defined]
        _, spying = boss.invite("1003", USERS["1003"], "*551002", body=boss.sdp(s.port, "0 101"))
        assert spying is not None and spying.status == 200, spying
        boss.in_dialog("ACK", spying, cseq=spying.cseq.number)
        s.answered(spying.body)
        phones = {"1001": a, "1002": b, "1003": s}
        listened = talk(phones, 3.0)
        assert hears(listened["1003"], "1001") and hears(listened["1003"], "1002")
        assert not hears(listened["1002"], "1003") and not hears(listened["1001"], "1003")
        assert hears(listened["1002"], "1001") and hears(listened["1001"], "1002")
        s.keys("5")
        whispered = talk(phones, 3.0)
        assert hears(whispered["1002"], "1003")  # the agent hears the coach
        assert not hears(whispered["1001"], "1003")  # the caller does not
        caller.in_dialog("BYE", ok)
        assert boss.receive_request(5, "BYE") is not None  # the call is over: so is listening
