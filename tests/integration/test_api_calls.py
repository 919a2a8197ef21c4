"""Call lists and recordings through the admin API of a running PBX: records
by direction and per extension, a recorded call listed and downloaded as a
WAV a player accepts, and nobody sees another's recordings."""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Iterator

import httpx
import pytest
import soundfile
from sqlmodel import Session, select

from pbx.models import Cdr, Organisation
from pbx.store import make_engine
from tests.integration.peers import ADMIN_PASSWORD, Pbx, running_pbx
from tests.integration.sipclient import SipClient

pytestmark = pytest.mark.integration

PHONES = {n: f"pw-{n}-secret" for n in ("1001", "1003")}
SECTIONS = """
[1002]
secret = pw-1002-secret
voicemail = no
record = yes
"""


@pytest.fixture(scope="module")
def pbx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pbx]:
    with running_pbx(tmp_path_factory.mktemp("calls-api"), PHONES, sections=SECTIONS,
                     admin_password=ADMIN_PASSWORD) as server:
        yield server


@pytest.fixture(scope="module")
def admin(pbx: Pbx) -> dict[str, str]:
    return pbx.login("admin", ADMIN_PASSWORD)


@pytest.fixture(scope="module")
def agents(pbx: Pbx, admin: dict[str, str]) -> dict[str, dict[str, str]]:
    """Agents on 1001 and 1003, each with an active license; their tokens."""
    tokens = {}
    for name, extension in (("ann", "1001"), ("cid", "1003")):
        made = httpx.post(f"{pbx.api}/users", headers=admin, json={
            "username": name, "password": f"{name}-pass-12345", "role": "agent",
            "extension": extension})
        assert made.status_code == 201
        assert httpx.post(f"{pbx.api}/licenses", headers=admin, json={
            "kind": "fixed", "user_id": made.json()["id"]}).status_code == 201
        tokens[extension] = pbx.login(name, f"{name}-pass-12345")
    return tokens


@pytest.fixture(scope="module")
def calls(pbx: Pbx, agents: dict[str, dict[str, str]]) -> None:
    """An answered, recorded call 1001 → 1002, a failed one 1001 → 9999, and an
    inbound one from outside to 1003 (as a trunk would record it)."""
    with SipClient(pbx.host, pbx.sip_port) as callee, SipClient(pbx.host, pbx.sip_port) as caller:
        contact = f"<sip:1002@{callee.host_port()}>"
        assert callee.register("1002", "pw-1002-secret", contacts=[contact]).status == 200  # type: ignore[union-attr]
        _, ok = caller.call("1001", PHONES["1001"], "1002", callee)
        assert ok is not None and ok.status == 200
        time.sleep(1)  # something to record
        caller.in_dialog("BYE", ok)
        assert caller.receive(5) is not None
    with SipClient(pbx.host, pbx.sip_port) as caller:
        _, final = caller.invite("1001", PHONES["1001"], "9999")
        assert final is not None and final.status == 404
    engine = make_engine(f"sqlite:///{pbx.data_dir / 'pbx.sqlite3'}")
    with Session(engine) as session:
        org = session.exec(select(Organisation).where(Organisation.slug == "default")).one()
        now = time.time()
        session.add(Cdr(call_id="trunk-1", organisation_id=org.id, caller="+46701234567",
                        callee="1003", answered_by="1003", started_at=now, answered_at=now,
                        ended_at=now + 30, disposition="answered", status=200, duration=30,
                        billsec=30))
        session.commit()
    engine.dispose()
    deadline = time.monotonic() + 10  # the recording row is written when the media is released
    while not httpx.get(f"{pbx.api}/recordings", headers=agents["1001"]).json()["items"]:
        assert time.monotonic() < deadline, pbx.log()[-3000:]
        time.sleep(0.2)


def test_call_lists_by_direction_and_extension(
    pbx: Pbx, admin: dict[str, str], agents: dict[str, dict[str, str]], calls: None,
) -> None:
    def listed(headers: dict[str, str], **params: str) -> list[tuple[str, str, str]]:
        page = httpx.get(f"{pbx.api}/cdrs", headers=headers, params=params)
        assert page.status_code == 200, page.text
        return [(c["caller"], c["callee"], c["direction"]) for c in page.json()["items"]]

    assert listed(admin, direction="internal") == [("1001", "1002", "internal")]
    assert listed(admin, direction="outbound") == [("1001", "9999", "outbound")]
    assert listed(admin, direction="inbound") == [("+46701234567", "1003", "inbound")]
    assert listed(admin, extension="1003") == [("+46701234567", "1003", "inbound")]
    assert len(listed(admin, extension="1001")) == 2
    assert listed(agents["1003"]) == [("+46701234567", "1003", "inbound")]
    assert listed(agents["1001"], direction="outbound", extension="1001") == [
        ("1001", "9999", "outbound")]
    theirs = httpx.get(f"{pbx.api}/cdrs", headers=agents["1003"], params={"extension": "1001"})
    assert theirs.status_code == 403 and "their own calls" in theirs.json()["detail"]
    assert httpx.get(f"{pbx.api}/cdrs", headers=admin,
                     params={"direction": "sideways"}).status_code == 422
    csv_text = httpx.get(f"{pbx.api}/cdrs.csv", headers=admin,
                         params={"direction": "inbound"}).text
    rows = list(csv.DictReader(io.StringIO(csv_text)))
    assert [r["direction"] for r in rows] == ["inbound"]


def test_a_recorded_call_is_listed_and_downloaded(
    pbx: Pbx, admin: dict[str, str], agents: dict[str, dict[str, str]], calls: None,
) -> None:
    page = httpx.get(f"{pbx.api}/recordings", headers=admin).json()
    assert page["total"] == 1
    (recording,) = page["items"]
    assert recording["parties"] == ["1001", "1002"] and recording["kind"] == "call"
    audio = httpx.get(f"{pbx.api}/recordings/{recording['id']}/audio", headers=agents["1001"])
    assert audio.status_code == 200 and audio.headers["content-type"] == "audio/wav"
    samples, rate = soundfile.read(io.BytesIO(audio.content))
    assert rate == 8000 and samples.shape[1] == 2 and len(samples) >= 8000 * 0.5

    assert httpx.get(f"{pbx.api}/recordings", headers=agents["1003"]).json()["total"] == 0
    assert httpx.get(f"{pbx.api}/recordings/{recording['id']}/audio",
                     headers=agents["1003"]).status_code == 404  # not a party to the call
    assert httpx.post(f"{pbx.api}/organisations", headers=admin, json={
        "slug": "elsewhere", "name": "Elsewhere AB", "domain": "elsewhere.test",
        "admin": {"username": "elsewhere-admin", "password": "elsewhere-pass-1234"}},
    ).status_code == 201
    stranger = pbx.login("elsewhere-admin", "elsewhere-pass-1234")
    assert httpx.get(f"{pbx.api}/recordings", headers=stranger).json()["items"] == []
    assert httpx.get(f"{pbx.api}/recordings/{recording['id']}/audio",
                     headers=stranger).status_code == 404
    assert httpx.get(f"{pbx.api}/cdrs", headers=stranger).json()["total"] == 0
