"""The RTP relay with fake phones: plain UDP sockets on 127.0.0.1, real packets, no mocks."""

from __future__ import annotations

import asyncio
import random
import socket
import struct
import sys
import time

import numpy as np
import pytest

from media.g711 import alaw_decode, ulaw_encode
from media.ports import PortPool, PortsExhausted
from media.quality import estimate_mos, mos_from_r, r_factor
from media.relay import MediaRelay, RelayLeg

HEADER = struct.Struct("!BBHII")
PT = {"PCMU": 0, "PCMA": 8}


def rtp(seq: int, ts: int, ssrc: int, payload: bytes = b"\xff" * 160, pt: int = 0,
        marker: bool = False) -> bytes:
    return HEADER.pack(0x80, (0x80 if marker else 0) | pt, seq & 0xFFFF, ts & 0xFFFFFFFF,
                       ssrc) + payload


def parse(data: bytes) -> tuple[int, bool, int, int, int, bytes]:
    first, second, seq, ts, ssrc = HEADER.unpack_from(data)
    assert first == 0x80
    return second & 0x7F, bool(second & 0x80), seq, ts, ssrc, data[12:]


class Phone(asyncio.DatagramProtocol):
    """A fake phone: one UDP socket that remembers what reached it."""

    def __init__(self) -> None:
        self.packets: list[tuple[bytes, tuple[str, int]]] = []
        self.transport: asyncio.DatagramTransport | None = None
        self._arrived = asyncio.Event()

    @classmethod
    async def open(cls) -> Phone:
        loop = asyncio.get_running_loop()
        _, phone = await loop.create_datagram_endpoint(cls, local_addr=("127.0.0.1", 0))
        return phone

    @property
    def port(self) -> int:
        assert self.transport is not None
        return int(self.transport.get_extra_info("sockname")[1])

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:  # type: ignore[override]
        self.packets.append((data, addr))
        self._arrived.set()

    def send(self, leg: RelayLeg, data: bytes, rtcp: bool = False) -> None:
        assert self.transport is not None
        self.transport.sendto(data, ("127.0.0.1", leg.local_port + rtcp))

    async def wait_for(self, count: int, timeout: float = 2.0) -> list[bytes]:
        deadline = time.monotonic() + timeout
        while len(self.packets) < count and time.monotonic() < deadline:
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), deadline - time.monotonic())
            except TimeoutError:
                break
        return [data for data, _ in self.packets]

    def close(self) -> None:
        assert self.transport is not None
        self.transport.close()


def free_udp_range(count: int) -> int:
    """An even port starting ``count`` UDP ports nobody holds, below the ephemeral range."""
    for _ in range(100):
        base = random.randrange(20000, 32768 - count, 2)
        try:
            for port in range(base, base + count):
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
                    probe.bind(("127.0.0.1", port))
        except OSError:
            continue
        return base
    raise RuntimeError(f"no {count} free UDP ports in a row")


@pytest.fixture
async def relay():
    base = free_udp_range(400)
    relay = MediaRelay("127.0.0.1", PortPool(base, base + 399))
    yield relay
    await relay.close()
    assert relay.pool.free == relay.pool.size


async def call(
    relay: MediaRelay, codec_a: str = "PCMU", codec_b: str = "PCMU",
    dtmf_a: int | None = 101, dtmf_b: int | None = 101,
) -> tuple[Phone, RelayLeg, Phone, RelayLeg]:
    """Two phones whose SDP pointed at two bridged relay legs."""
    pa, pb = await Phone.open(), await Phone.open()
    a, b = await relay.open_leg("a"), await relay.open_leg("b")
    a.set_remote("127.0.0.1", pa.port, payload_type=PT[codec_a], codec=codec_a, dtmf_pt=dtmf_a)
    b.set_remote("127.0.0.1", pb.port, payload_type=PT[codec_b], codec=codec_b, dtmf_pt=dtmf_b)
    relay.bridge(a, b)
    return pa, a, pb, b


