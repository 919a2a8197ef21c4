"""The engine's mix matrix on synthetic tones, checked with an FFT."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from media.engine import FRAME, Member, mix_matrix


def tones(freqs: list[float]) -> np.ndarray:
    t = np.arange(FRAME * 10) / 8000
    return np.stack([np.sin(2 * np.pi * f * t) * 4000 for f in freqs]).astype(np.float32)


def heard(output: np.ndarray, freq: float) -> float:
    spectrum = np.abs(np.fft.rfft(output))
    freqs = np.fft.rfftfreq(len(output), 1 / 8000)
    return float(spectrum[np.abs(freqs - freq) < 10].max())


def test_five_party_room_is_n_minus_one() -> None:
    freqs = [400, 700, 1000, 1300, 1600]
    members = [Member(port=None) for _ in freqs]  # type: ignore[arg-type]
    matrix = mix_matrix(5, [list(enumerate(members))])
    out = matrix @ tones(freqs)
    for i, own in enumerate(freqs):
        assert heard(out[i], own) < 1.0
        assert all(heard(out[i], f) > 1e4 for f in freqs if f != own)


def test_mute_listen_only_and_gain() -> None:
    freqs = [500, 900, 1300]
    members = [Member(port=None), Member(port=None, muted=True),  # type: ignore[arg-type]
               Member(port=None, listen_only=True)]  # type: ignore[arg-type]
    members[0].gain = 0.5
    out = mix_matrix(3, [list(enumerate(members))]) @ tones(freqs)
    assert heard(out[2], 500) > 1e4 and heard(out[2], 900) < 1.0  # the muted one is not heard
    assert heard(out[0], 1300) < 1.0  # nor is the listener
    assert heard(out[1], 500) == heard(out[2], 500)


def test_separate_rooms_do_not_leak_and_sparse_matches_dense() -> None:
    n = 100  # above the sparse threshold
    members = [Member(port=None) for _ in range(n)]  # type: ignore[arg-type]
    rooms = [list(enumerate(members))[:50], list(enumerate(members))[50:]]
    matrix = mix_matrix(n, rooms)
    assert hasattr(matrix, "tocsr")
    dense = matrix.toarray()
    assert dense[0, 1] == 1 and dense[0, 0] == 0 and dense[0, 60] == 0 and dense[70, 99] == 1


def test_music_class_loops_and_is_shared(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import soundfile

    from media.engine import MusicClass

    tone = (np.sin(2 * np.pi * 440 * np.arange(16000) / 16000) * 8000).astype(np.int16)
    soundfile.write(tmp_path / "a.wav", tone, 16000)  # 1 s at 16 kHz: resampled to 8 kHz
    (tmp_path / "broken.wav").write_bytes(b"RIFF not really a wave file")
    music = MusicClass.from_folder("default", tmp_path)
    assert len(music.samples) == 8000  # the broken file was skipped, the good one resampled
    first = music.frame(1).copy()
    assert np.array_equal(music.frame(1), first)  # same tick: the same frame for everyone
    for tick in range(2, 60):
        music.frame(tick)
    assert music.cursor == (59 * 160) % 8000  # it loops


def test_bad_audio_file_is_a_clear_error(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import pytest

    from media.audiofile import AudioFileError, read_audio

    (tmp_path / "x.wav").write_bytes(b"garbage")
    with pytest.raises(AudioFileError, match="x.wav: cannot read audio"):
        read_audio(tmp_path / "x.wav", 8000)


SOURCE = SimpleNamespace(dtmf_pt=101)  # the sending leg: only its event payload type matters


def _port_with(seqs: list[int]):  # type: ignore[no-untyped-def]
    from media.engine import MixPort

    port = MixPort(leg=None)  # type: ignore[arg-type]
    for seq in seqs:
        port.relay_from(SOURCE, bytes([seq & 0xFF]) * 160, 0, 160, 0, seq, seq * 160, 1, 0.0)  # type: ignore[arg-type]
    return port


def test_jitter_buffer_reorders_conceals_loss_and_waits_for_late_packets() -> None:
    port = _port_with([0, 2, 1, 3, 5, 6])  # 1 and 2 swapped, 4 lost
    played = [port.take() for _ in range(6)]
    assert [p[0] if p else None for p in played] == [0, 1, 2, 3, None, 5]
    assert port.take()[0] == 6  # type: ignore[index]
    assert port.take() is None  # underrun: nothing yet ...
    port.relay_from(SOURCE, bytes([7]) * 160, 0, 160, 0, 7, 7 * 160, 1, 0.0)  # type: ignore[arg-type]
    assert port.take()[0] == 7  # type: ignore[index]  # ... the late packet is not skipped


def test_sequence_wrap() -> None:
    port = _port_with([65534, 65535, 0, 1])
    assert [port.take()[0] for _ in range(4)] == [254, 255, 0, 1]  # type: ignore[index]


def test_supervisor_listen_whisper_barge() -> None:
    """Caller 500 Hz, agent 900 Hz, supervisor 1300 Hz."""
    from media.engine import MixPort

    caller, agent, supervisor = (Member(port=MixPort(leg=None)) for _ in range(3))  # type: ignore[arg-type]
    signal = tones([500, 900, 1300])
    members = list(enumerate([caller, agent, supervisor]))

    supervisor.listen_only = True  # listen: hears both, heard by nobody
    out = mix_matrix(3, [members]) @ signal
    assert heard(out[2], 500) > 1e4 and heard(out[2], 900) > 1e4
    assert heard(out[0], 1300) < 1.0 and heard(out[1], 1300) < 1.0

    supervisor.listen_only, supervisor.whisper_to = False, agent.port  # whisper to the agent
    out = mix_matrix(3, [members]) @ signal
    assert heard(out[1], 1300) > 1e4 and heard(out[0], 1300) < 1.0
    assert heard(out[0], 900) > 1e4  # the caller still hears the agent

    supervisor.whisper_to = None  # barge: a normal three-way call
    out = mix_matrix(3, [members]) @ signal
    assert heard(out[0], 1300) > 1e4 and heard(out[1], 1300) > 1e4




@pytest.mark.parametrize("mode", ["listen", "whisper", "barge"])
async def test_supervise_joins_a_supervisor_to_a_call_in_each_mode(mode: str) -> None:
    """``MediaEngine.supervise`` on a live call: caller 500 Hz, agent 900 Hz,
    supervisor 1300 Hz, through the engine's own tick (layout, decode, mix, encode)."""
    from media.engine import MediaEngine
    from media.g711 import ULAW_DECODE, ulaw_encode

    def leg(label: str) -> SimpleNamespace:
        return SimpleNamespace(codec="PCMU", label=label, peer=None,
                               relay=SimpleNamespace(unbridge=lambda leg: None))

    engine = MediaEngine()
    caller, agent, supervisor = leg("caller"), leg("agent"), leg("supervisor")
    ports = [engine.join("call", caller, tone=False), engine.join("call", agent, tone=False)]
    ports.append(engine.supervise("call", supervisor, ports[1], mode))
    assert engine.participants("call") == ["caller", "agent", "supervisor"]
    signal = tones([500, 900, 1300]).astype(np.int16)
    out = np.zeros((3, FRAME * 10))
    for seq in range(10):
        for port, voice in zip(ports, signal):
            port.buffer[seq] = ulaw_encode(voice[seq * FRAME : (seq + 1) * FRAME]).tobytes()
            port.next_seq = seq
        encoded = engine.mix()
        assert encoded is not None
        for row, port in enumerate(ports):
            out[row, seq * FRAME : (seq + 1) * FRAME] = ULAW_DECODE[encoded[port.index]]
    assert engine._timer is not None
    engine._timer.cancel()
    said = {"caller": out[0], "agent": out[1], "supervisor": out[2]}
    assert heard(said["supervisor"], 500) > 1e5 and heard(said["supervisor"], 900) > 1e5
    assert heard(said["caller"], 900) > 1e5 and heard(said["agent"], 500) > 1e5
    agent_hears, caller_hears = heard(said["agent"], 1300), heard(said["caller"], 1300)
    if mode == "listen":
        assert agent_hears < 5e4 and caller_hears < 5e4  # µ-law noise only, 36 dB down
    elif mode == "whisper":
        assert agent_hears > 1e5 and caller_hears < 5e4
    else:
        assert agent_hears > 1e5 and caller_hears > 1e5
    with pytest.raises(ValueError, match="unknown supervision mode"):
        engine.supervise("call", leg("x"), ports[1], "coach")


