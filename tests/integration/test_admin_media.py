"""Music on hold and recorded prompts uploaded through the admin API of a running
PBX: checked before they are stored, listed, and played without a restart."""

from __future__ import annotations

import io
import socket
import time
from collections.abc import Iterator

import httpx
import numpy as np
import pytest
import soundfile

from media.g711 import ulaw_decode
from tests.integration.peers import ADMIN_PASSWORD, Pbx, running_pbx
from tests.integration.sipclient import SipClient, place_call, register, uas_dialog

pytestmark = pytest.mark.integration
USERS = {"1001": "pw-1001-secret", "1002": "pw-1002-secret"}


@pytest.fixture(scope="module")
def pbx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pbx]:
    with running_pbx(tmp_path_factory.mktemp("media-api"), USERS,
                     admin_password=ADMIN_PASSWORD) as server:
        yield server


def tone_file(frequency: float, seconds: float, format: str = "WAV", rate: int = 16000) -> bytes:
    """A stereo tone file, as a user would upload it (not at the PBX's rate)."""
    t = np.arange(int(rate * seconds)) / rate
    wave = np.sin(2 * np.pi * frequency * t) * 0.4
    out = io.BytesIO()
    soundfile.write(out, np.stack([wave, wave], axis=1), rate, format=format)
    return out.getvalue()


def classes(pbx: Pbx, headers: dict[str, str]) -> dict[str, dict]:  # type: ignore[type-arg]
    response = httpx.get(f"{pbx.api}/moh", headers=headers)
    assert response.status_code == 200, response.text
    return {c["name"]: c for c in response.json()}


def test_music_is_checked_listed_and_played_at_once(pbx: Pbx) -> None:
    headers = pbx.login("admin", ADMIN_PASSWORD)
    assert classes(pbx, headers)["default"]["generated"] is True  # no files yet

    put = httpx.put(f"{pbx.api}/moh/default/1-tone.wav", headers=headers,
                    content=tone_file(1000, 2.0))
    assert put.status_code == 200, put.text
    assert put.json()["files"] == [{"name": "1-tone.wav", "seconds": 2.0}]
    listed = classes(pbx, headers)["default"]
    assert listed["generated"] is False and listed["seconds"] == 2.0  # the engine reloaded
    assert (pbx.data_dir / "moh" / "default" / "1-tone.wav").is_file()

    # a call put on hold now hears the uploaded tone, not the built-in music
    with SipClient(pbx.host, pbx.sip_port) as alice, SipClient(pbx.host, pbx.sip_port) as bob:
        register(bob, "1002", USERS["1002"])
        media = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        media.bind(("127.0.0.1", 0))
        media.settimeout(0.2)
        try:
            ok, picked = place_call(alice, "1001", USERS["1001"], bob, "1002", 41160,
                                    "moh-upload", body=alice.sdp(media.getsockname()[1]))
            bob_dialog = uas_dialog(*picked)
            assert bob.receive_request(3, "ACK") is not None
            hold = bob.sdp(41160).replace(b"a=fmtp:101 0-15\r\n",
                                          b"a=fmtp:101 0-15\r\na=sendonly\r\n")
            bob.in_dialog("INVITE", bob_dialog, body=hold)
            held = bob.receive(5)
            assert held is not None and held.status == 200
            bob.in_dialog("ACK", bob_dialog, cseq=held.cseq.number)
            samples = []
            deadline = time.monotonic() + 1.5
            while time.monotonic() < deadline:
                try:
                    samples.append(ulaw_decode(media.recv(2048)[12:]).astype(float))
                except TimeoutError:
                    pass
        finally:
            media.close()
        alice.in_dialog("BYE", ok)
        assert bob.receive_request(5, "BYE") is not None
    heard = np.concatenate(samples)
    spectrum = np.abs(np.fft.rfft(heard * np.hanning(len(heard))))
    assert abs(np.fft.rfftfreq(len(heard), 1 / 8000)[np.argmax(spectrum)] - 1000) < 10

    deleted = httpx.delete(f"{pbx.api}/moh/default/1-tone.wav", headers=headers)
    assert deleted.status_code == 204
    assert classes(pbx, headers)["default"]["generated"] is True
    assert httpx.delete(f"{pbx.api}/moh/default/1-tone.wav", headers=headers).status_code == 404
    actions = [(e["action"], e["target"]) for e in
               httpx.get(f"{pbx.api}/audit", headers=headers).json()]
    assert ("moh.upload", "default/1-tone.wav") in actions
    assert ("moh.delete", "default/1-tone.wav") in actions