async def talk(phone: Phone, leg: RelayLeg, seqs, ssrc: int, pt: int = 0, gap: float = 0.001,
               ts_base: int = 0) -> None:
    for seq in seqs:
        phone.send(leg, rtp(seq, ts_base + 160 * seq, ssrc, pt=pt))
        await asyncio.sleep(gap)


# ------------------------------------------------------------------ port pool


def test_port_pool_hands_out_even_ports_until_exhausted_and_reuses_least_recent() -> None:
    pool = PortPool(10001, 10010)  # odd start is rounded up; 10010 has no RTCP partner
    assert pool.size == 4 and pool.free == 4
    ports = [pool.allocate() for _ in range(4)]
    assert ports == [10002, 10004, 10006, 10008]
    with pytest.raises(PortsExhausted):
        pool.allocate()
    pool.release(10004)
    pool.release(10002)
    assert pool.allocate() == 10004
    with pytest.raises(ValueError):
        pool.release(10006 + 100)
    with pytest.raises(ValueError):
        PortPool(10000, 10000)


# -------------------------------------------------------------------- quality


def test_e_model_known_points() -> None:
    assert r_factor("PCMU") == pytest.approx(93.2)
    assert mos_from_r(93.2) == pytest.approx(4.41, abs=0.005)
    assert mos_from_r(-5) == 1.0 and mos_from_r(120) == 4.5
    clean = estimate_mos("PCMA", delay_ms=20)
    lossy = estimate_mos("PCMA", loss_pct=5, delay_ms=20)
    assert clean >= 4.35
    assert 3.5 < lossy < clean - 0.4  # 5 % random loss on G.711: R ≈ 77, MOS ≈ 3.9
    assert estimate_mos("PCMU", delay_ms=400) < clean - 0.5  # long delay hurts (Id knee at 177 ms)
    assert estimate_mos("PCMU", jitter_ms=40, delay_ms=20) < clean  # jitter buffered as delay
    assert estimate_mos("G729", delay_ms=20) < clean  # codec impairment Ie = 11


# ----------------------------------------------------------- rewriting paths


async def test_packets_arrive_with_the_legs_own_ssrc_and_continuous_sequence(relay) -> None:
    pa, a, pb, b = await call(relay)
    await talk(pa, a, range(65530, 65540), ssrc=0x1111)  # crosses the 16-bit wrap
    got = [parse(p) for p in await pb.wait_for(10)]
    assert len(got) == 10
    assert {ssrc for *_, ssrc, _ in got} == {b.ssrc} != {0x1111}
    seqs = [seq for _, _, seq, *_ in got]
    assert seqs == [(seqs[0] + i) & 0xFFFF for i in range(10)]
    assert [ts for *_, ts, _, _ in got] == [(got[0][3] + 160 * i) & 0xFFFFFFFF for i in range(10)]
    assert got[0][1] and not any(marker for _, marker, *_ in got[1:])  # marker on a new source

    # a transfer: another phone takes a's place; b's phone must see the same stream go on
    pc = await Phone.open()
    c = await relay.open_leg("c")
    c.set_remote("127.0.0.1", pc.port, payload_type=0, codec="PCMU", dtmf_pt=101)
    relay.bridge(c, b)
    assert a.peer is None
    await talk(pc, c, range(7, 12), ssrc=0x2222, ts_base=123456)
    after = [parse(p) for p in (await pb.wait_for(15))[10:]]
    assert [seq for _, _, seq, *_ in after] == [(seqs[-1] + 1 + i) & 0xFFFF for i in range(5)]
    assert {ssrc for *_, ssrc, _ in after} == {b.ssrc}
    assert after[0][1]  # marker: the phone's jitter buffer resynchronises
    assert 0 < (after[0][3] - got[-1][3]) & 0xFFFFFFFF < 8000  # timestamps move on, not back

    # b spends a while in a conference (the mixer sends 50 frames on b's stream), then c again
    b.out_seq, b.out_ts = (b.out_seq + 50) & 0xFFFF, (b.out_ts + 50 * 160) & 0xFFFFFFFF
    relay.bridge(c, b)
    await talk(pc, c, range(12, 14), ssrc=0x2222, ts_base=123456)
    again = [parse(p) for p in (await pb.wait_for(17))[15:]]
    assert [seq for _, _, seq, *_ in again] == [(after[-1][2] + 51 + i) & 0xFFFF for i in (0, 1)]

    # and back towards a phone: b answers c with c's own SSRC
    await talk(pb, b, range(3), ssrc=0x3333)
    back = [parse(p) for p in await pc.wait_for(3)]
    assert [ssrc for *_, ssrc, _ in back] == [c.ssrc] * 3
    assert pa.packets == []
    for phone in (pa, pb, pc):
        phone.close()


