"""SDP parsing and offer/answer, checked against offers real phones send."""

from __future__ import annotations

import random

import pytest

from pbx.sdp import (
    STATIC_PAYLOADS, TELEPHONE_EVENT, Codec, Crypto, SdpError, SessionDescription,
    SessionVersion, choose_audio, hold_direction, make_answer, make_offer, negotiate, sdes_keys,
)
from tests.unit.rfc4475 import SDP_150

US = {"address": "192.0.2.1", "port": 20000, "session_id": 5, "version": 1}
SUPPORTED = ["PCMU", "PCMA", "telephone-event"]

BARESIP = (  # baresip 3.x with opus, g722 and g711 modules loaded
    "v=0\r\no=- 1726843412 3271638478 IN IP4 192.168.1.20\r\ns=-\r\nc=IN IP4 192.168.1.20\r\n"
    "t=0 0\r\na=tool:baresip 3.10.1\r\nm=audio 10196 RTP/AVP 96 9 0 8 101\r\nb=AS:128\r\n"
    "a=rtpmap:96 opus/48000/2\r\na=fmtp:96 stereo=1;sprop-stereo=1\r\na=rtpmap:9 G722/8000\r\n"
    "a=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\n"
    "a=fmtp:101 0-15\r\na=rtcp-mux\r\na=ptime:20\r\na=sendrecv\r\na=label:1\r\n"
    "a=ssrc:2951347372 cname:6a1c4e2b-5fd7\r\n"
)
SIPP = (  # sipp's built-in uac scenario: static payload type, LF line ends
    "v=0\no=user1 53655765 2353687637 IN IP4 127.0.0.1\ns=-\nc=IN IP4 127.0.0.1\nt=0 0\n"
    "m=audio 6000 RTP/AVP 0\na=rtpmap:0 PCMU/8000\n"
)
YEALINK = (  # a desk phone offering everything it has, dynamic types with and without rtpmap
    "v=0\r\no=- 20034 20034 IN IP4 10.0.0.20\r\ns=SDP data\r\nc=IN IP4 10.0.0.20\r\nt=0 0\r\n"
    "m=audio 11796 RTP/AVP 9 0 8 18 96 97 98 101\r\na=rtpmap:9 G722/8000\r\n"
    "a=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:18 G729/8000\r\n"
    "a=fmtp:18 annexb=no\r\na=rtpmap:96 opus/48000/2\r\na=fmtp:96 maxplaybackrate=16000\r\n"
    "a=rtpmap:97 iLBC/8000\r\na=fmtp:97 mode=30\r\na=fmtp:98 mode-set=0\r\n"
    "a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=ptime:20\r\na=sendrecv\r\n"
)
VIDEO_AUDIO_IP6 = (  # a video phone on IPv6: video first, c= only at media level
    "v=0\r\no=- 1 1 IN IP6 2001:db8::5\r\ns=-\r\nt=0 0\r\n"
    "m=video 5002 RTP/AVP 96\r\nc=IN IP6 2001:db8::5\r\na=rtpmap:96 H264/90000\r\n"
    "a=fmtp:96 profile-level-id=42e01f\r\n"
    "m=audio 5000 RTP/AVP 8 101\r\nc=IN IP6 2001:db8::5\r\na=rtpmap:101 telephone-event/8000\r\n"
)
WEBRTC = (  # a browser: DTLS-SRTP only, which the relay does not terminate
    "v=0\r\no=- 46117 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\n"
    "m=audio 9 UDP/TLS/RTP/SAVPF 111 0\r\nc=IN IP4 0.0.0.0\r\na=rtpmap:111 opus/48000/2\r\n"
    "a=ice-ufrag:gydc\r\na=ice-pwd:qEA+KCGezaoGknNYbpAADXBK\r\na=rtcp-mux\r\n"
)
SAMPLES = [BARESIP, SIPP, YEALINK, VIDEO_AUDIO_IP6, WEBRTC]


def names(codecs: list[Codec]) -> list[tuple[int, str]]:
    return [(c.payload_type, c.name) for c in codecs]


def answer(offer: str, **kwargs: object) -> SessionDescription:
    params: dict[object, object] = {**US, "supported": SUPPORTED, **kwargs}
    return make_answer(SessionDescription.parse(offer), **params)  # type: ignore[arg-type]


# ---------------------------------------------------------------- parsing


