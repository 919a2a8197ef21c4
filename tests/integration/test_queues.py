"""ACD queues with real peers: sipp agents answering, sipp and scripted
callers, asserted on the events the PBX publishes (the admin API's
WebSocket) and on its API, never on its log."""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from tests.integration.audio import RtpPhone, level
from tests.integration.peers import Pbx, run_sipp, running_pbx, sipp_callee
from tests.integration.sipclient import SipClient, uas_dialog

pytestmark = pytest.mark.skipif(shutil.which("sipp") is None, reason="sipp not installed")

AGENTS = [f"10{n}" for n in range(11, 20)]  # 1011 … 1019
CALLERS = [f"20{n:02d}" for n in range(1, 21)]  # 2001 … 2020
PICKUP = ("1021", "1022")  # an agent of 716 who picks up a call ringing at a colleague
USERS = {n: f"pw-{n}-secret" for n in (*AGENTS, *CALLERS, *PICKUP)}
QUEUES = """
[710]
type = queue
strategy = rrmemory
members = 1011, 1012, 1013, 1014, 1015

[711]
type = queue
strategy = leastrecent
members = 1013, 1012, 1011

[712]
type = queue
strategy = ringall
members = 1014:0, 1015:5

[713]
type = queue
members = 1016
timeout = 20

[714]
type = queue
members = 1019
maxwait = 2
overflow = 1011

[717]
type = queue
members = 1015
wrapuptime = 2

[718]
type = queue
members = 1015
wrapuptime = 2

[719]
type = queue
members = 1018
survey = yes

[716]
type = queue
members = 1021

[715]
type = queue
strategy = linear
members = 1017
retry = 1
callback = yes
"""


class Feed:
    """The PBX's event WebSocket, read in a thread into :attr:`events`."""

    def __init__(self, socket: ClientConnection) -> None:
        self.socket = socket
        self.events: list[dict[str, Any]] = []
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        try:
            while True:
                self.events.append(json.loads(self.socket.recv()))
        except ConnectionClosed:
            pass

    def of(self, kind: str, **fields: object) -> list[dict[str, Any]]:
        return [e for e in self.events if e["type"] == kind
                and all(e.get(k) == v for k, v in fields.items())]

    def wait(self, kind: str, count: int = 1, timeout: float = 15.0,
             **fields: object) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while len(self.of(kind, **fields)) < count:
            assert time.monotonic() < deadline, (kind, fields, self.events[-10:])
            time.sleep(0.05)
        return self.of(kind, **fields)


@pytest.fixture(scope="module")
def pbx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pbx]:
    tmp = tmp_path_factory.mktemp("queues")
    with running_pbx(tmp, USERS, sections=QUEUES) as server, ExitStack() as agents:
        for agent in AGENTS[:5]:  # 1011 … 1015 answer at once (sipp's built-in UAS)
            agents.enter_context(sipp_callee(tmp, server, agent, USERS[agent]))
        yield server


@pytest.fixture(scope="module")
def feed(pbx: Pbx) -> Iterator[Feed]:
    """Every event of the module's PBX (tests tell theirs apart by queue)."""
    token = pbx.admin_headers()["Authorization"][7:]
    with connect(f"ws://{pbx.host}:{pbx.http_port}/api/events?token={token}") as socket:
        events = Feed(socket)
        time.sleep(0.2)
        yield events


def sipp_callers(pbx: Pbx, tmp: Path, queue: str, calls: int, hold_ms: int = 500) -> None:
    """``calls`` sipp callers (2001 …) call ``queue`` one after the other, each
    hanging up ``hold_ms`` after the queue answered."""
    users = [(caller, USERS[caller], queue) for caller in CALLERS[:calls]]
    result = run_sipp("call_uac.xml", pbx, users, rate=50, timeout=120, tmp=tmp,  # type: ignore[arg-type]
                      extra=["-l", "1", "-d", str(hold_ms)])
    assert result.returncode == 0, result.output[-2000:]


def agent_action(pbx: Pbx, extension: str, action: str, **body: str) -> dict[str, Any]:
    reply = httpx.post(f"{pbx.api}/agents/{extension}/{action}", headers=pbx.admin_headers(),
                       json=body or None)
    assert reply.status_code == 200, reply.text
    return reply.json()  # type: ignore[no-any-return]