def test_big_room_by_subtraction_equals_the_matrix() -> None:
    """Above BIG_ROOM members mix() uses sum-minus-own; it must equal N−1 by matrix."""
    from media.engine import BIG_ROOM, MediaEngine, MixPort, Room
    from media.g711 import ULAW_DECODE, ulaw_encode

    n = BIG_ROOM + 4
    engine = MediaEngine()
    members = [Member(MixPort(leg=SimpleNamespace(codec="PCMU"))) for _ in range(n)]  # type: ignore[arg-type]
    members[3].muted = True
    members[5].gain = 0.5
    engine.rooms["big"] = Room("big", members)
    engine.ports = [m.port for m in members]
    rng = np.random.default_rng(3)
    payloads = ulaw_encode(rng.normal(0, 1000, (n, FRAME)).astype(np.int16))
    for member, payload in zip(members, payloads):
        member.port.buffer[0] = payload.tobytes()
        member.port.next_seq = 0
    encoded = engine.mix()
    assert encoded is not None and engine._big  # the fast path was taken
    frames = ULAW_DECODE[payloads].astype(np.float32)
    expected = mix_matrix(n, [list(enumerate(members))]) @ frames
    got = ULAW_DECODE[encoded].astype(np.float32)
    again = ULAW_DECODE[ulaw_encode(np.clip(expected, -32768, 32767).astype(np.int16))]
    assert np.array_equal(got, again)