def test_baresip_offer() -> None:
    sdp = SessionDescription.parse(BARESIP)
    audio = sdp.audio
    assert audio is not None
    assert (sdp.connection, audio.port, audio.proto) == ("192.168.1.20", 10196, "RTP/AVP")
    assert names(audio.codecs) == [(96, "opus"), (9, "G722"), (0, "PCMU"), (8, "PCMA"),
                                   (101, "telephone-event")]
    assert audio.codecs[0] == Codec(96, "opus", 48000, 2, "stereo=1;sprop-stereo=1")
    assert audio.telephone_event == Codec(101, "telephone-event", 8000, fmtp="0-15")
    assert audio.ptime == 20 and audio.direction == "sendrecv"
    assert audio.rtcp == 10197  # an offered rtcp-mux counts only if answered (RFC 5761)
    assert ("label", "1") in audio.attributes and ("rtcp-mux", None) in audio.attributes
    assert audio.other == ["b=AS:128"] and "a=tool:baresip 3.10.1" in sdp.other


def test_sipp_offer_with_lf_line_ends_and_static_payload() -> None:
    sdp = SessionDescription.parse(SIPP)
    assert sdp.origin.username == "user1" and sdp.origin.sess_version == "2353687637"
    assert sdp.audio is not None and names(sdp.audio.codecs) == [(0, "PCMU")]
    assert sdp.audio.rtcp == 6001
    assert "\n" not in str(sdp).replace("\r\n", "")  # written back with CRLF only


def test_static_payload_types_need_no_rtpmap() -> None:
    sdp = SessionDescription.parse(SIPP.replace("a=rtpmap:0 PCMU/8000\n", "").replace(
        "RTP/AVP 0", "RTP/AVP 8 0 9 18 13"))
    assert sdp.audio is not None
    assert names(sdp.audio.codecs) == [(8, "PCMA"), (0, "PCMU"), (9, "G722"), (18, "G729"),
                                       (13, "CN")]
    assert STATIC_PAYLOADS[9].clock_rate == 8000  # G.722's RTP clock (RFC 3551 §4.5.2)


def test_many_codecs_dynamic_without_rtpmap_ignored() -> None:
    sdp = SessionDescription.parse(YEALINK)
    assert sdp.audio is not None and sdp.session_name == "SDP data"
    assert sdp.audio.formats == ["9", "0", "8", "18", "96", "97", "98", "101"]
    assert names(sdp.audio.codecs) == [(9, "G722"), (0, "PCMU"), (8, "PCMA"), (18, "G729"),
                                       (96, "opus"), (97, "iLBC"), (101, "telephone-event")]
    assert sdp.audio.codecs[3].fmtp == "annexb=no"
    assert ("fmtp", "98 mode-set=0") in sdp.audio.attributes  # kept, though 98 has no rtpmap


def test_encoding_names_are_case_insensitive() -> None:
    sdp = SessionDescription.parse(SIPP.replace("PCMU/8000", "pcmu/8000"))
    assert sdp.audio is not None and sdp.audio.codecs[0].name == "PCMU"
    assert names(negotiate(sdp.audio.codecs, ["pcmu"])) == [(0, "PCMU")]


def test_ipv6_and_media_level_connection() -> None:
    sdp = SessionDescription.parse(VIDEO_AUDIO_IP6)
    assert sdp.connection is None and sdp.connection_addrtype == "IP6"
    assert [m.kind for m in sdp.media] == ["video", "audio"]
    assert sdp.audio is sdp.media[1] and sdp.audio.connection == "2001:db8::5"
    assert names(sdp.audio.codecs) == [(8, "PCMA"), (101, "telephone-event")]
    assert sdp.media[0].codecs == [Codec(96, "H264", 90000, fmtp="profile-level-id=42e01f")]


def test_media_level_connection_overrides_session_level() -> None:
    text = SIPP.replace("m=audio 6000 RTP/AVP 0\n", "m=audio 6000 RTP/AVP 0\nc=IN IP4 10.9.9.9\n")
    sdp = SessionDescription.parse(text)
    assert sdp.connection == "127.0.0.1" and sdp.audio is not None
    assert sdp.audio.connection == "10.9.9.9"
    assert "c=IN IP4 10.9.9.9" in str(sdp).split("m=audio")[1]


def test_rejected_stream_needs_no_connection() -> None:
    text = "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 0 RTP/AVP 0\r\n"
    sdp = SessionDescription.parse(text)
    assert sdp.media[0].port == 0 and sdp.audio is None