def test_rrmemory_gives_each_of_five_agents_four_of_twenty_calls(pbx: Pbx, feed: Feed,
                                                                 tmp_path: Path) -> None:
    sipp_callers(pbx, tmp_path, "710", 20)
    answered = feed.wait("queue.answered", 20, queue="710")
    taken = [e["agent"] for e in answered]
    assert Counter(taken) == {agent: 4 for agent in AGENTS[:5]}
    assert taken[:5] == AGENTS[:5]  # in turn, round and round
    feed.wait("queue.completed", 20, queue="710")
    assert len(feed.of("queue.joined", queue="710")) == 20
    deadline = time.monotonic() + 10
    while True:  # the records are written off the event loop
        records = httpx.get(f"{pbx.api}/cdrs", params={"queue": "710"},
                            headers=pbx.admin_headers()).json()["items"]
        if len(records) >= 20 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert sorted(r["answered_by"] for r in records) == sorted(taken)  # tied to queue and agent


def test_leastrecent_offers_the_agent_idle_longest(pbx: Pbx, feed: Feed,
                                                   tmp_path: Path) -> None:
    sipp_callers(pbx, tmp_path, "711", 6)
    feed.wait("queue.completed", 6, queue="711")
    last_end: dict[str, float] = {}
    for event in list(feed.events):
        if event["type"] == "queue.answered" and event["queue"] == "711":
            members = ("1013", "1012", "1011")
            idle_longest = min(members, key=lambda m: last_end.get(m, 0.0))
            assert event["agent"] == idle_longest, (event, last_end)
        elif event["type"] == "queue.completed":
            last_end[event["agent"]] = event["at"]


def test_penalties_and_a_paused_agent(pbx: Pbx, feed: Feed, tmp_path: Path) -> None:
    """1014 (penalty 0) takes every call while free; paused, 1015 (penalty 5) does."""
    sipp_callers(pbx, tmp_path, "712", 3)
    feed.wait("queue.completed", 3, queue="712")
    assert [e["agent"] for e in feed.of("queue.answered", queue="712")] == ["1014"] * 3
    assert {e["agent"] for e in feed.of("queue.offered", queue="712")} == {"1014"}
    paused = agent_action(pbx, "1014", "pause", reason="lunch")
    assert (paused["state"], paused["pause_reason"]) == ("paused", "lunch")
    try:
        sipp_callers(pbx, tmp_path, "712", 2)
        feed.wait("queue.completed", 5, queue="712")
    finally:
        agent_action(pbx, "1014", "unpause")
    assert [e["agent"] for e in feed.of("queue.answered", queue="712")][3:] == ["1015"] * 2
    states = [(e["state"], e["reason"]) for e in feed.of("agent.state", agent="1014")]
    assert ("paused", "lunch") in states and states[-1] == ("available", "")


def test_bad_agent_requests_are_refused_with_reasons(pbx: Pbx) -> None:
    headers = pbx.admin_headers()
    unknown = httpx.post(f"{pbx.api}/agents/2001/login", headers=headers)
    assert unknown.status_code == 404 and "no agent" in unknown.json()["detail"]
    twice = httpx.post(f"{pbx.api}/agents/1011/login", headers=headers)
    assert twice.status_code == 409 and "logged in already" in twice.json()["detail"]
    not_paused = httpx.post(f"{pbx.api}/agents/1011/unpause", headers=headers)
    assert not_paused.status_code == 409 and "not paused" in not_paused.json()["detail"]
    assert httpx.get(f"{pbx.api}/queues/799", headers=headers).status_code == 404
    queue = httpx.get(f"{pbx.api}/queues/712", headers=headers).json()
    assert [(m["extension"], m["penalty"]) for m in queue["members"]] == \
        [("1014", 0), ("1015", 5)]
    services = httpx.get(f"{pbx.api}/services", headers=headers).json()
    assert {"kind": "queue", "number": "710", "name": ""} in services["items"]
    member = httpx.delete(f"{pbx.api}/extensions/1012", headers=headers)
    assert member.status_code == 409 and "queue 710 (member)" in member.json()["detail"]