def test_a_silent_channel_is_concealed_then_dropped() -> None:
    """A port whose packets stop: a few fading repeats, then silence; the others go on."""
    from media.engine import CONCEAL_FRAMES, MediaEngine, MixPort, Room
    from media.g711 import ulaw_encode

    engine = MediaEngine()
    ports = [MixPort(leg=SimpleNamespace(codec="PCMU")) for _ in range(3)]  # type: ignore[arg-type]
    engine.rooms["r"] = Room("r", [Member(p) for p in ports])
    engine.ports = ports
    frames = tones([500, 900, 1300]).astype(np.int16)
    outputs = []
    for k in range(12):
        for i, port in enumerate(ports):
            if i == 0 and k >= 4:
                continue  # the first phone goes quiet after 4 frames
            port.buffer[k] = ulaw_encode(frames[i, :FRAME]).tobytes()
            if port.next_seq is None:
                port.next_seq = k
        encoded = engine.mix()
        assert encoded is not None
        outputs.append(encoded)
    from media.g711 import ULAW_DECODE

    heard_by_2 = [ULAW_DECODE[o[2]].astype(float) for o in outputs]
    first_level = [heard(frame, 500) for frame in heard_by_2]
    assert first_level[3] > 1e5  # still talking
    assert first_level[4] < first_level[3] and first_level[5] < first_level[4]  # fading
    assert all(level < 1e4 for level in first_level[4 + CONCEAL_FRAMES:])  # gone (leakage only)
    assert all(heard(frame, 900) > 1e5 for frame in heard_by_2)  # the others unaffected