async def test_pcmu_to_pcma_transcoding_keeps_the_tone(relay) -> None:
    pa, a, pb, b = await call(relay, "PCMU", "PCMA")
    t = np.arange(160 * 25) / 8000
    tone = (8000 * np.sin(2 * np.pi * 1000 * t)).astype(np.int16)
    ulaw = ulaw_encode(tone).tobytes()
    for i in range(25):
        pa.send(a, rtp(i, 160 * i, 0xABC, ulaw[160 * i:160 * (i + 1)], pt=0))
        await asyncio.sleep(0.001)
    got = sorted((parse(p) for p in await pb.wait_for(25)), key=lambda p: p[2])
    assert len(got) == 25 and {pt for pt, *_ in got} == {8}
    pcm = alaw_decode(b"".join(payload for *_, payload in got)).astype(np.float64)
    spectrum = np.abs(np.fft.rfft(pcm * np.hanning(len(pcm))))
    peak_hz = np.argmax(spectrum) * 8000 / len(pcm)
    assert abs(peak_hz - 1000) < 5
    assert np.max(np.abs(pcm - tone)) < 0.05 * 8000  # G.711 quantisation, not garbage
    pa.close()
    pb.close()


async def test_telephone_events_are_mapped_to_the_other_phones_payload_type(relay) -> None:
    pa, a, pb, b = await call(relay, dtmf_a=101, dtmf_b=96)
    event = bytes([5, 0x0A, 0x01, 0x40])  # digit 5, volume 10, duration 320
    pa.send(a, rtp(1, 8000, 0x55, event, pt=101, marker=True))
    pa.send(a, rtp(2, 8000, 0x55, bytes([5, 0x8A, 0x03, 0x20]), pt=101))  # end, same timestamp
    got = [parse(p) for p in await pb.wait_for(2)]
    assert [(pt, payload) for pt, *_, payload in got] == [(96, event), (96, bytes([5, 0x8A, 3, 0x20]))]
    assert got[0][3] == got[1][3]  # one event, one timestamp
    # a phone without telephone-event in its SDP gets none; other unknown types go nowhere
    b.set_remote("127.0.0.1", pb.port, payload_type=0, codec="PCMU", dtmf_pt=None)
    pa.send(a, rtp(3, 8160, 0x55, event, pt=101))
    pa.send(a, rtp(4, 8320, 0x55, b"\x40", pt=13))  # comfort noise nobody negotiated
    pa.send(a, rtp(5, 8480, 0x55))
    got = await pb.wait_for(3, timeout=0.5)
    assert [parse(p)[0] for p in got[2:]] == [0]
    pa.close()
    pb.close()


# ------------------------------------------------------------------ latching


async def test_symmetric_rtp_answers_the_nated_source_not_the_sdp_port(relay) -> None:
    pa, a, pb, b = await call(relay)
    nat = await Phone.open()  # a's packets really leave from another port (its NAT binding)
    await talk(nat, a, range(3), ssrc=0xA)
    await pb.wait_for(3)
    await talk(pb, b, range(3), ssrc=0xB)
    assert len(await nat.wait_for(3)) == 3
    assert pa.packets == []  # the SDP address got nothing once a's packets showed the way
    assert a.source == ("127.0.0.1", nat.port)
    for phone in (pa, pb, nat):
        phone.close()