def test_an_agent_may_pause_only_themself_and_it_is_audited(pbx: Pbx) -> None:
    headers = pbx.admin_headers()
    made = httpx.post(f"{pbx.api}/users", headers=headers, json={
        "username": "agent1019", "password": "agent-pass-12345", "role": "agent",
        "extension": "1019"})
    assert made.status_code == 201, made.text
    agent = pbx.login("agent1019", "agent-pass-12345")
    own = httpx.post(f"{pbx.api}/agents/1019/pause", headers=agent, json={"reason": "lunch"})
    assert own.status_code == 200 and own.json()["state"] == "paused"
    other = httpx.post(f"{pbx.api}/agents/1011/pause", headers=agent, json={"reason": "lunch"})
    assert other.status_code == 403 and "own extension" in other.json()["detail"]
    assert [a["extension"] for a in httpx.get(f"{pbx.api}/agents", headers=agent).json()] == \
        ["1019"]
    assert httpx.post(f"{pbx.api}/agents/1019/unpause", headers=agent).status_code == 200
    actions = [(e["actor"], e["action"], e["target"])
               for e in httpx.get(f"{pbx.api}/audit", headers=headers).json()]
    assert ("agent1019", "agent.pause", "1019") in actions


@contextmanager
def caller(pbx: Pbx, number: str, queue: str) -> Iterator[tuple[SipClient, RtpPhone, Any]]:
    """A scripted phone of ``number`` registered (it can be called back) and in
    a call to ``queue`` that the PBX answered."""
    with SipClient(pbx.host, pbx.sip_port) as phone, RtpPhone() as rtp:
        contact = [f"<sip:{number}@{phone.host_port()}>"]
        assert phone.register(number, USERS[number], contacts=contact).status == 200  # type: ignore[union-attr]
        _, ok = phone.invite(number, USERS[number], queue, body=phone.sdp(rtp.port, "0 101"))
        assert ok is not None and ok.status == 200, ok
        phone.in_dialog("ACK", ok, cseq=ok.cseq.number)
        rtp.answered(ok.body)
        try:
            yield phone, rtp, ok
        finally:
            phone.register(number, USERS[number], contacts=contact, expires=0)


def registered(pbx: Pbx, number: str) -> SipClient:
    phone = SipClient(pbx.host, pbx.sip_port)
    contact = [f"<sip:{number}@{phone.host_port()}>"]
    assert phone.register(number, USERS[number], contacts=contact).status == 200  # type: ignore[union-attr]
    return phone


def test_a_caller_hanging_up_during_the_ring_cancels_it(pbx: Pbx, feed: Feed) -> None:
    with registered(pbx, "1016") as agent, caller(pbx, "2001", "713") as (phone, _, ok):
        rang = agent.receive_request(5, "INVITE")
        assert rang is not None and rang.from_addr.uri.user == "2001"
        agent.respond(rang, 180)
        time.sleep(0.5)
        phone.in_dialog("BYE", ok)
        cancel = agent.receive_request(3, "CANCEL")
        assert cancel is not None
        agent.respond(cancel, 200)
        agent.respond(rang, 487)
    (abandoned,) = feed.wait("queue.abandoned", queue="713")
    assert abandoned["position"] == 1
    assert [e["state"] for e in feed.of("agent.state", agent="1016")] == ["ringing", "available"]


def test_overflow_after_max_wait(pbx: Pbx, feed: Feed) -> None:
    """Nobody answers in 714 (its agent has no phone): after 2 s the caller
    goes on to 1011, whose sipp phone answers."""
    with caller(pbx, "2002", "714") as (phone, _, ok):
        (overflow,) = feed.wait("queue.overflowed", queue="714", timeout=10)
        assert (overflow["reason"], overflow["destination"]) == ("maxwait", "1011")
        assert 2 <= overflow["wait"] < 4
        feed.wait("call.answered", answered_by="1011", call_id=overflow["call_id"])
        phone.in_dialog("BYE", ok)


def test_an_agent_in_two_queues_takes_one_call_at_a_time_after_wrap_up(pbx: Pbx,
                                                                        feed: Feed) -> None:
    """1015 serves 717 and 718: the caller waiting longest first, the other
    only when that call is over and the wrap-up (2 s) has passed."""
    with caller(pbx, "2007", "717") as (first, _, first_ok), \
            caller(pbx, "2008", "718") as (second, _, second_ok):
        (taken,) = feed.wait("queue.answered", queue="717")
        time.sleep(0.5)
        assert feed.of("queue.offered", queue="718") == []  # busy: one call at a time
        first.in_dialog("BYE", first_ok)
        (done,) = feed.wait("queue.completed", queue="717")
        (then,) = feed.wait("queue.answered", queue="718", timeout=10)
        second.in_dialog("BYE", second_ok)
    assert taken["agent"] == then["agent"] == "1015"
    assert then["at"] - done["at"] >= 2  # the wrap-up, by the PBX's own clock
    states = [e["state"] for e in feed.of("agent.state", agent="1015")]
    assert states[-4:] == ["wrap_up", "available", "ringing", "on_queue_call"]