def test_every_mixing_shortcut_equals_the_matrix() -> None:
    """Two-party swaps, sum-minus-own rooms and whisper rooms, side by side in one
    tick with µ-law and A-law phones, give what ``M @ frames`` gives, row for row."""
    from media.engine import MediaEngine, MixPort, MusicClass, Room
    from media.g711 import ALAW_DECODE, ULAW_DECODE, alaw_encode, ulaw_encode

    laws = {"PCMU": (ulaw_encode, ULAW_DECODE), "PCMA": (alaw_encode, ALAW_DECODE)}
    engine = MediaEngine()

    def members(*codecs: str) -> list[Member]:
        return [Member(MixPort(leg=SimpleNamespace(codec=codec))) for codec in codecs]  # type: ignore[arg-type]

    call = members("PCMU", "PCMA")  # a transcoded two-party call
    muted_call = members("PCMU", "PCMU")
    muted_call[1].muted = True
    room = members("PCMU", "PCMA", "PCMU", "PCMU", "PCMU")
    room[2].muted, room[3].gain = True, 0.5
    supervised = members("PCMU", "PCMU", "PCMA")
    supervised[2].whisper_to = supervised[1].port
    alone, held = members("PCMU"), members("PCMA")
    groups = {"call": call, "muted": muted_call, "room": room, "sup": supervised,
              "alone": alone, "held": held}
    engine.rooms = {name: Room(name, list(group)) for name, group in groups.items()}
    everyone = [m for group in groups.values() for m in group]
    engine.ports = [m.port for m in reversed(everyone)]  # joined in another order
    music = MusicClass("default", np.full(FRAME * 4, 1234.0, dtype=np.float32))
    engine.listening[held[0].port] = music

    rng = np.random.default_rng(7)
    signal = rng.normal(0, 3000, (len(everyone), FRAME)).clip(-32768, 32767).astype(np.int16)
    frames = np.zeros((len(everyone), FRAME), dtype=np.float32)
    for i, member in enumerate(everyone):
        encode, decode = laws[member.port.leg.codec]
        payload = encode(signal[i])
        frames[i] = decode[payload]
        member.port.buffer[0] = payload.tobytes()
        member.port.next_seq = 0
    encoded = engine.mix()
    assert encoded is not None
    assert engine._pairs and engine._big and engine._whispered  # each shortcut was taken

    indexed = {id(m): i for i, m in enumerate(everyone)}
    rooms = [[(indexed[id(m)], m) for m in group] for group in groups.values()]
    expected = mix_matrix(len(everyone), rooms) @ frames
    expected[everyone.index(held[0])] = 1234.0
    for i, member in enumerate(everyone):
        encode, _ = laws[member.port.leg.codec]
        want = encode(np.clip(expected[i], -32768, 32767).astype(np.int16))
        got = encoded[member.port.index]  # the row the port sends
        assert np.array_equal(got, want), f"member {i} ({member.port.leg.codec})"


def test_a_reinvite_to_another_codec_is_followed_from_the_next_tick() -> None:
    from media.engine import MediaEngine, MixPort, Room
    from media.g711 import ALAW_DECODE, ULAW_DECODE, alaw_encode, ulaw_encode

    engine = MediaEngine()
    legs = [SimpleNamespace(codec="PCMU"), SimpleNamespace(codec="PCMU")]
    ports = [MixPort(leg=leg) for leg in legs]  # type: ignore[arg-type]
    engine.rooms["call"] = Room("call", [Member(p) for p in ports])
    engine.ports = ports
    tone = tones([700, 1100]).astype(np.int16)[:, :FRAME]

    def tick(seq: int) -> np.ndarray:
        for port, leg, samples in zip(ports, legs, tone):
            encode = alaw_encode if leg.codec == "PCMA" else ulaw_encode
            port.buffer[seq] = encode(samples).tobytes()
            port.next_seq = seq
        encoded = engine.mix()
        assert encoded is not None
        return encoded

    before = tick(0)
    assert heard(ULAW_DECODE[before[1]].astype(float), 700) > 1e5
    legs[1].codec = "PCMA"  # the second phone re-INVITEs to A-law
    engine.renegotiated(legs[1])  # type: ignore[arg-type]
    after = tick(1)
    # what each hears is the other's voice, exactly, in its own law
    assert np.array_equal(after[1], alaw_encode(ULAW_DECODE[ulaw_encode(tone[0])]))
    assert np.array_equal(after[0], ulaw_encode(ALAW_DECODE[alaw_encode(tone[1])]))


def test_concealment_goes_on_when_someone_joins() -> None:
    """A new member re-lays out the tick; a phone whose packet is late still fades, not clicks."""
    from media.engine import MediaEngine, MixPort, Room
    from media.g711 import ULAW_DECODE, ulaw_encode

    engine = MediaEngine()
    ports = [MixPort(leg=SimpleNamespace(codec="PCMU")) for _ in range(3)]  # type: ignore[arg-type]
    engine.rooms["r"] = Room("r", [Member(p) for p in ports])
    engine.ports = list(ports)
    voice = ulaw_encode(tones([500])[0, :FRAME].astype(np.int16))
    levels = []
    for seq in range(4):
        if seq == 2:  # a fourth phone joins while the first one's packets are late
            late = MixPort(leg=SimpleNamespace(codec="PCMU"))  # type: ignore[arg-type]
            engine.rooms["r"].members.append(Member(late))
            engine.ports.append(late)
            engine._changed()
        if seq == 0:
            ports[0].buffer[0], ports[0].next_seq = voice.tobytes(), 0
        encoded = engine.mix()
        assert encoded is not None
        levels.append(np.abs(ULAW_DECODE[encoded[1]].astype(float)).max())
    assert levels[1] == pytest.approx(levels[0] / 2, rel=0.05)
    assert levels[2] == pytest.approx(levels[0] / 4, rel=0.05)  # across the new layout
    assert levels[3] == pytest.approx(levels[0] / 8, rel=0.1)