async def test_foreign_sources_are_rejected_until_the_latched_one_falls_silent(relay) -> None:
    relay.latch_silence = 0.3
    pa, a, pb, b = await call(relay)
    intruder = await Phone.open()
    await talk(pa, a, range(5), ssrc=0xA)
    await talk(intruder, a, range(100, 110), ssrc=0xE)  # spraying the port mid-call
    await talk(pa, a, range(5, 10), ssrc=0xA)
    got = await pb.wait_for(10, timeout=0.5)
    assert len(got) == 10 and a.stats().rejected == 10
    assert a.source == ("127.0.0.1", pa.port)

    await asyncio.sleep(0.4)  # the phone went quiet: its NAT binding may have moved
    await talk(intruder, a, range(20, 22), ssrc=0xA)
    assert len(await pb.wait_for(12)) == 12 and a.source == ("127.0.0.1", intruder.port)

    # a re-INVITE with a new address lifts the latch at once
    moved = await Phone.open()
    a.set_remote("127.0.0.1", moved.port, payload_type=0, codec="PCMU", dtmf_pt=101)
    await talk(moved, a, range(22, 24), ssrc=0xA)
    assert len(await pb.wait_for(14)) == 14
    await talk(intruder, a, range(24, 26), ssrc=0xA)
    assert len(await pb.wait_for(16, timeout=0.3)) == 14
    for phone in (pa, pb, intruder, moved):
        phone.close()


async def test_rtp_before_any_sdp_is_refused(relay) -> None:
    leg = await relay.open_leg("early")
    phone = await Phone.open()
    await talk(phone, leg, range(3), ssrc=1)
    await asyncio.sleep(0.05)
    assert leg.stats().rejected == 3 and leg.stats().packets_in == 0
    phone.close()


# ---------------------------------------------------------------------- hold


async def test_hold_stops_forwarding_and_resume_continues_the_sequence(relay) -> None:
    pa, a, pb, b = await call(relay)
    await talk(pa, a, range(5), ssrc=0xA)
    before = [parse(p) for p in await pb.wait_for(5)]
    b.hold(True)
    await talk(pa, a, range(5, 15), ssrc=0xA)
    await talk(pb, b, range(3), ssrc=0xB)  # the held phone may still talk (sendonly)
    assert len(await pa.wait_for(3)) == 3
    assert len(pb.packets) == 5
    b.hold(False)
    await talk(pa, a, range(15, 18), ssrc=0xA)
    after = [parse(p) for p in (await pb.wait_for(8))[5:]]
    assert [seq for _, _, seq, *_ in after] == [(before[-1][2] + i) & 0xFFFF for i in (1, 2, 3)]
    assert after[0][1]  # marker bit after the pause
    pa.close()
    pb.close()


# ------------------------------------------------------------------ bad input


async def test_malformed_packets_are_counted_and_dropped_while_the_call_goes_on(relay) -> None:
    pa, a, pb, b = await call(relay)
    garbage = [
        b"\x00" * 5,  # too short
        rtp(1, 1, 1)[:11],
        b"\x40" + rtp(1, 1, 1)[1:],  # version 1
        b"\x8f" + rtp(1, 1, 1)[1:20],  # 15 CSRCs promised, 8 bytes there
        b"\x90" + rtp(1, 1, 1)[1:13],  # extension header cut off
        b"\xa0" + rtp(1, 1, 1, b"\x00\x00\xff")[1:],  # padding longer than the packet
    ]
    for seq in range(20):
        pa.send(a, rtp(seq, 160 * seq, 0xA))
        for bad in garbage:
            pa.send(a, bad)
        await asyncio.sleep(0.001)
    got = await pb.wait_for(20)
    assert len(got) == 20
    assert a.stats().malformed == 20 * len(garbage)
    assert a.stats().packets_in == 20 and a.stats().lost == 0
    pa.close()
    pb.close()


async def test_csrcs_extension_and_padding_are_stripped_from_what_is_forwarded(relay) -> None:
    pa, a, pb, b = await call(relay)
    voice = bytes(range(160))
    fixed = HEADER.pack(0x80 | 0x20 | 0x10 | 2, 0, 1, 160, 0xA)  # padding, extension, 2 CSRCs
    packet = (fixed + struct.pack("!II", 7, 8) + b"\xbe\xde\x00\x01" + b"ext!" + voice
              + b"\x00\x00\x03")  # RFC 3550 §5.1: the last octet counts the padding
    pa.send(a, packet)
    (forwarded,) = await pb.wait_for(1)
    *_, payload = parse(forwarded)
    assert payload == voice  # no CSRC, no extension, no padding: a plain 12-byte header
    assert a.stats().bytes_in == 160 and a.stats().malformed == 0
    pa.close()
    pb.close()