def test_an_agent_is_available_again_after_a_directed_pickup(pbx: Pbx, feed: Feed) -> None:
    """Regression: after picking up a colleague's ringing call (``**1022``) and
    hanging up, the agent stayed ``on_direct_call`` and got no queue calls."""
    agent_number, colleague_number = PICKUP
    with registered(pbx, colleague_number) as colleague, registered(pbx, agent_number) as agent:
        rang: list[Any] = []

        def ring() -> None:  # the colleague's phone rings (180) and is not answered
            invite = colleague.receive_request(5, "INVITE")
            if invite is not None:
                rang.append(invite)
                colleague.respond(invite, 180)

        with SipClient(pbx.host, pbx.sip_port) as phone, RtpPhone() as rtp:
            ringing = threading.Thread(target=ring)
            ringing.start()
            first = phone.start_invite("2010", USERS["2010"], colleague_number,
                                       body=phone.sdp(rtp.port))
            ringing.join()
            assert rang and first is not None and first.status == 180, first
            _, ok = agent.invite(agent_number, USERS[agent_number], f"**{colleague_number}",
                                 body=agent.sdp(rtp.port + 2))
            assert ok is not None and ok.status == 200, ok
            agent.in_dialog("ACK", ok, cseq=ok.cseq.number)
            cancel = colleague.receive_request(3, "CANCEL")
            assert cancel is not None  # the colleague's phone stops ringing
            colleague.respond(cancel, 200)
            colleague.respond(rang[0], 487)
            feed.wait("agent.state", agent=agent_number, state="on_direct_call")
            agent.in_dialog("BYE", ok)
            assert phone.hung_up()
        api = f"{pbx.api}/agents/{agent_number}"
        deadline = time.monotonic() + 5
        while httpx.get(api, headers=pbx.admin_headers()).json()["state"] != "available":
            assert time.monotonic() < deadline, feed.of("agent.state", agent=agent_number)
            time.sleep(0.1)
        # and the queue offers the agent its next caller
        with caller(pbx, "2011", "716") as (caller_phone, _, caller_ok):
            offered = agent.receive_request(5, "INVITE")
            assert offered is not None and offered.from_addr.uri.user == "2011"
            agent.respond(offered, 486)
            caller_phone.in_dialog("BYE", caller_ok)


def answer_as(agent: SipClient, rtp: RtpPhone) -> tuple[Any, Any]:
    invite = agent.receive_request(10, "INVITE")
    assert invite is not None, "the agent's phone never rang"
    agent.respond(invite, 180)
    ok = agent.respond(invite, 200, body=agent.sdp(rtp.port, "0 101"))
    rtp.answered(invite.body)
    assert agent.receive_request(3, "ACK") is not None
    return invite, ok


def hears(listener: RtpPhone, talker: RtpPhone, frequency: float) -> bool:
    """``talker`` sends a tone while ``listener`` listens: did it come through?"""
    heard: list[np.ndarray] = []
    thread = threading.Thread(target=lambda: heard.append(listener.listen(1.5)))
    thread.start()
    talker.send_tone(frequency, 1.5)
    thread.join()
    audio = heard[0][2000:]
    return len(audio) > 4000 and level(audio, frequency) > 20 * max(level(audio, 300), 1e-3)