def test_rtcp_attribute_and_unknown_lines_kept() -> None:
    text = YEALINK.replace("a=ptime:20", "a=ptime:20\r\na=rtcp:53020 IN IP4 10.0.0.21\r\n"
                           "a=x-vendor-thing\r\ny=unknown line type")
    sdp = SessionDescription.parse(text)
    assert sdp.audio is not None
    assert (sdp.audio.rtcp_port, sdp.audio.rtcp_address, sdp.audio.rtcp) == (
        53020, "10.0.0.21", 53020)
    written = str(sdp)
    assert "a=rtcp:53020 IN IP4 10.0.0.21\r\n" in written
    assert "a=x-vendor-thing\r\n" in written and "y=unknown line type\r\n" in written


def test_session_level_direction_applies_to_streams() -> None:
    sdp = SessionDescription.parse(SIPP.replace("t=0 0\n", "t=0 0\na=sendonly\n"))
    assert sdp.direction == "sendonly" and sdp.audio is not None
    assert sdp.audio.direction == "sendonly" and hold_direction(sdp) == "sendonly"


@pytest.mark.parametrize("text", SAMPLES)
def test_round_trip(text: str) -> None:
    once = SessionDescription.parse(text)
    written = bytes(once)
    assert SessionDescription.parse(written) == once
    assert bytes(SessionDescription.parse(written)) == written
    assert written.endswith(b"\r\n") and b"\n" not in written.replace(b"\r\n", b"")


def test_lines_written_in_rfc_order() -> None:
    text = SIPP.replace("t=0 0\n", "t=0 0\ni=a call\nb=CT:64\nu=http://example.com/\n")
    types = [line[0] for line in str(SessionDescription.parse(text)).split("\r\n")[:8]]
    assert types == ["v", "o", "s", "i", "u", "c", "b", "t"]  # RFC 8866 §5


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "Empty SDP"),
        ("\r\n\r\n", "Empty SDP"),
        ("o=- 1 1 IN IP4 1.2.3.4\r\nv=0\r\n", "must start with v="),
        ("v=1\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\n", "version"),
        ("v=0\r\ns=-\r\nc=IN IP4 1.2.3.4\r\nm=audio 1 RTP/AVP 0\r\n", "Missing o="),
        ("v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\nc=IN IP4 1.2.3.4\r\nm=audio 1 RTP/AVP 0\r\n",
         "Missing s="),
        ("v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nc=IN IP4 1.2.3.4\r\nt=0 0\r\n", "No m= line"),
        ("v=0\r\no=- 1 1\r\ns=-\r\nc=IN IP4 1.2.3.4\r\nm=audio 1 RTP/AVP 0\r\n", "Malformed o="),
        ("v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nc=IN IP4 1.2.3.4\r\nm=audio abc RTP/AVP 0\r\n",
         "Malformed media port 'abc'"),
        ("v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nc=IN IP4 1.2.3.4\r\nm=audio 70000 RTP/AVP 0\r\n",
         "Malformed media port '70000'"),
        ("v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nc=IN IP4 1.2.3.4\r\nm=audio 5\u00b2 RTP/AVP 0\r\n",
         "Malformed media port"),
        ("v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nc=IN IP4 1.2.3.4\r\nm=audio 1 RTP/AVP\r\n",
         "No formats"),
        ("v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nc=IN IP4 1.2.3.4\r\nm=audio 1 RTP/AVP 0 pcmu\r\n",
         "Malformed payload type 'pcmu'"),
        ("v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nm=audio 1000 RTP/AVP 0\r\n",
         "No connection address"),
        ("v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nc=IN XX 1.2.3.4\r\nm=audio 1 RTP/AVP 0\r\n",
         "Malformed c= line"),
        ("v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nc=IN IP4 2001:db8::1\r\nm=audio 1 RTP/AVP 0\r\n",
         "is not IP4"),
        ("v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nc=IN IP4 1.2.3.4\r\nm=audio 1 RTP/AVP 0\r\n"
         "a=rtcp:x\r\n", "Malformed rtcp"),
        ("v=0\r\nthis is not sdp\r\n", "Malformed SDP line 'this is not sdp'"),
    ],
)
def test_broken_sdp(text: str, message: str) -> None:
    with pytest.raises(SdpError, match=message) as caught:
        SessionDescription.parse(text)
    assert caught.value.status == 400
    assert caught.value.reason.startswith("Bad Request - ")
    assert "\r" not in caught.value.reason and "\n" not in caught.value.reason