async def test_loss_is_counted_across_the_sequence_wrap(relay) -> None:
    pa, a, pb, b = await call(relay)
    await talk(pa, a, [65533, 65534, 65535, 0, 2, 3], ssrc=0xA)  # 1 lost, across the wrap
    await pb.wait_for(6)
    stats = a.stats()
    assert stats.packets_in == 6 and stats.lost == 1
    assert a.cycles == 0x10000 and a.max_seq == 3  # RFC 3550 A.1: extended highest is 65539
    pa.close()
    pb.close()


FLOOD = """
import socket, sys, time
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
packet = bytes.fromhex("80000009000000090000bad0") + bytes(160)
sent, stop = 0, time.monotonic() + float(sys.argv[2])
print("go", flush=True)
while time.monotonic() < stop:
    for _ in range(100):
        sock.sendto(packet, ("127.0.0.1", int(sys.argv[1])))
    sent += 100
print(sent, flush=True)
"""


async def test_a_flood_on_one_call_does_not_stall_another(relay) -> None:
    pa, a, pb, b = await call(relay)
    pc, c, pd, d = await call(relay)
    await talk(pa, a, range(2), ssrc=0xA)  # a is latched; the flood comes from elsewhere
    flood = await asyncio.create_subprocess_exec(
        sys.executable, "-c", FLOOD, str(a.local_port), "1.0", stdout=asyncio.subprocess.PIPE
    )
    assert flood.stdout is not None
    assert await flood.stdout.readline() == b"go\n"
    for seq in range(50):
        pc.send(c, rtp(seq, 160 * seq, 0xC))
        pd.send(d, rtp(seq, 160 * seq, 0xD))
        await asyncio.sleep(0.005)
    got_d = await pd.wait_for(50)
    got_c = await pc.wait_for(50)
    flooded = int(await flood.stdout.readline())
    await flood.wait()
    assert len(got_d) == 50 and len(got_c) == 50
    assert flooded > 20000 and a.stats().rejected > 5000
    assert len(pb.packets) == 2
    for phone in (pa, pb, pc, pd):
        phone.close()


async def test_a_latched_source_sending_too_fast_is_capped(relay) -> None:
    relay.max_pps = 100
    pa, a, pb, b = await call(relay)
    for seq in range(300):
        pa.send(a, rtp(seq, 160 * seq, 0xA))
    await asyncio.sleep(0.2)
    assert len(pb.packets) == 100 and a.flooded == 200
    pa.close()
    pb.close()


# ----------------------------------------------------------------- lifecycle


async def test_port_pool_is_whole_again_after_1000_legs(relay) -> None:
    pool = relay.pool
    phone = await Phone.open()
    opened = []
    for _ in range(10):
        legs = await asyncio.gather(*(relay.open_leg(f"x{i}") for i in range(100)))
        opened.extend(legs)
        assert len({leg.local_port for leg in legs}) == 100
        assert len(relay.legs) == 100 and pool.free == pool.size - 100
        for x, y in zip(legs[::2], legs[1::2]):
            x.set_remote("127.0.0.1", phone.port, payload_type=0, codec="PCMU", dtmf_pt=None)
            y.set_remote("127.0.0.1", phone.port, payload_type=0, codec="PCMU", dtmf_pt=None)
            relay.bridge(x, y)
        await asyncio.gather(*(relay.close_leg(leg) for leg in legs))
        await relay.close_leg(legs[0])  # idempotent
    assert len(relay.legs) == 0 and pool.free == pool.size
    # every socket really is closed (binding the ports again would race with
    # whatever else runs on this machine)
    assert len(opened) == 1000
    assert all(leg.transport is None or leg.transport.is_closing() for leg in opened)
    phone.close()


