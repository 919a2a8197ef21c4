"""The RTP relay that anchors every call's media at the PBX (RFC 3550, RFC 4733).

Each call leg owns an even/odd UDP port pair.  Two legs are bridged: a packet
arriving on one leaves by the other towards that leg's phone, rewritten so the
phone sees one steady stream whoever talks into it (a transfer or re-INVITE
switching the source changes nothing it can see): the leg's own SSRC, sequence
numbers and timestamps continuing where they were, the payload types that
phone negotiated, and µ-law↔A-law transcoding when the two phones chose
differently.  RFC 4733 telephone-events pass through with their payload type
mapped.  Nothing the phones send in RTCP is forwarded: each leg reports on its
own (SR/RR + SDES every ~5 s) from what it measured.

Symmetric RTP (RFC 4961): a leg sends to where its phone's packets come from,
so phones behind NAT work.  It latches on the first valid packet and refuses
other sources (counted as ``rejected``) until the latched one has been silent
for ``latch_silence`` seconds or the SDP gives a new address: nobody can
hijack a call's audio by spraying packets at the port.

A leg may be SRTP (RFC 3711, keys from SDES): :meth:`RelayLeg.secure` gives
it the phone's key and ours; what the phone sends is checked and decrypted
before anything else (a packet without the key cannot latch), what we send
is protected on the one way out (:meth:`RelayLeg.emit`), RTCP likewise.
The other leg of the call knows nothing of it.

Speed comes from staying out of the way: one ``datagram_received`` callback
per packet, no task, no object per packet, a header read with one
``struct`` call and transcoding as one ``bytes.translate`` with the G.711
table.  Per-leg state is plain attributes, which is what the media engine's
20 ms tick (issue 4) reads when it takes over a leg: it replaces the
``peer.relay_from`` call at the end of :meth:`RelayLeg.datagram_received` by a
push into the leg's jitter buffer and sends its mixed frames with the same
rewriting state.
"""

from __future__ import annotations

import asyncio
import logging
import random
import secrets
import socket
import struct
import time
from dataclasses import dataclass

from media.g711 import TRANSCODE
from media.ports import PortPool, PortsExhausted
from media.quality import estimate_mos
from media.srtp import Session, SrtpError, SrtpKey, receiver, sender

log = logging.getLogger("media.relay")

LATCH_SILENCE = 2.0  # s a latched source must be quiet before another address may take over
RTCP_INTERVAL = 5.0  # s between a leg's reports, randomised ×[0.5, 1.5] (RFC 3550 §6.3.1)
MAX_PPS = 400  # packets/s one leg forwards: 8× G.711 at 20 ms; the rest of a flood is dropped
MAX_DROPOUT = 3000  # RFC 3550 A.1: a jump this far ahead restarts the sequence
MAX_MISORDER = 100  # ... and this far behind is a late packet
SOCKET_BUFFER = 1 << 20
DSCP_EF = 0xB8  # expedited forwarding (RFC 3246) in the IPv4 TOS byte
PTIME_MS = 20.0  # packetisation delay assumed for the MOS estimate
NTP_EPOCH_OFFSET = 2208988800  # s from 1900 (NTP, RFC 5905) to 1970 (Unix)
CLOCK_RATES = {"PCMU": 8000, "PCMA": 8000, "G722": 8000, "G729": 8000, "OPUS": 48000}

_HEADER = struct.Struct("!BBHII")
_SEQ_TS_SSRC = struct.Struct("!HII")
_RTCP_HEADER = struct.Struct("!BBH")
_SR = struct.Struct("!BBHIIIIII")
_RR = struct.Struct("!BBHI")
_REPORT_BLOCK = struct.Struct("!IIIIII")
# µ-law ↔ A-law straight from one byte to the other: the G.711 numpy tables as
# ``bytes.translate`` tables, which map a whole 160-byte payload in one C call.
_TRANSCODE = {pair: table.tobytes() for pair, table in TRANSCODE.items()}
_monotonic = time.monotonic