def test_garbage_bytes_give_sdp_error() -> None:
    with pytest.raises(SdpError):
        SessionDescription.parse(b"\xff\xfe\x00garbage\r\n")


# ---------------------------------------------------------------- offer/answer


def test_negotiate_keeps_offer_order_and_payload_types() -> None:
    sdp = SessionDescription.parse(YEALINK)
    assert sdp.audio is not None
    chosen = negotiate(sdp.audio.codecs, ["PCMA", "PCMU", "G722", "telephone-event"])
    assert names(chosen) == [(9, "G722"), (0, "PCMU"), (8, "PCMA"), (101, "telephone-event")]
    assert names(negotiate(sdp.audio.codecs, ["PCMA"])) == [(8, "PCMA")]  # no events unasked


def test_telephone_event_only_at_the_voice_clock_rate() -> None:
    codecs = [Codec(111, "opus", 48000, 2), Codec(0, "PCMU", 8000),
              Codec(110, "telephone-event", 48000), Codec(101, "telephone-event", 8000)]
    assert names(negotiate(codecs, SUPPORTED)) == [(0, "PCMU"), (101, "telephone-event")]
    assert names(negotiate(codecs, ["opus", "telephone-event"])) == [
        (111, "opus"), (110, "telephone-event")]


def test_no_common_codec_is_488() -> None:
    sdp = SessionDescription.parse(YEALINK)
    assert sdp.audio is not None
    with pytest.raises(SdpError, match="no common codec") as caught:
        negotiate(sdp.audio.codecs, ["GSM", "telephone-event"])  # events alone are no call
    assert caught.value.status == 488
    assert caught.value.reason == "Not Acceptable Here - no common codec"
    with pytest.raises(SdpError, match="no common codec"):
        answer(SIPP, supported=["PCMA"])


def test_srtp_only_offer_is_488() -> None:
    with pytest.raises(SdpError, match="no RTP/AVP audio stream") as caught:
        answer(WEBRTC)
    assert caught.value.status == 488


def test_answer_to_baresip() -> None:
    sdp = answer(BARESIP)
    text = str(sdp)
    assert text == (
        "v=0\r\no=pbx 5 1 IN IP4 192.0.2.1\r\ns=pbx\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n"
        "m=audio 20000 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n"
        "a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=ptime:20\r\na=sendrecv\r\n"
    )


def test_answer_with_one_voice_codec_in_offer_order() -> None:
    sdp = answer(YEALINK, supported=["PCMA", "PCMU", "telephone-event"])
    assert sdp.audio is not None
    assert names(sdp.audio.codecs) == [(0, "PCMU"), (101, "telephone-event")]
    assert answer(SIPP).audio.codecs == [Codec(0, "PCMU", 8000)]  # type: ignore[union-attr]


def test_answer_rejects_video_keeps_mline_order_ipv6() -> None:
    sdp = answer(VIDEO_AUDIO_IP6, address="2001:db8::1")
    assert [(m.kind, m.port) for m in sdp.media] == [("video", 0), ("audio", 20000)]
    text = str(sdp)
    assert "o=pbx 5 1 IN IP6 2001:db8::1\r\n" in text and "c=IN IP6 2001:db8::1\r\n" in text
    assert "m=video 0 RTP/AVP 96\r\nm=audio 20000 RTP/AVP 8 101\r\n" in text
    assert SessionDescription.parse(text) == sdp


def test_direction_with_spaces_is_understood() -> None:
    sdp = SessionDescription.parse(SIPP.replace("PCMU/8000\n", "PCMU/8000\na=sendonly \n"))
    assert hold_direction(sdp) == "sendonly"


def test_second_audio_stream_rejected() -> None:
    text = SIPP + "m=audio 6002 RTP/AVP 8\n"
    sdp = answer(text)
    assert [(m.kind, m.port) for m in sdp.media] == [("audio", 20000), ("audio", 0)]


MULTI = (  # an unknown codec first, then video, then the PCMU stream we can take
    "v=0\r\no=- 1 1 IN IP4 10.0.0.9\r\ns=-\r\nc=IN IP4 10.0.0.9\r\nt=0 0\r\n"
    "m=audio 5000 RTP/AVP 96\r\na=rtpmap:96 x-secret-codec/8000\r\n"
    "m=video 5002 RTP/AVP 97\r\na=rtpmap:97 H264/90000\r\n"
    "m=audio 5004 RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\n"
)