def test_an_opus_leg_is_decoded_as_opus() -> None:
    """The relay upper-cases codec names (``OPUS``); RTP names ignore case."""
    from media.engine import MixPort

    port = MixPort(leg=SimpleNamespace(codec="OPUS"))  # type: ignore[arg-type]
    assert port.wide is not None and port.wide.name == "opus"


def test_prompts_in_many_rooms_play_at_once_each_to_its_own_members() -> None:
    """IVR callers each hear their greeting in a room of their own, and a
    conference hears its join tone on every member's row: each member hears
    exactly their room's prompt, frame by frame, its short last frame padded
    with silence, and nothing once it has ended."""
    from media.engine import MediaEngine, MixPort, Room
    from media.g711 import ulaw_encode

    engine = MediaEngine()
    prompts = {"ivr-1": tones([440])[0, : FRAME * 2 + 40],  # ends 40 samples into frame 3
               "ivr-2": tones([1000])[0, : FRAME * 4],
               "room": tones([700])[0, : FRAME * 4] / 2}
    sizes = {"ivr-1": 1, "ivr-2": 1, "room": 3, "quiet": 1}
    for name, size in sizes.items():
        ports = [MixPort(leg=SimpleNamespace(codec="PCMU")) for _ in range(size)]  # type: ignore[arg-type]
        engine.rooms[name] = Room(name, [Member(p) for p in ports])
        engine.ports += ports
    engine.mix()  # lays the rooms out
    for name, prompt in prompts.items():
        engine.play(engine.rooms[name], prompt)
    for tick in range(4):
        encoded = engine.mix()
        assert encoded is not None
        for name, room in engine.rooms.items():
            expected = np.zeros(FRAME, dtype=np.float32)
            part = prompts[name][tick * FRAME : (tick + 1) * FRAME] if name in prompts else []
            expected[: len(part)] = part
            for member in room.members:
                got = encoded[member.port.index]
                assert np.array_equal(got, ulaw_encode(expected.astype(np.int16))), (name, tick)
    assert not engine._playing  # every prompt has ended