@dataclass(frozen=True, slots=True)
class LegStats:
    """Quality figures of one leg, stored with the call record.

    ``*_in`` is what the phone sent us, ``*_out`` what we sent it; bytes are
    RTP payload octets (RFC 3550 §6.4.1).  ``lost`` and ``jitter_ms`` are
    measured on the incoming stream; ``remote_fraction_lost`` and ``rtt_ms``
    come from the phone's RTCP reports about our stream (0 if it sent none).
    """

    packets_in: int
    packets_out: int
    bytes_in: int
    bytes_out: int
    lost: int
    jitter_ms: float
    mos: float
    rejected: int = 0
    malformed: int = 0
    remote_fraction_lost: float = 0.0
    rtt_ms: float = 0.0
    srtp: bool = False  # the phone's media was protected by SRTP (RFC 3711)
    unauthenticated: int = 0  # SRTP/SRTCP packets refused: failed authentication or replays


class RelayLeg(asyncio.DatagramProtocol):
    """One call leg's port pair: what its phone sends us and how we send to it."""

    def __init__(self, relay: MediaRelay, label: str, port: int) -> None:
        self.relay = relay
        self.label = label
        self.local_port = port
        self.transport: asyncio.DatagramTransport | None = None
        self.rtcp_transport: asyncio.DatagramTransport | None = None
        self.peer: RelayLeg | None = None
        self.closed = False
        # the phone, from its SDP
        self.remote: tuple[str, int] | None = None
        self.payload_type = 0
        self.codec = "PCMU"
        self.clock_rate = 8000
        self.dtmf_pt: int | None = None
        self.held = False
        # SRTP (RFC 3711): our key protects what we send, the phone's checks what it sends
        self.tx_key: SrtpKey | None = None
        self.rx_key: SrtpKey | None = None
        self._tx: Session | None = None  # the libsrtp sessions of those keys
        self._rx: Session | None = None
        self.unauthenticated = 0
        # symmetric RTP: where packets come from is where ours go
        self.source: tuple[str, int] | None = None
        self.send_to: tuple[str, int] | None = None
        self.rtcp_send_to: tuple[str, int] | None = None
        self.rtcp_mux = False
        self.last_rx_at = 0.0
        # the incoming stream (RFC 3550 A.1, A.8)
        self.packets_in = self.bytes_in = 0
        self.rejected = self.malformed = self.discarded = self.flooded = 0
        self.in_ssrc: int | None = None
        self.base_seq = self.max_seq = self.cycles = self.received = 0
        self.expected_before = self.lost_before = 0  # earlier incoming SSRCs of this leg
        self.jitter = 0.0  # RTP timestamp units
        self.transit: int | None = None
        self._window_end = 0.0
        self._window_count = 0
        # the outgoing stream: one SSRC for the life of the leg, continuous seq/ts
        self.ssrc = random.getrandbits(32)
        self.out_seq = random.getrandbits(16)
        self.out_ts = random.getrandbits(32)
        self.out_at = 0.0
        self.packets_out = self.bytes_out = 0
        self._in_src: RelayLeg | None = None
        self._in_ssrc = -1
        self._seq_delta = 0
        self._ts_delta = 0
        # RTCP
        self.next_rtcp_at = _monotonic() + relay.rtcp_interval * random.uniform(0.5, 1.5)
        self.lsr = 0  # middle 32 bits of the NTP time in the phone's last SR
        self.lsr_at = 0.0
        self._expected_prior = self._received_prior = 0
        self.remote_fraction_lost = 0.0
        self.remote_jitter_ms = 0.0
        self.rtt_ms = 0.0
        self._lost: list[asyncio.Future[None]] = []

    def __repr__(self) -> str:
        return f"<RelayLeg {self.label or '?'} :{self.local_port} → {self.send_to}>"

    # ----------------------------------------------------------- signalling

    def set_remote(
        self, host: str, port: int, *, payload_type: int, codec: str, dtmf_pt: int | None
    ) -> None:
        """The phone's SDP: where to send until it sends, and what it talks.

        A new address lifts the latch at once (the phone said it moved); the
        same address again (a session refresh) keeps it, so a refresh opens
        no window for a hijacker.  Port 0 or a null address means "send
        nothing" and refuses the phone's packets until the next SDP.
        """
        if self.relay.dual_stack and ":" not in host:
            host = "::ffff:" + host  # IPv4 through the dual-stack socket
        if not port or host in ("0.0.0.0", "::", "::ffff:0.0.0.0"):
            self.remote = self.source = self.send_to = self.rtcp_send_to = None  # RFC 2543 hold
        elif (host, port) != self.remote:
            self.source = None
            self.send_to = (host, port)
            self.rtcp_send_to = (host, port + 1)
            self.remote = (host, port)
        self.payload_type = payload_type
        self.codec = codec.upper()
        self.clock_rate = CLOCK_RATES.get(self.codec, 8000)
        self.dtmf_pt = dtmf_pt

    def secure(self, tx: SrtpKey | None, rx: SrtpKey | None) -> None:
        """Protect the leg's media with SRTP (our key ``tx``, the phone's ``rx``), or
        not (both None).  A key that stays the same keeps its session, so a
        session refresh neither resets the rollover counter nor reopens the
        replay window."""
        if (tx is None) != (rx is None):
            raise ValueError("SRTP needs both keys, or neither")
        if tx != self.tx_key:
            self.tx_key, self._tx = tx, sender(tx) if tx is not None else None
        if rx != self.rx_key:
            self.rx_key, self._rx = rx, receiver(rx) if rx is not None else None

    def hold(self, on: bool) -> None:
        """While held no RTP goes to the phone; on resume the stream continues seamlessly.

        RTCP keeps flowing both ways (RFC 3264 §5.1), which also keeps a NAT
        binding open during a long hold.
        """
        if self.held and not on:
            self._in_src = None  # re-base: the phone gets seq + 1 and a marker, not a gap
        self.held = on

    # ------------------------------------------------------------ RTP input

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self._done()

    def error_received(self, exc: Exception) -> None:
        log.debug("leg %s: %s", self.label, exc)  # ICMP unreachable from a phone gone away

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:  # type: ignore[override]
        """Check, latch, count, then hand the packet to the bridged leg."""
        n = len(data)
        if n < 12 or data[0] & 0xC0 != 0x80:
            self.malformed += 1
            return
        first = data[0]
        second = data[1]
        if 192 <= second <= 223:  # RTCP multiplexed on the RTP port (RFC 5761 §4)
            self.rtcp_received(data, addr, muxed=True)
            return
        if self._rx is not None:  # before the latch: only the key holder can move the stream
            try:
                data = self._rx.unprotect(data)
            except SrtpError as exc:
                self._refused(exc, data)
                return
            n = len(data)
        start = 12 + ((first & 0x0F) << 2)
        if first & 0x10:  # header extension: skipped, never forwarded
            if n < start + 4:
                self.malformed += 1
                return
            start += 4 + ((data[start + 2] << 8 | data[start + 3]) << 2)
        end = n - data[-1] if first & 0x20 else n
        if start > end:
            self.malformed += 1
            return
        now = _monotonic()
        if addr != self.source and not self._latch(addr, now):
            return
        if now >= self._window_end:
            self._window_end = now + 1.0
            self._window_count = 0
        self._window_count += 1
        if self._window_count > self.relay.max_pps:
            self.flooded += 1
            return
        seq, ts, ssrc = _SEQ_TS_SSRC.unpack_from(data, 2)
        self.last_rx_at = now
        self.packets_in += 1
        self.bytes_in += end - start
        if ssrc != self.in_ssrc:
            self._restart_stream(ssrc, seq)
        else:
            delta = (seq - self.max_seq) & 0xFFFF
            if delta < MAX_DROPOUT:
                if seq < self.max_seq:
                    self.cycles += 0x10000
                self.max_seq = seq
            elif delta <= 0x10000 - MAX_MISORDER:
                self._restart_stream(ssrc, seq)  # the phone restarted its sequence
        self.received += 1
        pt = second & 0x7F
        if pt == self.payload_type:
            transit = int(now * self.clock_rate) - ts
            if self.transit is not None:
                d = (transit - self.transit) & 0xFFFFFFFF
                if d > 0x7FFFFFFF:
                    d = 0x100000000 - d
                self.jitter += (d - self.jitter) * 0.0625
            self.transit = transit
        elif pt != self.dtmf_pt:
            self.discarded += 1  # a payload type nobody negotiated (comfort noise, video, …)
            return
        peer = self.peer
        if peer is not None:
            peer.relay_from(self, data, start, end, pt, seq, ts, ssrc, now)

    def _refused(self, exc: SrtpError, data: bytes) -> None:
        """An SRTP/SRTCP packet that fails libsrtp's check: forged, replayed, or keyed
        with what the SDP no longer says.  Counted; the first few are logged."""
        self.unauthenticated += 1
        if self.unauthenticated <= 3:
            log.info("leg %s: SRTP packet refused (%s): %d bytes from %s…", self.label, exc,
                     len(data), data[:8].hex())

    def _latch(self, addr: tuple[str, int], now: float) -> bool:
        if self.remote is None or (
            self.source is not None and now - self.last_rx_at < self.relay.latch_silence
        ):
            self.rejected += 1
            return False
        if self.source is not None:
            log.info("leg %s: media source moved %s → %s", self.label, self.source, addr)
        self.source = self.send_to = addr
        if not self.rtcp_mux:
            self.rtcp_send_to = (addr[0], addr[1] + 1)
        return True

    def _restart_stream(self, ssrc: int, seq: int) -> None:
        """A new incoming SSRC (or sequence): fold the old one into the totals."""
        if self.in_ssrc is not None:
            expected = self.cycles + self.max_seq - self.base_seq + 1
            self.expected_before += expected
            self.lost_before += max(0, expected - self.received)
        self.in_ssrc = ssrc
        self.base_seq = self.max_seq = seq
        self.cycles = self.received = 0
        self._expected_prior = self._received_prior = 0
        self.transit = None

    # ----------------------------------------------------------- RTP output

    def relay_from(
        self, src: RelayLeg, data: bytes, start: int, end: int, pt: int, seq: int, ts: int,
        ssrc: int, now: float,
    ) -> None:
        """Send one packet from ``src`` to this leg's phone, rewritten for it."""
        to = self.send_to
        if to is None or self.held or self.transport is None:
            return
        payload = data[start:end]
        if pt == src.payload_type:
            out_pt = self.payload_type
            if src.codec != self.codec:
                table = _TRANSCODE.get((src.codec, self.codec))
                if table is None:
                    src.discarded += 1
                    return
                payload = payload.translate(table)
        elif self.dtmf_pt is None:
            return  # this phone did not negotiate RFC 4733 events
        else:
            out_pt = self.dtmf_pt
        marker = data[1] & 0x80
        if src is not self._in_src or ssrc != self._in_ssrc:
            self._rebase(src, ssrc, seq, ts, now)
            marker = 0x80
        out_seq = (seq + self._seq_delta) & 0xFFFF
        out_ts = (ts + self._ts_delta) & 0xFFFFFFFF
        if (out_seq - self.out_seq) & 0xFFFF < 0x8000:
            self.out_seq, self.out_ts, self.out_at = out_seq, out_ts, now
        self.emit(_HEADER.pack(0x80, marker | out_pt, out_seq, out_ts, self.ssrc) + payload,
                  len(payload), to)

    def emit(self, packet: bytes, payload_size: int, to: tuple[str, int]) -> None:
        """Put one of our RTP packets on the wire, SRTP-protected when the leg is.

        The one way out for the relay and the engine alike.  A packet libsrtp
        will not protect (far older than the stream, RFC 3711 §3.3.2) is dropped.
        """
        if self._tx is not None:
            try:
                packet = self._tx.protect(packet)
            except SrtpError:
                self.discarded += 1
                return
        self.transport.sendto(packet, to)  # type: ignore[union-attr]
        self.packets_out += 1
        self.bytes_out += payload_size

    def _rebase(self, src: RelayLeg, ssrc: int, seq: int, ts: int, now: float) -> None:
        """Map a new source onto our stream: next seq, timestamp advanced by the wall clock."""
        step = self.clock_rate // 50
        if self.out_at:
            step = max(step, int((now - self.out_at) * self.clock_rate))
        self._seq_delta = (self.out_seq + 1 - seq) & 0xFFFF
        self._ts_delta = (self.out_ts + step - ts) & 0xFFFFFFFF
        self._in_src, self._in_ssrc = src, ssrc

    # ----------------------------------------------------------------- RTCP

    def rtcp_received(self, data: bytes, addr: tuple[str, int], muxed: bool = False) -> None:
        """Learn from the phone's SR/RR: the LSR to echo, its loss and jitter, the RTT."""
        expected_host = (self.source or self.remote or ("", 0))[0]
        if addr[0] != expected_host:
            self.rejected += 1
            return
        if self._rx is not None:
            try:
                data = self._rx.unprotect_rtcp(data)
            except SrtpError as exc:
                self._refused(exc, data)
                return
        if muxed:
            self.rtcp_mux = True
            self.rtcp_send_to = None
        else:
            self.rtcp_send_to = addr
        offset = 0
        n = len(data)
        while offset + 4 <= n:
            first, packet_type, length = _RTCP_HEADER.unpack_from(data, offset)
            end = offset + 4 * (length + 1)
            if first & 0xC0 != 0x80 or end > n:
                self.malformed += 1
                return
            count = first & 0x1F
            if packet_type == 200 and end - offset >= 28:  # SR
                msw, lsw = struct.unpack_from("!II", data, offset + 8)
                self.lsr = ((msw & 0xFFFF) << 16) | (lsw >> 16)
                self.lsr_at = _monotonic()
                self._read_blocks(data, offset + 28, end, count)
            elif packet_type == 201 and end - offset >= 8:  # RR
                self._read_blocks(data, offset + 8, end, count)
            offset = end

    def _read_blocks(self, data: bytes, at: int, end: int, count: int) -> None:
        for _ in range(count):
            if at + 24 > end:
                self.malformed += 1
                return
            ssrc, lost_word, _, jitter, lsr, dlsr = _REPORT_BLOCK.unpack_from(data, at)
            at += 24
            if ssrc != self.ssrc:
                continue
            self.remote_fraction_lost = (lost_word >> 24) / 256
            self.remote_jitter_ms = jitter * 1000 / self.clock_rate
            if lsr:
                rtt = (_ntp_middle(time.time()) - lsr - dlsr) & 0xFFFFFFFF
                if rtt < 0x80000:  # under 8 s; anything else is a clock mix-up
                    self.rtt_ms = rtt * 1000 / 65536

    def rtcp_report(self, now: float, wallclock: float) -> bytes:
        """Our compound report (RFC 3550 §6.1): SR if we sent lately, else RR; then SDES."""
        blocks = b""
        if self.in_ssrc is not None and self.received:
            expected = self.cycles + self.max_seq - self.base_seq + 1
            expected_interval = expected - self._expected_prior
            lost_interval = expected_interval - (self.received - self._received_prior)
            self._expected_prior, self._received_prior = expected, self.received
            fraction = 0
            if expected_interval > 0 and lost_interval > 0:
                fraction = min(255, (lost_interval << 8) // expected_interval)
            lost = max(-0x800000, min(0x7FFFFF, expected - self.received)) & 0xFFFFFF
            dlsr = min(int((now - self.lsr_at) * 65536), 0xFFFFFFFF) if self.lsr else 0
            blocks = _REPORT_BLOCK.pack(
                self.in_ssrc, fraction << 24 | lost, (self.cycles + self.max_seq) & 0xFFFFFFFF,
                int(self.jitter), self.lsr, dlsr,
            )
        count = len(blocks) // 24
        if self.packets_out and now - self.out_at < 2 * self.relay.rtcp_interval:
            ntp = wallclock + NTP_EPOCH_OFFSET
            rtp_ts = (self.out_ts + int((now - self.out_at) * self.clock_rate)) & 0xFFFFFFFF
            report = _SR.pack(
                0x80 | count, 200, 6 + 6 * count, self.ssrc, int(ntp) & 0xFFFFFFFF,
                int((ntp % 1) * (1 << 32)) & 0xFFFFFFFF, rtp_ts,
                self.packets_out & 0xFFFFFFFF, self.bytes_out & 0xFFFFFFFF,
            )
        else:
            report = _RR.pack(0x80 | count, 201, 1 + 6 * count, self.ssrc)
        return report + blocks + self.relay.sdes(self.ssrc)

    def send_rtcp(self, now: float, wallclock: float) -> None:
        self.next_rtcp_at = now + self.relay.rtcp_interval * random.uniform(0.5, 1.5)
        if self.rtcp_mux:
            transport, to = self.transport, self.send_to
        else:
            transport, to = self.rtcp_transport, self.rtcp_send_to
        if transport is not None and to is not None:
            report = self.rtcp_report(now, wallclock)
            transport.sendto(report if self._tx is None else self._tx.protect_rtcp(report), to)

    # ---------------------------------------------------------------- stats

    def stats(self) -> LegStats:
        """Counters, loss, jitter and an E-model MOS for this leg, both directions combined."""
        expected = self.expected_before
        lost = self.lost_before
        if self.in_ssrc is not None:
            current = self.cycles + self.max_seq - self.base_seq + 1
            expected += current
            lost += max(0, current - self.received)
        jitter_ms = self.jitter * 1000 / self.clock_rate
        loss_pct = max(100.0 * lost / expected if expected else 0.0,
                       100.0 * self.remote_fraction_lost)
        mos = estimate_mos(
            self.codec, loss_pct=loss_pct, delay_ms=self.rtt_ms / 2 + PTIME_MS,
            jitter_ms=max(jitter_ms, self.remote_jitter_ms),
        )
        return LegStats(
            self.packets_in, self.packets_out, self.bytes_in, self.bytes_out, lost,
            round(jitter_ms, 2), mos, self.rejected, self.malformed,
            self.remote_fraction_lost, round(self.rtt_ms, 1), self._rx is not None,
            self.unauthenticated,
        )

    # ------------------------------------------------------------ lifecycle

    def _done(self) -> None:
        for future in self._lost:
            if not future.done():
                future.set_result(None)
                return


class _RtcpPort(asyncio.DatagramProtocol):
    """The odd port of a leg's pair; everything it hears goes to the leg."""

    def __init__(self, leg: RelayLeg) -> None:
        self.leg = leg

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.leg.rtcp_transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:  # type: ignore[override]
        self.leg.rtcp_received(data, addr)

    def error_received(self, exc: Exception) -> None:
        log.debug("leg %s RTCP: %s", self.leg.label, exc)

    def connection_lost(self, exc: Exception | None) -> None:
        self.leg._done()


def _ntp_middle(wallclock: float) -> int:
    """The middle 32 bits of an NTP timestamp, RTCP's LSR/DLSR unit (1/65536 s)."""
    return int((wallclock + NTP_EPOCH_OFFSET) * 65536) & 0xFFFFFFFF


class MediaRelay:
    """All relay legs of one PBX node, their ports and their RTCP clock.

    ``latch_silence``, ``rtcp_interval`` and ``max_pps`` are plain attributes
    (seconds, seconds, packets per second per leg) a test or the config may set.
    """

    def __init__(self, bind_host: str, pool: PortPool) -> None:
        self.bind_host = bind_host
        self.pool = pool
        self.legs: set[RelayLeg] = set()
        self.latch_silence = LATCH_SILENCE
        self.rtcp_interval = RTCP_INTERVAL
        self.max_pps = MAX_PPS
        self.cname = f"pbx-{secrets.token_hex(6)}".encode()  # RFC 7022: random, not an address
        self._family = socket.AF_INET6 if ":" in bind_host else socket.AF_INET
        self.dual_stack = bind_host == "::"
        self._rtcp_timer: asyncio.TimerHandle | None = None

    async def open_leg(self, label: str = "") -> RelayLeg:
        """A leg on the next free even port (its odd neighbour for RTCP).

        A port some other program holds is skipped; it stays in the pool for
        later.  Raises :class:`PortsExhausted` when nothing can be bound.
        """
        loop = asyncio.get_running_loop()
        for _ in range(self.pool.size):
            port = self.pool.allocate()
            try:
                rtp_sock = self._bind(port)
            except OSError:
                self.pool.release(port)
                continue
            try:
                rtcp_sock = self._bind(port + 1)
            except OSError:
                rtp_sock.close()
                self.pool.release(port)
                continue
            leg = RelayLeg(self, label, port)
            try:
                await loop.create_datagram_endpoint(lambda: leg, sock=rtp_sock)
                await loop.create_datagram_endpoint(lambda: _RtcpPort(leg), sock=rtcp_sock)
            except BaseException:
                for sock in (rtp_sock, rtcp_sock):
                    sock.close()
                if leg.transport is not None:
                    leg.transport.close()
                self.pool.release(port)
                raise
            self.legs.add(leg)
            if self._rtcp_timer is None:
                self._schedule_rtcp(loop)
            return leg
        raise PortsExhausted(f"no bindable RTP port in {self.pool.start}-{self.pool.end}")

    def _bind(self, port: int) -> socket.socket:
        sock = socket.socket(self._family, socket.SOCK_DGRAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SOCKET_BUFFER)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SOCKET_BUFFER)
            if self._family == socket.AF_INET:
                sock.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, DSCP_EF)
            else:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_TCLASS, DSCP_EF)
                if self.dual_stack:
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            sock.bind((self.bind_host, port))
        except OSError:
            sock.close()
            raise
        sock.setblocking(False)
        return sock

    def bridge(self, a: RelayLeg, b: RelayLeg) -> None:
        """Media from ``a`` goes to ``b``'s phone and back; former partners are let go.

        Each leg's outgoing stream re-bases on the next packet: whatever fed it
        meanwhile (another leg, the mixer), the phone sees seq + 1.
        """
        if a is b:
            raise ValueError("cannot bridge a leg to itself")
        for leg in (a, b):
            if leg.peer is not None and leg.peer is not a and leg.peer is not b:
                self.unbridge(leg)
        a.peer, b.peer = b, a
        a._in_src = b._in_src = None

    def unbridge(self, leg: RelayLeg) -> None:
        if leg.peer is not None:
            leg.peer.peer = None
        leg.peer = None

    async def close_leg(self, leg: RelayLeg) -> None:
        """Close both sockets, then give the port back (idempotent)."""
        if leg.closed:
            return
        leg.closed = True
        self.unbridge(leg)
        self.legs.discard(leg)
        loop = asyncio.get_running_loop()
        for transport in (leg.transport, leg.rtcp_transport):
            if transport is not None and not transport.is_closing():
                future: asyncio.Future[None] = loop.create_future()
                leg._lost.append(future)
                transport.close()
        if leg._lost:
            await asyncio.wait(leg._lost, timeout=1.0)
        self.pool.release(leg.local_port)
        if not self.legs and self._rtcp_timer is not None:
            self._rtcp_timer.cancel()
            self._rtcp_timer = None

    async def close(self) -> None:
        for leg in list(self.legs):
            await self.close_leg(leg)

    def sdes(self, ssrc: int) -> bytes:
        """An SDES packet with our CNAME, which every compound RTCP packet carries (§6.5)."""
        item = bytes((1, len(self.cname))) + self.cname
        chunk = struct.pack("!I", ssrc) + item + b"\x00" * (4 - len(item) % 4)
        return _RTCP_HEADER.pack(0x81, 202, len(chunk) // 4) + chunk

    def _schedule_rtcp(self, loop: asyncio.AbstractEventLoop) -> None:
        self._rtcp_timer = loop.call_later(
            min(1.0, self.rtcp_interval / 5), self._rtcp_tick, loop
        )

    def _rtcp_tick(self, loop: asyncio.AbstractEventLoop) -> None:
        """One timer for the whole node sends every report that is due."""
        self._schedule_rtcp(loop)
        now, wallclock = _monotonic(), time.time()
        for leg in self.legs:
            if now >= leg.next_rtcp_at:
                try:
                    leg.send_rtcp(now, wallclock)
                except (OSError, SrtpError) as exc:
                    log.debug("RTCP for %s failed: %s", leg.label, exc)