async def test_a_port_taken_by_someone_else_is_skipped() -> None:
    base = free_udp_range(6)
    squatter = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    squatter.bind(("127.0.0.1", base + 1))  # the RTCP half of the first pair
    relay = MediaRelay("127.0.0.1", PortPool(base, base + 5))
    try:
        leg = await relay.open_leg()
        assert leg.local_port == base + 2
        await relay.open_leg()
        with pytest.raises(PortsExhausted):
            await relay.open_leg()
    finally:
        squatter.close()
        await relay.close()
    assert relay.pool.free == relay.pool.size


# -------------------------------------------------------------- statistics


async def test_stats_count_loss_from_sequence_gaps_and_jitter_from_arrival_times(relay) -> None:
    pa, a, pb, b = await call(relay)
    rng = random.Random(7)
    missing = {10, 11, 25, 40, 41}
    sent = 0
    for seq in range(60):
        if seq not in missing:
            pa.send(a, rtp(seq, 160 * seq, 0xA))
            sent += 1
        await asyncio.sleep(rng.uniform(0.0, 0.03))  # irregular sending, nominally 20 ms
    await pb.wait_for(sent)
    stats = a.stats()
    assert stats.packets_in == sent == 55 and stats.lost == 5
    assert stats.bytes_in == 55 * 160
    assert stats.jitter_ms > 2.0
    assert b.stats().packets_out == 55 and b.stats().bytes_out == 55 * 160
    assert stats.mos < b.stats().mos  # ~8 % loss and jitter against a clean, silent leg
    pa.close()
    pb.close()


async def test_rtcp_reports_are_our_own_and_phone_reports_feed_the_stats(relay) -> None:
    relay.rtcp_interval = 0.2
    pa, a, pb, b = await call(relay)
    rtcp_b = await Phone.open()  # b's RTCP socket, behind its NAT
    await talk(pa, a, range(10), ssrc=0xA)
    await talk(pb, b, [0, 1, 2, 4], ssrc=0xB)  # seq 3 lost on the way to us
    # b's phone reports 25 % loss on what we send it (RR about our SSRC)
    rr = struct.pack("!BBHI", 0x81, 201, 7, 0xB) + struct.pack(
        "!IIIIII", b.ssrc, 64 << 24 | 3, 9, 80, 0, 0
    )
    rtcp_b.send(b, rr + b"\x81\xca\x00\x02" + struct.pack("!I", 0xB) + b"\x01\x00\x00\x00",
                rtcp=True)
    await rtcp_b.wait_for(1, timeout=1.0)
    report = rtcp_b.packets[-1][0]
    first, kind, length, ssrc = struct.unpack_from("!BBHI", report)
    assert kind == 200 and ssrc == b.ssrc and first & 0x1F == 1  # SR with one block
    ntp_msw, ntp_lsw, _, packets, octets = struct.unpack_from("!IIIII", report, 8)
    assert (packets, octets) == (10, 1600)
    block_ssrc, lost_word, highest, _, lsr, _ = struct.unpack_from("!IIIIII", report, 28)
    assert block_ssrc == 0xB and lost_word & 0xFFFFFF == 1 and highest == 4
    assert report[4 * (length + 1) + 1] == 202  # SDES with our CNAME follows
    phone_rtcp = [data for data, _ in pa.packets + pb.packets if data[4:8] == rr[4:8]]
    assert phone_rtcp == []  # the phone's own RTCP is not forwarded
    stats = b.stats()
    assert stats.remote_fraction_lost == 0.25 and stats.lost == 1
    assert stats.mos < 3.5  # 25 % loss

    # an RR echoing our SR's timestamp 100 ms later gives the round-trip time
    await asyncio.sleep(0.1)
    middle = ((ntp_msw & 0xFFFF) << 16) | (ntp_lsw >> 16)
    rtcp_b.send(b, struct.pack("!BBHI", 0x81, 201, 7, 0xB) + struct.pack(
        "!IIIIII", b.ssrc, 0, 9, 80, middle, 0), rtcp=True)
    await asyncio.sleep(0.05)
    assert 90 <= b.stats().rtt_ms <= 400
    for phone in (pa, pb, rtcp_b):
        phone.close()


