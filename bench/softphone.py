#!/usr/bin/env python3
"""CPU per browser-softphone call on the server, against a plain SIP G.711
call, in one run.

N "pages" (aiortc clients in this process, standing in for browsers: the
same WebSocket signalling, ICE, DTLS-SRTP and Opus as Chromium) log in as N
users and each calls a sipp phone that echoes RTP, so audio flows both
ways; the PBX's gateway terminates WebRTC and transcodes Opus ⇄ G.711 for
each.  Then N plain SIP phones (the gateway's own SIP user agent with a
G.711 tone sender, here in this process) place the same calls.  For both,
the PBX process's CPU time (user + system, all threads, from /proc) over
a steady window of the calls, per call; then the ratio.  The PBX is pinned
to CPU 0; this process and sipp to CPU 1.

    .venv/bin/python bench/softphone.py [--calls 10] [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import fractions
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aioice.ice  # noqa: E402
import av  # noqa: E402
import httpx  # noqa: E402
import numpy as np  # noqa: E402
import websockets  # noqa: E402
from aiortc import MediaStreamTrack, RTCPeerConnection, RTCSessionDescription  # noqa: E402
from aiortc.contrib.media import MediaBlackhole  # noqa: E402

from bench.machine import cpu_seconds  # noqa: E402
from softphone.bridge import FRAME, RATE, MediaBridge  # noqa: E402
from pbx.sip.flow import Flow  # noqa: E402
from softphone.line import Line  # noqa: E402
from softphone.ua import Account, CallAnswered, CallEnded, Event, Registered  # noqa: E402
from tests.integration.peers import ADMIN_PASSWORD, Pbx, running_pbx, sipp_callee, user_of  # noqa: E402

CALLEE = "9000"
TONE = np.sin(2 * np.pi * 440 * np.arange(RATE) / RATE) * 8000  # one second, loops cleanly


class ToneTrack(MediaStreamTrack):
    """A microphone saying 440 Hz, in real time (what a browser's would send)."""

    kind = "audio"

    def __init__(self) -> None:
        super().__init__()
        self.start: float | None = None
        self.pts = 0

    async def recv(self) -> av.AudioFrame:
        if self.start is None:
            self.start = time.monotonic()
        else:
            self.pts += FRAME
            await asyncio.sleep(max(0.0, self.start + self.pts / RATE - time.monotonic()))
        offset = self.pts % RATE
        samples = TONE[offset: offset + FRAME].astype(np.int16)
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate, frame.pts, frame.time_base = RATE, self.pts, fractions.Fraction(1, RATE)
        return frame


async def webrtc_call(pbx: Pbx, token: str) -> tuple[object, RTCPeerConnection]:
    """One page: log in over the WebSocket, call the echo phone, wait until connected."""
    ws = await websockets.connect(f"ws://{pbx.host}:{pbx.http_port}/api/softphone?token={token}")
    assert json.loads(await ws.recv())["type"] == "registered"
    pc = RTCPeerConnection()
    pc.addTrack(ToneTrack())
    sink = MediaBlackhole()
    pc.on("track", sink.addTrack)
    await pc.setLocalDescription(await pc.createOffer())
    await ws.send(json.dumps({"type": "call", "id": "bench", "number": CALLEE,
                              "sdp": pc.localDescription.sdp}))
    while True:
        message = json.loads(await ws.recv())
        if message["type"] == "sdp":
            await pc.setRemoteDescription(RTCSessionDescription(message["sdp"], "answer"))
            await sink.start()
        elif message["type"] == "connected":
            return ws, pc
        elif message["type"] in ("ended", "error"):
            raise RuntimeError(f"page call failed: {message}")


async def sip_call(pbx: Pbx, number: str, secret: str) -> tuple[Line, asyncio.Task[None]]:
    """One plain SIP phone (the softphones' own line) calling the echo phone,
    talking G.711 in real time."""
    bridge = MediaBridge(pbx.host)  # only its RTP leg: no peer connection is used
    events: asyncio.Queue[Event | str] = asyncio.Queue()
    line = Line(Account(number, secret, Flow("UDP", pbx.host, pbx.sip_port), "pbx.test"),
                events.put_nowait)
    await line.connect()
    line.register()

    async def wait_for(kind: type) -> Event:
        while True:
            event = await asyncio.wait_for(events.get(), 10)
            if isinstance(event, kind):
                return event
            if isinstance(event, (str, CallEnded)):
                raise RuntimeError(f"SIP call failed: {event}")

    await wait_for(Registered)
    line.call(CALLEE, await bridge.open_rtp())
    answered = await wait_for(CallAnswered)
    assert isinstance(answered, CallAnswered)
    bridge.connect_pbx(answered.media)

    async def talk() -> None:
        start, sent = time.monotonic(), 0
        while True:
            offset = sent * FRAME % RATE
            bridge.rtp.send_audio(TONE[offset: offset + FRAME].astype(np.int16))
            sent += 1
            await asyncio.sleep(max(0.0, start + sent * FRAME / RATE - time.monotonic()))

    return line, asyncio.ensure_future(talk())


def measure(pid: int, seconds: float) -> float:
    """CPU seconds per wall second the PBX used over ``seconds``."""
    before, started = cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)
    return (cpu_seconds(pid) - before) / (time.monotonic() - started)