def test_every_audio_stream_is_considered() -> None:
    """RFC 3264 §6: the first usable audio stream is taken, wherever it is; the
    others are declined with port 0, in the offer's order."""
    offer = SessionDescription.parse(MULTI)
    assert choose_audio(offer, SUPPORTED) is offer.media[2]
    unnamed = SessionDescription.parse(MULTI.replace("a=rtpmap:96 x-secret-codec/8000\r\n", ""))
    assert unnamed.audio is unnamed.media[2]  # 96 without rtpmap: no codec to speak of
    sdp = answer(MULTI)
    assert [(m.kind, m.port) for m in sdp.media] == [("audio", 0), ("video", 0), ("audio", 20000)]
    assert names(sdp.media[2].codecs) == [(0, "PCMU"), (101, "telephone-event")]
    assert offer.paired(sdp) is offer.media[2]  # where the relay must send
    assert "m=audio 0 RTP/AVP 96\r\nm=video 0 RTP/AVP 97\r\nm=audio 20000 RTP/AVP 0 101\r\n" in str(sdp)


def test_a_stream_of_codecs_we_do_not_do_is_passed_over() -> None:
    """A G.729 stream first (a codec the PBX can name but is not configured for),
    on hold; the PCMA stream after it is the call, its direction is what counts."""
    text = MULTI.replace("96\r\na=rtpmap:96 x-secret-codec/8000", "18\r\na=sendonly").replace(
        "RTP/AVP 0 101", "RTP/AVP 8 101")
    offer = SessionDescription.parse(text)
    assert offer.audio is offer.media[0]  # G.729: usable in general, not by us
    sdp = answer(text)
    assert [(m.kind, m.port) for m in sdp.media] == [("audio", 0), ("video", 0), ("audio", 20000)]
    assert sdp.media[2].direction == "sendrecv" and names(sdp.media[2].codecs)[0] == (8, "PCMA")
    assert offer.paired(sdp) is offer.media[2]


def test_paired_with_our_offer() -> None:
    """A phone answering our one-stream offer: its first m-line is ours, unless declined."""
    ours = make_offer(address="192.0.2.1", port=30000, codecs=[Codec(0, "PCMU", 8000)],
                      session_id=1, version=1)
    reply = SessionDescription.parse(SIPP)
    assert reply.paired(ours) is reply.media[0]
    declined = SessionDescription.parse(SIPP.replace("audio 6000", "audio 0"))
    assert declined.paired(ours) is None


def test_rfc4475_lpc_rtpmap_on_a_stream_we_do_not_use() -> None:
    """RFC 4475 §3.1.1.3's SDP: ``a=rtpmap:31 LPC`` (no clock rate) on the video
    stream spoils nothing: the audio stream is answered, the video one declined."""
    offer = SessionDescription.parse(SDP_150.format(ip="192.0.2.1"))
    video = offer.media[1]
    assert video.broken_rtpmaps == {31: "31 LPC"} and video.codecs == []
    assert "a=rtpmap:31 LPC\r\n" in str(offer)  # kept as written
    assert SessionDescription.parse(bytes(offer)) == offer
    sdp = make_answer(offer, supported=SUPPORTED, **US)  # type: ignore[arg-type]
    assert [(m.kind, m.port) for m in sdp.media] == [("audio", 20000), ("video", 0)]
    assert names(sdp.media[0].codecs) == [(0, "PCMU")]


def test_a_broken_rtpmap_spoils_only_its_own_format() -> None:
    text = SIPP.replace("RTP/AVP 0\n", "RTP/AVP 96 0\na=rtpmap:96 opus\n")
    offer = SessionDescription.parse(text)
    assert offer.audio is not None and names(offer.audio.codecs) == [(0, "PCMU")]
    assert offer.audio.broken_rtpmaps == {96: "96 opus"}
    assert names(answer(text, supported=["opus", "PCMU"]).media[0].codecs) == [(0, "PCMU")]