def test_callback_in_the_exact_turn_with_audio_both_ways(pbx: Pbx, feed: Feed) -> None:
    """A, B and C wait (the agent is paused); B presses 1 and hangs up.  The
    agent takes A, then B is called back (answering, B waits for the agent,
    who is held for B), then C: B never loses their place."""
    agent_action(pbx, "1017", "pause", reason="admin")
    with ExitStack() as calls, registered(pbx, "1017") as agent, RtpPhone() as agent_rtp:
        a_phone, _, a_ok = calls.enter_context(caller(pbx, "2003", "715"))
        b_phone, b_rtp, _ = calls.enter_context(caller(pbx, "2004", "715"))
        time.sleep(0.5)
        b_rtp.keys("1")
        bye = b_phone.receive_request(10, "BYE")  # "we will call you back", then goodbye
        assert bye is not None
        b_phone.respond(bye, 200)
        c_phone, _, c_ok = calls.enter_context(caller(pbx, "2005", "715"))
        queue = httpx.get(f"{pbx.api}/queues/715", headers=pbx.admin_headers()).json()
        assert [(c["number"], c["callback"]) for c in queue["callers"]] == \
            [("2003", False), ("2004", True), ("2005", False)]

        agent_action(pbx, "1017", "unpause")
        answer_as(agent, agent_rtp)  # A
        a_phone.in_dialog("BYE", a_ok)
        assert agent.hung_up()
        with RtpPhone() as back_rtp:
            invite = b_phone.receive_request(10, "INVITE")  # B's callback, before C's turn
            assert invite is not None and invite.from_addr.uri.user == "715"
            b_ok = b_phone.respond(invite, 200, body=b_phone.sdp(back_rtp.port, "0 101"))
            back_rtp.answered(invite.body)
            answer_as(agent, agent_rtp)  # the agent held for B rings now
            assert hears(agent_rtp, back_rtp, 600)  # B → agent
            assert hears(back_rtp, agent_rtp, 1000)  # agent → B
            b_phone.in_dialog("BYE", uas_dialog(invite, b_ok))
            assert agent.hung_up()
        answer_as(agent, agent_rtp)  # C
        c_phone.in_dialog("BYE", c_ok)
        assert agent.hung_up()
    answered = feed.wait("queue.answered", 3, queue="715")
    joined = {e["caller"]: e["call_id"] for e in feed.of("queue.joined", queue="715")}
    assert [e["call_id"] for e in answered] == [joined["2003"], joined["2004"], joined["2005"]]
    states = [e["state"] for e in feed.of("queue.callback", queue="715")]
    assert states == ["requested", "dialled", "connected"]


def test_after_the_agent_hangs_up_the_caller_rates_the_call(pbx: Pbx, feed: Feed) -> None:
    with registered(pbx, "1018") as agent, RtpPhone() as agent_rtp, \
            caller(pbx, "2009", "719") as (phone, rtp, _):
        invite, ok = answer_as(agent, agent_rtp)
        (answered,) = feed.wait("queue.answered", queue="719")
        agent.in_dialog("BYE", uas_dialog(invite, ok))
        (done,) = feed.wait("queue.completed", queue="719")
        assert done["hangup_by"] == "agent"
        time.sleep(1.0)  # "please rate this call …"
        rtp.keys("4")
        (rating,) = feed.wait("queue.survey", queue="719")
        assert (rating["score"], rating["agent"], rating["call_id"]) == \
            (4, "1018", answered["call_id"])
        bye = phone.receive_request(10, "BYE")  # thanks, goodbye
        assert bye is not None
        phone.respond(bye, 200)


def test_a_pending_callback_survives_a_restart(tmp_path: Path) -> None:
    """The caller asks for a callback while the only agent is paused; the PBX
    restarts; the agent (still paused: that is kept too) unpauses, and the
    PBX calls the caller back and connects them."""
    users = {"1018": USERS["1018"], "2006": USERS["2006"]}
    sections = "[716]\ntype = queue\nmembers = 1018\ncallback = yes\n"
    with running_pbx(tmp_path, users, sections=sections) as pbx:
        agent_action(pbx, "1018", "pause", reason="training")
        with caller(pbx, "2006", "716") as (phone, rtp, _):
            time.sleep(0.5)
            rtp.keys("1")
            bye = phone.receive_request(10, "BYE")
            assert bye is not None
            phone.respond(bye, 200)
            time.sleep(0.5)  # the request is stored in the background
            pbx.stop()
            pbx.start()
            contact = [f"<sip:2006@{phone.host_port()}>"]
            assert phone.register("2006", USERS["2006"], contacts=contact).status == 200  # type: ignore[union-attr]
            queue = httpx.get(f"{pbx.api}/queues/716", headers=pbx.admin_headers()).json()
            assert [(c["number"], c["callback"]) for c in queue["callers"]] == [("2006", True)]
            token = pbx.admin_headers()["Authorization"][7:]
            with sipp_callee(tmp_path, pbx, "1018", USERS["1018"]), \
                    connect(f"ws://{pbx.host}:{pbx.http_port}/api/events?token={token}") as ws:
                feed = Feed(ws)
                agent_action(pbx, "1018", "unpause")  # 409 had the pause been forgotten
                invite = phone.receive_request(10, "INVITE")
                assert invite is not None and invite.from_addr.uri.user == "716"
                phone.respond(invite, 200, body=phone.sdp(rtp.port, "0 101"))
                (connected,) = feed.wait("queue.callback", state="connected")
                assert (connected["agent"], connected["number"]) == ("1018", "2006")
