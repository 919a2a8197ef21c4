"""The voicemail menu with real SIP peers: a message is left with a tone of
its own; its owner dials 133 (the phones' message key) and hears that tone
come back, keys 7 (an RFC 4733 event) and the message is gone from the API
and the disk, while the phone's message-waiting lamp goes out.  A mailbox
with nothing in it says so, offers its options and, no key pressed, hangs up."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import httpx
import pytest

from media.audiofile import read_audio
from tests.integration.audio import key_in, tone_frames, voiced_frames
from tests.integration.peers import ADMIN_PASSWORD, Pbx, running_pbx
from tests.integration.sipclient import SipClient, lamp_until, message_summary
from tests.integration.voicemail_calls import answered_call, leave_message, until_bye

pytestmark = pytest.mark.integration
USERS = {"1001": "pw-1001-secret", "1002": "pw-1002-secret", "1003": "pw-1003-secret"}
MESSAGE_HZ = 700.0  # the tone the caller leaves


@pytest.fixture(scope="module")
def pbx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pbx]:
    with running_pbx(tmp_path_factory.mktemp("voicemail-menu"), USERS,
                     admin_password=ADMIN_PASSWORD) as server:
        yield server


def test_the_owner_hears_the_message_deletes_it_and_the_lamp_goes_out(pbx: Pbx) -> None:
    admin = pbx.admin_headers()
    with SipClient(pbx.host, pbx.sip_port) as lamp:
        lamp.call_id += "-lamp"
        subscribed = lamp.subscribe("1003", USERS["1003"], "133", "message-summary")
        assert subscribed is not None and subscribed.status == 200, subscribed
        assert message_summary(lamp_until(lamp, "0/0 (0/0)"))["Messages-Waiting"] == "no"
        forwarded = httpx.patch(f"{pbx.api}/extensions/1003", headers=admin,
                                json={"forward_always": "voicemail"})
        assert forwarded.status_code == 200
        try:
            leave_message(pbx, "1001", USERS["1001"], "1003", seconds=2.0, frequency=MESSAGE_HZ)
        finally:
            httpx.patch(f"{pbx.api}/extensions/1003", headers=admin, json={"forward_always": ""})
        assert message_summary(lamp_until(lamp, "1/0 (0/0)"))["Messages-Waiting"] == "yes"
        (message,) = httpx.get(f"{pbx.api}/voicemail", headers=admin,
                               params={"mailbox": "1003"}).json()["items"]
        wavs = list((pbx.data_dir / "voicemail").rglob("*.wav"))
        assert len(wavs) == 1

        with answered_call(pbx, "1003", USERS["1003"], "133") as (phone, rtp, _, pbx_port):
            # the counts, then the message: the caller's tone, for about its 2 s
            assert tone_frames(rtp, MESSAGE_HZ) >= 75
            shown = message_summary(lamp_until(lamp, "0/1 (0/0)"))
            assert shown["Messages-Waiting"] == "no"  # heard now
            key_in(rtp, pbx_port, "7", 100)
            until_bye(phone, rtp)  # "message deleted, no more messages, goodbye"
        assert message_summary(lamp_until(lamp, "0/0 (0/0)"))["Messages-Waiting"] == "no"
    listed = httpx.get(f"{pbx.api}/voicemail", headers=admin, params={"mailbox": "1003"})
    assert listed.json()["total"] == 0
    assert httpx.get(f"{pbx.api}/voicemail/{message['id']}/audio",
                     headers=admin).status_code == 404
    assert not wavs[0].exists()


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng renders the prompts")
def test_an_empty_mailbox_says_so_offers_the_options_and_hangs_up(pbx: Pbx) -> None:
    with answered_call(pbx, "1002", USERS["1002"], "133") as (phone, rtp, _, pbx_port):
        key_in(rtp, pbx_port, "1", 100)  # means nothing here: the PBX still hangs up
        heard = until_bye(phone, rtp)
    said = sum(voiced_frames(read_audio(pbx.data_dir / "prompts" / "en" / f"{name}.wav", 8000)
                             * 0.8)  # prompts play at 80 %
               for name in ("no_messages", "mailbox_options_key", "goodbye"))
    assert abs(voiced_frames(heard) - said) <= 8, (voiced_frames(heard), said)


def test_a_broken_message_is_skipped_not_the_call(pbx: Pbx) -> None:
    """The WAV of 1001's only message is damaged: the menu names it in the log,
    goes on to "no more messages" and hangs up; the message stays new.  (It
    was left through a forward to 133: a forward to voicemail.)"""
    admin = pbx.admin_headers()
    forwarded = httpx.patch(f"{pbx.api}/extensions/1001", headers=admin,
                            json={"forward_always": "133"})
    assert forwarded.status_code == 200
    try:
        leave_message(pbx, "1002", USERS["1002"], "1001", seconds=1.5, frequency=MESSAGE_HZ)
    finally:
        httpx.patch(f"{pbx.api}/extensions/1001", headers=admin, json={"forward_always": ""})
    (message,) = httpx.get(f"{pbx.api}/voicemail", headers=admin,
                           params={"mailbox": "1001"}).json()["items"]
    (wav,) = (pbx.data_dir / "voicemail").rglob("*.wav")
    wav.write_bytes(b"RIFF" + bytes(100))
    with answered_call(pbx, "1001", USERS["1001"], "133") as (phone, rtp, _, _):
        until_bye(phone, rtp)
    assert f"voicemail {message['id']} of mailbox 1001 skipped" in pbx.log()
    (still,) = httpx.get(f"{pbx.api}/voicemail", headers=admin,
                         params={"mailbox": "1001"}).json()["items"]
    assert still["heard"] is False