@pytest.mark.parametrize(
    "change, status, code, detail",
    [
        # the codec we would have used has the broken rtpmap: that is what is wrong
        (("RTP/AVP 0\na=rtpmap:0 PCMU/8000", "RTP/AVP 96\na=rtpmap:96 PCMU"), 400, 399,
         "Malformed rtpmap '96 PCMU'"),
        (("RTP/AVP 0\na=rtpmap:0 PCMU/8000", "RTP/AVP 96\na=rtpmap:96 garbage"), 488, 305,
         "no common codec"),
        (("RTP/AVP 0\na=rtpmap:0 PCMU/8000", "RTP/AVP 3"), 488, 305, "no common codec"),
        (("m=audio 6000 RTP/AVP 0", "m=video 6000 RTP/AVP 0"), 488, 304, "no audio stream"),
        (("m=audio 6000 RTP/AVP 0", "m=audio 6000 RTP/SAVP 0"), 488, 302,
         "no RTP/AVP audio stream"),
    ],
)
def test_why_an_offer_is_refused(change: tuple[str, str], status: int, code: int,
                                 detail: str) -> None:
    """Each refusal carries the SIP status and the RFC 3261 §20.43 warn-code."""
    with pytest.raises(SdpError) as caught:
        answer(SIPP.replace(*change))
    assert (caught.value.status, caught.value.code, str(caught.value)) == (status, code, detail)
    assert caught.value.warning("192.0.2.1") == f'{code} 192.0.2.1 "{detail}"'


def test_warning_header_values() -> None:
    assert SdpError("Malformed rtpmap '31 LPC'").warning("pbx.example.com") == (
        '399 pbx.example.com "Malformed rtpmap \'31 LPC\'"')
    assert SdpError("x", 488, 305).warning("2001:db8::1") == '305 [2001:db8::1] "x"'
    assert SdpError('Malformed c= line \'"\\\'').warning("h") == (
        '399 h "Malformed c= line \'\\"\\\\\'"')  # quoted-string escapes (RFC 3261 §25.1)


@pytest.mark.parametrize(
    "offer_change, ours, expected",
    [
        ("a=sendrecv", None, "sendrecv"),
        ("a=sendonly", None, "recvonly"),  # phone holds: we only listen
        ("a=recvonly", None, "sendonly"),
        ("a=inactive", None, "inactive"),
        ("a=sendrecv", "sendonly", "sendonly"),  # we hold
        ("a=sendonly", "sendonly", "inactive"),  # both hold
        ("a=recvonly", "recvonly", "inactive"),
    ],
)
def test_answer_direction(offer_change: str, ours: str | None, expected: str) -> None:
    sdp = answer(BARESIP.replace("a=sendrecv", offer_change), direction=ours)
    assert sdp.audio is not None and sdp.audio.direction == expected


def test_hold() -> None:
    assert hold_direction(SessionDescription.parse(BARESIP)) == "sendrecv"
    for held in ("sendonly", "inactive"):
        assert hold_direction(SessionDescription.parse(BARESIP.replace("sendrecv", held))) == held
    old_style = SessionDescription.parse(SIPP.replace("c=IN IP4 127.0.0.1", "c=IN IP4 0.0.0.0"))
    assert hold_direction(old_style) == "sendonly"  # RFC 2543 hold
    sdp = make_answer(old_style, supported=SUPPORTED, **US)  # type: ignore[arg-type]
    assert sdp.audio is not None and sdp.audio.direction == "recvonly"
    both = SessionDescription.parse(
        BARESIP.replace("c=IN IP4 192.168.1.20", "c=IN IP4 0.0.0.0").replace("sendrecv", "recvonly"))
    assert hold_direction(both) == "inactive"
    rejected = SessionDescription.parse(SIPP.replace("audio 6000", "audio 0"))
    assert hold_direction(rejected) == "inactive"


def test_our_offer() -> None:
    offer = make_offer(address="192.0.2.1", port=30000, session_id=7, version=3,
                       codecs=[Codec(8, "PCMA", 8000), Codec(0, "PCMU", 8000), TELEPHONE_EVENT])
    assert str(offer) == (
        "v=0\r\no=pbx 7 3 IN IP4 192.0.2.1\r\ns=pbx\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n"
        "m=audio 30000 RTP/AVP 8 0 101\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:0 PCMU/8000\r\n"
        "a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=ptime:20\r\na=sendrecv\r\n"
    )
    assert offer.audio is not None and offer.audio.rtcp == 30001
    held = make_offer(address="192.0.2.1", port=30000, session_id=7, version=4,
                      codecs=[Codec(8, "PCMA", 8000)], direction="sendonly")
    assert "a=sendonly\r\n" in str(held)
    # a phone answering our offer: we parse what it says about our stream
    reply = answer(str(offer), address="10.0.0.7", port=4000, supported=["PCMU", "PCMA"])
    assert reply.audio is not None and names(reply.audio.codecs) == [(8, "PCMA")]