class Wire:
    """A leg's socket as the engine sees it: what was sent, and where."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def sendto(self, data: bytes, to: tuple[str, int]) -> None:
        self.sent.append(data)


def phone_leg(label: str, codec: str = "PCMU") -> SimpleNamespace:
    """A relay leg with a remote address, sending through a :class:`Wire`."""
    return SimpleNamespace(codec=codec, label=label, peer=None, send_to=("127.0.0.1", 4000),
                           held=False, transport=Wire(), out_seq=100, out_ts=1000, out_at=0.0,
                           payload_type=0 if codec == "PCMU" else 8, ssrc=hash(label) & 0xFFFF,
                           packets_out=0, bytes_out=0, dtmf_pt=101,
                           relay=SimpleNamespace(unbridge=lambda leg: None))


def music_engine() -> object:
    from media.engine import MediaEngine, MusicClass

    engine = MediaEngine()
    engine._ensure_running = lambda: None  # type: ignore[method-assign]  # ticks by hand
    ramp = np.arange(FRAME * 8, dtype=np.int16) * 7 - 4000  # every frame differs
    engine.set_music(MusicClass("default", ramp))
    engine.set_music(MusicClass("sales", -ramp))
    return engine


def test_callers_on_hold_get_their_class_encoded_once_in_their_own_law() -> None:
    """Music on hold outside the mix: each listener receives exactly its class's
    frame in its own law, in its own RTP stream (sequence, timestamp, SSRC go
    on from the leg's), while a call beside them is mixed as before."""
    import struct

    from media.g711 import alaw_encode, ulaw_encode

    engine = music_engine()
    held = {("a", "default", "PCMU"): None, ("b", "default", "PCMA"): None,
            ("c", "sales", "PCMU"): None, ("d", "sales", "PCMA"): None}
    legs = {key: phone_leg(key[0], key[2]) for key in held}
    for (label, music, _), leg in legs.items():
        engine.hold_music(leg, music)  # type: ignore[attr-defined]
    caller, agent = phone_leg("caller"), phone_leg("agent")
    engine.join("call", caller, tone=False)  # type: ignore[attr-defined]
    engine.join("call", agent, tone=False)  # type: ignore[attr-defined]
    for tick in range(3):
        engine.tick()  # type: ignore[attr-defined]
        engine.ticks += 1  # type: ignore[attr-defined]
        frames = {name: engine.music[name].frame(tick) for name in ("default", "sales")}  # type: ignore[attr-defined]
        for (label, music, codec), leg in legs.items():
            packet = leg.transport.sent[tick]
            _, pt, seq, ts, ssrc = struct.unpack("!BBHII", packet[:12])
            encode = ulaw_encode if codec == "PCMU" else alaw_encode
            assert packet[12:] == encode(frames[music]).tobytes(), (label, tick)
            assert (pt, seq, ts, ssrc) == (leg.payload_type, 101 + tick, 1000 + 160 * (tick + 1),
                                           leg.ssrc)
        assert len(caller.transport.sent) == len(agent.transport.sent) == tick + 1
    assert engine._hold.ports[0].index >= len(engine._order)  # type: ignore[attr-defined]  # after the mix


def test_going_on_and_off_hold_lays_nothing_out_again() -> None:
    """Hundreds of queue callers come and go: the mix keeps its layout, and a
    listener leaving hands its row to the last one, who still hears its class."""
    from media.g711 import ulaw_encode

    engine = music_engine()
    caller, agent = phone_leg("caller"), phone_leg("agent")
    engine.join("call", caller, tone=False)  # type: ignore[attr-defined]
    engine.join("call", agent, tone=False)  # type: ignore[attr-defined]
    engine.mix()  # type: ignore[attr-defined]
    layout = engine._order  # type: ignore[attr-defined]
    legs = [phone_leg(f"q{n}") for n in range(5)]
    for n, leg in enumerate(legs):
        engine.hold_music(leg, "sales" if n == 4 else "default")  # type: ignore[attr-defined]
    engine.stop_music(legs[1])  # type: ignore[attr-defined]
    engine.stop_music(legs[2])  # type: ignore[attr-defined]
    assert not engine._stale and engine._order is layout  # type: ignore[attr-defined]
    assert legs[1].peer is None and "moh-%d" % id(legs[1]) not in engine.rooms  # type: ignore[attr-defined]

    def each_hears_its_class(encoded: np.ndarray) -> None:
        for leg, music in ((legs[0], "default"), (legs[3], "default"), (legs[4], "sales")):
            want = ulaw_encode(engine.music[music].frame(engine.ticks))  # type: ignore[attr-defined]
            assert np.array_equal(encoded[leg.peer.index], want), leg.label

    encoded = engine.mix()  # type: ignore[attr-defined]
    assert engine._order is layout and len(encoded) == 2 + 3  # type: ignore[attr-defined]
    each_hears_its_class(encoded)
    engine.leave(caller)  # type: ignore[attr-defined]  # a call's change: a new layout
    assert engine._stale  # type: ignore[attr-defined]
    encoded = engine.mix()  # type: ignore[attr-defined]
    assert len(encoded) == 1 + 3  # the agent alone in the room, then the three on hold
    each_hears_its_class(encoded)


def test_a_key_pressed_in_the_audio_while_on_hold_is_heard() -> None:
    """A queue caller's phone without RFC 4733 presses 1 in the audio: the
    engine still finds it though the caller is not a row of the mix."""
    from media.dtmf import dtmf_tone
    from media.g711 import alaw_encode

    engine = music_engine()
    pressed: list[str] = []
    leg = phone_leg("caller", "PCMA")
    port = engine.hold_music(leg, on_dtmf=lambda port, key: pressed.append(key))  # type: ignore[attr-defined]
    tone = dtmf_tone("1", ms=80).astype(np.int16)
    for seq in range(4):
        port.buffer[seq] = alaw_encode(tone[seq * FRAME : (seq + 1) * FRAME]).tobytes()
        port.next_seq = 0 if seq == 0 else port.next_seq
        engine.mix()  # type: ignore[attr-defined]
    assert pressed == ["1"]