async def test_dual_stack_relay_carries_ipv4_phones_and_port_zero_sends_nothing() -> None:
    base = free_udp_range(10)
    relay = MediaRelay("::", PortPool(base, base + 9))
    try:
        pa, a, pb, b = await call(relay)
        await talk(pa, a, range(3), ssrc=0xA)
        assert len(await pb.wait_for(3)) == 3
        b.set_remote("127.0.0.1", 0, payload_type=0, codec="PCMU", dtmf_pt=None)  # m=audio 0
        await talk(pa, a, range(3, 6), ssrc=0xA)
        await talk(pb, b, range(2), ssrc=0xB)
        await asyncio.sleep(0.1)
        assert len(pb.packets) == 3 and pa.packets == [] and b.stats().rejected == 2
        pa.close()
        pb.close()
    finally:
        await relay.close()


# ---------------------------------------------------------------------- SRTP


async def test_an_srtp_leg_decrypts_what_its_phone_sends_and_encrypts_what_it_gets(relay) -> None:
    """a's phone talks SRTP (RFC 3711), b's plain RTP: the relay protects per leg.
    A tone crosses both ways; what reaches a's phone is not the plain packet, a
    forged or replayed packet is refused before it can latch or reach b."""
    from media.srtp import SrtpKey, receiver, sender

    pa, a, pb, b = await call(relay)
    ours, theirs = SrtpKey.generate("AES_CM_128_HMAC_SHA1_80"), \
        SrtpKey.generate("AES_CM_128_HMAC_SHA1_32")
    a.secure(ours, theirs)
    phone_tx, phone_rx = sender(theirs), receiver(ours)
    tone = (np.sin(2 * np.pi * 1000 * np.arange(160) / 8000) * 8000).astype(np.int16)
    payload = ulaw_encode(tone).tobytes()
    plain = [rtp(seq, 160 * seq, 0xA, payload) for seq in range(5)]
    forged = rtp(9, 9 * 160, 0xA, payload) + b"\x00" * 10  # no valid auth tag
    pa.send(a, forged)
    for packet in plain:
        pa.send(a, phone_tx.protect(packet))
        await asyncio.sleep(0.001)
    pa.send(a, phone_tx.protect(plain[-1]))  # a replay
    got = [parse(p) for p in await pb.wait_for(5)]
    await asyncio.sleep(0.05)
    assert [data for *_, data in got] == [payload] * 5 and len(pb.packets) == 5  # b hears the tone in the clear
    assert a.unauthenticated == 2 and a.stats().srtp and not b.stats().srtp

    await talk(pb, b, range(5), ssrc=0xB)
    arrived = await pa.wait_for(5)
    assert all(len(p) == 12 + 160 + 10 for p in arrived)  # the 80-bit auth tag
    assert all(p[12:172] != b"\xff" * 160 for p in arrived)  # encrypted payload
    assert [parse(phone_rx.unprotect(p))[5] for p in arrived] == [b"\xff" * 160] * 5
    a.secure(None, None)
    await talk(pb, b, [5], ssrc=0xB)
    assert len((await pa.wait_for(6))[-1]) == 172  # plain again
    with pytest.raises(ValueError):
        a.secure(ours, None)
    for phone in (pa, pb):
        phone.close()


async def test_the_engine_sends_an_srtp_leg_its_mix_protected(relay) -> None:
    """A leg in a conference or a recorded call is fed by the engine's tick
    (MixPort.send): that way out is protected too."""
    from media.engine import MixPort
    from media.srtp import SrtpKey, receiver

    pa, a, pb, b = await call(relay)
    ours = SrtpKey.generate("AES_CM_128_HMAC_SHA1_32")
    a.secure(ours, SrtpKey.generate("AES_CM_128_HMAC_SHA1_32"))
    port = MixPort(a)
    port.send(b"\x55" * 160, time.monotonic())
    [packet] = await pa.wait_for(1)
    assert len(packet) == 12 + 160 + 4 and packet[12:172] != b"\x55" * 160  # 32-bit tag
    assert receiver(ours).unprotect(packet)[12:] == b"\x55" * 160
    assert a.stats().packets_out == 1
    for phone in (pa, pb):
        phone.close()