async def run_webrtc(pbx: Pbx, tokens: list[str], seconds: float) -> float:
    calls = [await webrtc_call(pbx, token) for token in tokens]
    await asyncio.sleep(1.0)  # past the set-up
    assert pbx.process is not None
    load = await asyncio.to_thread(measure, pbx.process.pid, seconds)
    for ws, pc in calls:
        await ws.send(json.dumps({"type": "hangup", "call": "bench"}))
        await pc.close()
        await ws.close()
    return load


async def run_sip(pbx: Pbx, phones: dict[str, str], seconds: float) -> float:
    calls = [await sip_call(pbx, number, secret) for number, secret in phones.items()]
    await asyncio.sleep(1.0)
    assert pbx.process is not None
    load = await asyncio.to_thread(measure, pbx.process.pid, seconds)
    for line, talking in calls:
        talking.cancel()
        for call in list(line.agent.calls.values()):
            line.hangup(call)
        line.unregister()
        await asyncio.sleep(0.1)
        line.disconnect()
    return load


def pin(pid: int, cpu: int) -> None:
    if shutil.which("taskset"):
        subprocess.run(["taskset", "-apc", str(cpu), str(pid)], capture_output=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"]  # loopback only
    pages = {str(2000 + i): f"bench-{2000 + i}-secret" for i in range(args.calls)}
    phones = {str(3000 + i): f"bench-{3000 + i}-secret" for i in range(args.calls)}
    extensions = {**pages, **phones, CALLEE: "bench-echo-secret"}
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        with running_pbx(tmp, extensions, admin_password=ADMIN_PASSWORD, rtp_ports="30000-34000",
                         log_level="WARNING", auth_max_failures=1000000) as pbx:
            assert pbx.process is not None
            pin(pbx.process.pid, 0)
            pin(os.getpid(), 1)
            tokens = [user_of(pbx, number)["Authorization"].split()[1] for number in pages]
            with sipp_callee(tmp, pbx, CALLEE, extensions[CALLEE], ["-l", "5000"], pin_cpu=1):
                idle = measure(pbx.process.pid, 2.0)
                webrtc = asyncio.run(run_webrtc(pbx, tokens, args.seconds))
                time.sleep(1.0)
                sip = asyncio.run(run_sip(pbx, phones, args.seconds))
            calls = httpx.get(f"{pbx.api}/health").json()["calls"]
    per_webrtc = (webrtc - idle) / args.calls * 1000
    per_sip = (sip - idle) / args.calls * 1000
    print(f"calls in each run        {args.calls} (both ways audio, {args.seconds:.0f} s measured)")
    print(f"PBX idle                 {idle * 100:.1f} % of a core")
    print(f"WebRTC calls (Opus⇄PCMU) {webrtc * 100:.1f} % of a core, {per_webrtc:.1f} ms CPU per call-second")
    print(f"SIP calls (PCMU)         {sip * 100:.1f} % of a core, {per_sip:.1f} ms CPU per call-second")
    print(f"ratio WebRTC / SIP       {per_webrtc / per_sip:.1f}x" if per_sip > 0 else "ratio: n/a")
    print(f"calls left at the end    {calls}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