def test_bad_local_arguments() -> None:
    with pytest.raises(ValueError, match="direction"):
        make_offer(address="192.0.2.1", port=1, codecs=[TELEPHONE_EVENT], session_id=1,
                   version=1, direction="hold")
    with pytest.raises(ValueError, match="codec"):
        make_offer(address="192.0.2.1", port=1, codecs=[], session_id=1, version=1)


# ---------------------------------------------------------------- o= versions


def test_session_version_grows_only_on_change() -> None:
    versions = SessionVersion(session_id=42)
    offer = make_offer(address="192.0.2.1", port=30000, codecs=[TELEPHONE_EVENT], session_id=0,
                       version=0)
    first = versions.stamp(offer)
    assert (first.origin.sess_id, first.origin.sess_version) == ("42", "1")
    assert bytes(versions.stamp(offer)) == bytes(first)  # session refresh: identical SDP
    offer.media[0].direction = "sendonly"
    held = versions.stamp(offer)
    assert (held.origin.sess_id, held.origin.sess_version) == ("42", "2")
    assert versions.stamp(offer).origin.sess_version == "2"
    assert first.media[0].direction == "sendrecv"  # what was sent stays as it was sent


def test_mangled_offers_raise_only_sdp_error() -> None:
    """Whatever a broken phone sends, the PBX gets an SdpError (a 400/488), never a crash."""
    rng = random.Random(3264)
    alphabet = "0123456789 =:/-.\r\nabcmovst\u00b2\xff"
    for _ in range(3000):
        data = list(rng.choice(SAMPLES))
        for _ in range(rng.randint(1, 4)):
            at = rng.randrange(len(data))
            if rng.random() < 0.5:
                del data[at]
            else:
                data.insert(at, rng.choice(alphabet))
        try:
            sdp = SessionDescription.parse("".join(data))
        except SdpError:
            continue
        assert SessionDescription.parse(bytes(sdp)) == sdp
        try:
            make_answer(sdp, supported=SUPPORTED, **US)  # type: ignore[arg-type]
        except SdpError as exc:
            assert exc.status == 488 or str(exc).startswith("Malformed rtpmap")


# ---------------------------------------------------------------- SDES (RFC 4568)

KEY_80 = "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0e"  # 30 bytes: key and salt
KEY_32 = "ZWZnaGlqa2xtbm9wcXJzdHV2d3h5ent8fX5/gIGC"
SRTP_PHONE = (  # a desk phone with SRTP "compulsory": both suites, an unusable AES-256 line first
    "v=0\r\no=- 20035 20035 IN IP4 10.0.0.20\r\ns=SDP data\r\nc=IN IP4 10.0.0.20\r\nt=0 0\r\n"
    "m=audio 11800 RTP/SAVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n"
    "a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\n"
    "a=crypto:3 AES_256_CM_HMAC_SHA1_80 inline:Wm9vb29vb29vb29vb29vb29vb29vb29vb29vb29vb29vb29vb29v\r\n"
    f"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{KEY_80}|2^20\r\n"
    f"a=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:{KEY_32}\r\na=sendrecv\r\n"
)


def test_crypto_lines_we_can_use_are_parsed_and_the_rest_kept_as_written() -> None:
    audio = SessionDescription.parse(SRTP_PHONE).audio
    assert audio is not None and audio.is_srtp
    assert [(c.tag, c.key.suite, len(c.key.key)) for c in audio.crypto] == [
        (1, "AES_CM_128_HMAC_SHA1_80", 30), (2, "AES_CM_128_HMAC_SHA1_32", 30)]
    assert [name for name, _ in audio.attributes] == ["crypto"]  # the AES-256 line, untouched
    for unusable in ("1 AES_CM_128_HMAC_SHA1_80 inline:" + KEY_80 + "|2^20|1:4",  # an MKI
                     "1 AES_CM_128_HMAC_SHA1_80 inline:" + KEY_80 + " UNENCRYPTED_SRTP",
                     "1 AES_CM_128_HMAC_SHA1_80 inline:c2hvcnQ=",  # 5 bytes
                     "1 AES_CM_128_HMAC_SHA1_80 inline:!!notbase64!!",
                     "x AES_CM_128_HMAC_SHA1_80 inline:" + KEY_80, "1 F8_128_HMAC_SHA1_80"):
        assert Crypto.parse(unusable) is None, unusable
    # a SAVP stream without a usable line is one the relay cannot carry
    only_256 = SRTP_PHONE.replace("a=crypto:1", "a=x-crypto:1").replace("a=crypto:2", "a=x:2")
    assert SessionDescription.parse(only_256).audio is None