def test_a_new_class_and_what_is_refused(pbx: Pbx) -> None:
    headers = pbx.login("admin", ADMIN_PASSWORD)
    put = httpx.put(f"{pbx.api}/moh/sales/jingle.flac", headers=headers,
                    content=tone_file(700, 1.5, "FLAC", 44100))
    assert put.status_code == 200, put.text
    assert classes(pbx, headers)["sales"]["seconds"] == 1.5

    garbage = httpx.put(f"{pbx.api}/moh/sales/song.mp3", headers=headers,
                        content=b"this is not music at all\n" * 40)
    assert garbage.status_code == 422
    assert garbage.json()["detail"].startswith("cannot read audio")
    empty = httpx.put(f"{pbx.api}/moh/sales/empty.wav", headers=headers, content=b"")
    assert empty.status_code == 422 and empty.json()["detail"] == "the file is empty"
    cut = httpx.put(f"{pbx.api}/moh/sales/cut.flac", headers=headers,
                    content=tone_file(700, 1.5, "FLAC")[:3000])
    assert cut.status_code == 422 and "damaged" in cut.json()["detail"]
    assert [f["name"] for f in classes(pbx, headers)["sales"]["files"]] == ["jingle.flac"]
    assert sorted(p.name for p in (pbx.data_dir / "moh" / "sales").iterdir()) == ["jingle.flac"]

    # (".." is sent encoded: a client resolves a bare one before the request leaves)
    for bad in ("..%2Fx.wav", "%2E%2E", ".hidden.wav", "notes.txt", "a%5Cb.wav", "x.wav%00.txt"):
        refused = httpx.put(f"{pbx.api}/moh/sales/{bad}", headers=headers, content=tone_file(700, 1))
        assert refused.status_code in (404, 422), bad
    for bad in ("%2E%2E", "..%2F..%2Fetc", "-x"):
        refused = httpx.put(f"{pbx.api}/moh/{bad}/x.wav", headers=headers, content=tone_file(700, 1))
        assert refused.status_code in (404, 422), bad
    assert not (pbx.data_dir / "x.wav").exists() and not (pbx.data_dir / "moh" / "x.wav").exists()


def test_a_recorded_voice_replaces_a_system_prompt(pbx: Pbx) -> None:
    headers = pbx.login("admin", ADMIN_PASSWORD)
    put = httpx.put(f"{pbx.api}/prompts/sv/joined", headers=headers,
                    content=tone_file(500, 1.25, "OGG", 48000))
    assert put.status_code == 200, put.text
    assert put.json() == {"language": "sv", "name": "joined", "seconds": 1.25}
    stored, rate = soundfile.read(pbx.data_dir / "prompts" / "sv" / "joined.wav")
    assert rate == 8000 and stored.ndim == 1 and len(stored) == 10000  # as the engine plays it

    assert httpx.put(f"{pbx.api}/prompts/sv/no_such_prompt", headers=headers,
                     content=tone_file(500, 1)).status_code == 404
    assert httpx.put(f"{pbx.api}/prompts/xx/joined", headers=headers,
                     content=tone_file(500, 1)).status_code == 404
    bad = httpx.put(f"{pbx.api}/prompts/sv/joined", headers=headers, content=b"\x00" * 100)
    assert bad.status_code == 422 and bad.json()["detail"].startswith("cannot read audio")
    assert soundfile.info(pbx.data_dir / "prompts" / "sv" / "joined.wav").frames == 10000  # kept


def test_only_the_platform_admins_change_audio(pbx: Pbx) -> None:
    headers = pbx.login("admin", ADMIN_PASSWORD)
    created = httpx.post(f"{pbx.api}/users", headers=headers, json={
        "username": "boss", "password": "supervisor-pass-123", "role": "supervisor"})
    assert created.status_code == 201, created.text
    boss = pbx.login("boss", "supervisor-pass-123")
    assert httpx.get(f"{pbx.api}/moh", headers=boss).status_code == 403
    assert httpx.put(f"{pbx.api}/moh/default/a.wav", headers=boss,
                     content=tone_file(500, 1)).status_code == 403
    assert httpx.put(f"{pbx.api}/prompts/en/joined", headers=boss,
                     content=tone_file(500, 1)).status_code == 403
    assert httpx.get(f"{pbx.api}/moh").status_code == 401