def test_an_srtp_offer_is_answered_with_its_first_usable_suite_and_our_own_key() -> None:
    offer = SessionDescription.parse(SRTP_PHONE)
    sdp = make_answer(offer, supported=SUPPORTED, srtp="optional", **US)  # type: ignore[arg-type]
    audio = sdp.audio
    assert audio is not None and audio.proto == "RTP/SAVP"
    [ours] = audio.crypto
    assert (ours.tag, ours.key.suite) == (1, "AES_CM_128_HMAC_SHA1_80")
    assert ours.key != offer.media[0].crypto[0].key  # a key of our own
    assert "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:" in str(sdp)
    assert SessionDescription.parse(str(sdp)).audio.crypto == [ours]  # type: ignore[union-attr]
    assert sdes_keys(sdp.media[0], offer.media[0]) == (ours.key, offer.media[0].crypto[0].key)
    # a re-INVITE keeps our key for the suite
    again = make_answer(offer, supported=SUPPORTED, srtp="required", keys=[ours],
                        **US)  # type: ignore[arg-type]
    assert again.media[0].crypto == [ours]


def test_srtp_modes_decide_which_streams_are_taken() -> None:
    best_effort = SRTP_PHONE.replace("RTP/SAVP", "RTP/AVP")  # baresip's mediaenc=srtp
    both = SRTP_PHONE + SIPP.split("t=0 0\n")[1].replace("\n", "\r\n")  # SAVP, then plain
    cases = [
        (SRTP_PHONE, "off", None), (SRTP_PHONE, "optional", 0), (SRTP_PHONE, "required", 0),
        (best_effort, "off", 0), (best_effort, "optional", 0), (best_effort, "required", 0),
        (SIPP, "off", 0), (SIPP, "optional", 0), (SIPP, "required", None),
        (both, "off", 1), (both, "optional", 0), (both, "required", 0),
    ]
    for text, mode, taken in cases:
        offer = SessionDescription.parse(text)
        if taken is None:
            with pytest.raises(SdpError) as caught:
                choose_audio(offer, SUPPORTED, mode)
            assert (caught.value.status, caught.value.code) == (488, 302)
            continue
        assert choose_audio(offer, SUPPORTED, mode) is offer.media[taken], (text, mode)
        sdp = make_answer(offer, supported=SUPPORTED, srtp=mode, **US)  # type: ignore[arg-type]
        accepted = sdp.media[taken]
        assert bool(accepted.crypto) == (mode != "off" and bool(offer.media[taken].crypto))
        assert accepted.proto == offer.media[taken].proto
    with pytest.raises(SdpError, match="SRTP required"):
        choose_audio(SessionDescription.parse(SIPP), SUPPORTED, "required")
    with pytest.raises(ValueError):
        choose_audio(SessionDescription.parse(SIPP), SUPPORTED, "sometimes")


def test_our_srtp_offer_and_the_answer_give_the_keys_of_the_chosen_tag() -> None:
    offered = Crypto.offered()
    assert [(c.tag, c.key.suite) for c in offered] == [
        (1, "AES_CM_128_HMAC_SHA1_80"), (2, "AES_CM_128_HMAC_SHA1_32")]
    ours = make_offer(address="192.0.2.1", port=30000, codecs=[Codec(0, "PCMU", 8000)],
                      session_id=1, version=1, proto="RTP/SAVP", crypto=offered)
    assert "m=audio 30000 RTP/SAVP 0\r\n" in str(ours) and str(ours).count("a=crypto:") == 2
    reply = SessionDescription.parse(SRTP_PHONE.replace(f"a=crypto:1 AES_CM_128_HMAC_SHA1_80 "
                                                        f"inline:{KEY_80}|2^20\r\n", ""))
    assert sdes_keys(ours.media[0], reply.media[0]) == (offered[1].key,
                                                         reply.media[0].crypto[0].key)
    plain = SessionDescription.parse(SIPP)
    assert sdes_keys(ours.media[0], plain.media[0]) is None
