"""A carrier for SIP trunk tests: Kamailio as the operator's SBC, sipp behind
it as phones on the public network (PSTN).

:func:`kamailio_carrier` starts Kamailio 5.6 (Debian ``kamailio``) in the
foreground with a ``kamailio.cfg`` generated from ``carrier.cfg.in`` into a
``carrier-*`` directory of its own under ``tmp`` (two carriers for failover
live side by side), on two free loopback ports, each UDP and TCP:

- the **trunk side** (``carrier.host``/``carrier.port``, or ``carrier.trunk``)
  faces the PBX.  It is a registrar with digest auth (RFC 3261 §22, MD5,
  qop=auth) for one trunk account (``username``/``password``, realm
  ``realm``), its contacts kept in memory only (usrloc ``db_mode`` 0): after
  :meth:`Carrier.restart` the registration is gone, as when an operator's SBC
  reboots, and the PBX must register again; :meth:`Carrier.fail_registrations`
  refuses REGISTERs (503, or never answered) for back-off tests.  An INVITE
  from the PBX is authenticated as ``outbound_auth`` says — ``"challenge"``:
  407 with Proxy-Authenticate for the trunk account, as a registration trunk is;
  ``"ip"``: accepted without a challenge from the ``trusted`` sources
  (``"127.0.0.1"`` or ``"127.0.0.1:5080"``) and 403 from any other, as an
  IP-authenticated trunk is; ``"none"``: not checked — then answered with the
  failure set by :meth:`Carrier.fail_outbound` (503 for failover tests, or
  :data:`NEVER_ANSWER`), or 484 if the number is not digits, or forwarded,
  record-routed, to the PSTN phone set by :meth:`Carrier.route_outbound_to`
  with the number kept in the Request-URI.
- the **network side** (``carrier.pstn``) faces PSTN phones.  An INVITE to one
  of the trunk's DIDs (``dids``, E.164; the caller may dial it with or
  without ``+``) goes, record-routed, to the trunk's registered contact
  (``lookup("location")``, 480 when the trunk is not registered) or, once
  :meth:`Carrier.route_inbound_to` names the PBX's address (an IP trunk does
  not register), there.  The DID is delivered in the Request-URI or in To
  (``did_from``, as the PBX's trunk key: carriers differ), written as
  ``number_format`` says (the trunk key's values): ``"e164"`` ``+4681234567``,
  ``"e164-noplus"`` ``4681234567`` or ``"national"`` ``081234567``
  (``country_code``, a calling code, says which numbers are national).  Any
  other number gets 404.  With ``assert_identity`` the carrier adds a
  P-Asserted-Identity (RFC 3325) with the caller's From user.

The carrier listens on 127.0.0.2 (``host``): the PBX knows a carrier's
requests by their source address, which must not be the phones' 127.0.0.1.
The two sides have two ports of that one address: the port a request
arrives on tells the access interface from the core one, as on an SBC.  A call crossing sides carries two Record-Routes.
Kamailio does not touch media: RTP flows between the PBX and the phones.
What changes while a test runs (PSTN phone, PBX address, failures) lives in
a Kamailio htable, set over its JSON-RPC datagram socket and written into
the config too, so that it survives a restart.  Kamailio logs (its own lines
and one per routing decision) to ``kamailio.log`` beside its config:
:meth:`Carrier.log` is for assertion messages.  Its whole process group is
stopped when the block ends.

The phones: :func:`pstn_phone` is a sipp UAS (``pstn_phone.xml``) that
answers with SDP, copies Record-Route, echoes RTP (``-rtp_echo``) and keeps
every INVITE it got (``-trace_msg``) for the test to read the Caller ID;
:func:`customer_call` is a sipp UAC that calls a DID through the network
side without credentials, as a customer on the PSTN does, plays audio
(``g711a.pcap``) and keys RFC 4733 digits (``dtmf_2833_*.pcap``).

    with kamailio_carrier(tmp, password="trunk-secret") as carrier, \\
            pstn_phone(tmp) as phone:
        carrier.route_outbound_to(phone.host, phone.port)
        ...  # the PBX's trunk registers to carrier.host:carrier.port
        carrier.wait_for_registration()
        assert customer_call(tmp, carrier, "+4681234567", digits="2").returncode == 0
        ...  # an extension dials +46701234567 out through the trunk
        assert phone.invites()[0].from_addr.uri.user == "+4687654321"
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from string import Template
from typing import Any, Literal

from pbx.sip.message import Request
from pbx.sip.parser import parse_message
from tests.integration.peers import SCENARIOS, SippResult, free_ports, run_sipp, sipp_count

CONFIG_TEMPLATE = Path(__file__).parent / "carrier.cfg.in"
SIPP_MEDIA = Path("/usr/share/sip-tester")
DidFrom = Literal["ruri", "to"]
NumberFormat = Literal["e164", "e164-noplus", "national"]
OutboundAuth = Literal["challenge", "ip", "none"]
NEVER_ANSWER = 0  # fail_outbound(NEVER_ANSWER): the carrier drops the PBX's INVITEs


class _Config(Template):
    """``%name`` placeholders: ``$`` is Kamailio's own."""

    delimiter = "%"


@dataclass(frozen=True)
class SipSide:
    """One of the carrier's interfaces (UDP and TCP on one port), as sipp's target."""

    host: str
    sip_port: int
    tls_port: int | None = None  # the carrier offers no TLS


@dataclass(frozen=True)
class Contact:
    """A registered contact of the trunk account, as Kamailio's location table holds it."""

    uri: str
    expires: int  # seconds left
    socket: str  # where the REGISTER came in, e.g. "udp:127.0.0.1:40312"
    user_agent: str
    call_id: str
    modified: int  # Unix time of the REGISTER that last refreshed it


@dataclass
class Carrier:
    """A running carrier stand-in; see the module's docstring."""

    directory: Path
    runtime: Path  # Kamailio's run directory, short: it holds a UNIX socket
    trunk: SipSide
    pstn: SipSide
    username: str
    password: str
    realm: str
    dids: tuple[str, ...]
    did_from: DidFrom
    number_format: NumberFormat
    country_code: str
    outbound_auth: OutboundAuth
    trusted: tuple[str, ...]
    assert_identity: bool
    max_expires: int
    pstn_target: str | None = None
    pbx_target: str | None = None
    failures: dict[str, tuple[int, str]] = field(default_factory=dict)  # by method
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0
    log_path: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log_path = self.directory / "kamailio.log"

    @property
    def host(self) -> str:
        return self.trunk.host

    @property
    def port(self) -> int:
        """The trunk side's port: where the PBX registers and sends its calls."""
        return self.trunk.sip_port

    @property
    def pstn_port(self) -> int:
        return self.pstn.sip_port

    @property
    def rpc_socket(self) -> Path:
        return self.runtime / "rpc.sock"

    def delivered(self, number: str) -> str:
        """``number`` (E.164) as this carrier writes it towards the PBX."""
        digits = number.removeprefix("+")
        if self.number_format == "e164":
            return f"+{digits}"
        if self.number_format == "national" and digits.startswith(self.country_code):
            return "0" + digits[len(self.country_code):]
        return digits

    def start(self) -> None:
        """Write the config with the current settings and run Kamailio until it answers."""
        config = self.directory / "kamailio.cfg"
        config.write_text(self.config())
        self.starts += 1
        with open(self.log_path, "ab") as log:
            log.write(f"--- start {self.starts}\n".encode())
        self.process = start_kamailio(config, self.log_path, self.runtime,
                                      (self.trunk.host, self.trunk.sip_port))

    def stop(self) -> None:
        if self.process is not None:
            stop_group(self.process)

    def restart(self) -> None:
        """Stop and start again: registrations are forgotten, settings kept."""
        self.stop()
        self.start()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def route_outbound_to(self, host: str, port: int) -> None:
        """Send the PBX's calls to the PSTN phone at ``host:port``."""
        self.pstn_target = f"{host}:{port}"
        self._rpc("htable.sets", "routing", "pstn", self.pstn_target)

    def route_inbound_to(self, host: str | None, port: int = 5060) -> None:
        """Send calls to the DIDs to ``host:port`` (an IP-authenticated trunk's
        PBX); ``None``: to the trunk's registered contact again."""
        self.pbx_target = f"{host}:{port}" if host is not None else None
        if self.pbx_target is None:
            self._rpc("htable.delete", "routing", "pbx")
        else:
            self._rpc("htable.sets", "routing", "pbx", self.pbx_target)

    def fail_outbound(self, status: int | None, reason: str = "Service Unavailable") -> None:
        """Answer every INVITE from the PBX with ``status`` (after authenticating
        it); :data:`NEVER_ANSWER` drops them; ``None`` forwards them again."""
        self._fail("INVITE", status, reason)

    def fail_registrations(self, status: int | None,
                           reason: str = "Service Unavailable") -> None:
        """Answer every REGISTER with ``status`` before any challenge (an SBC
        shedding load); :data:`NEVER_ANSWER` drops them; ``None`` registers again."""
        self._fail("REGISTER", status, reason)

    def _fail(self, method: str, status: int | None, reason: str) -> None:
        if status is None:
            self.failures.pop(method, None)
            self._rpc("htable.delete", "routing", f"fail:{method}")
            self._rpc("htable.delete", "routing", f"reason:{method}")
        else:
            self.failures[method] = (status, reason)
            self._rpc("htable.sets", "routing", f"reason:{method}", reason)
            self._rpc("htable.seti", "routing", f"fail:{method}", status)

    def contacts(self) -> list[Contact]:
        """The trunk account's registered contacts now (none: not registered)."""
        reply = self._rpc("ul.lookup", "location", self.username, check=False)
        if "error" in reply:
            return []
        contacts = []
        for entry in reply["result"].get("Contacts", []):
            contact = entry["Contact"]
            expires = contact["Expires"]
            if not isinstance(expires, int) or expires <= 0:
                continue  # "permanent" is not a registration; 0 or less has expired
            contacts.append(Contact(contact["Address"], expires, contact["Socket"],
                                    contact["User-Agent"], contact["Call-ID"],
                                    contact["Last-Modified"]))
        return contacts

    def wait_for_registration(self, timeout: float = 15.0,
                              since: float | None = None) -> list[Contact]:
        """The contacts once the trunk account has one (registered or refreshed
        at ``since``, Unix time, or later: a refresh keeps its contact)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            contacts = self.contacts()
            if any(since is None or contact.modified >= int(since) for contact in contacts):
                return contacts
            time.sleep(0.1)
        raise AssertionError(f"the trunk did not register within {timeout:.0f} s:\n"
                             f"{self.log()[-3000:]}")

    def config(self) -> str:
        """kamailio.cfg for the current settings."""
        init = [f'\t$sht(accounts=>{self.username}) = "{self.password}";']
        for did in self.dids:
            init.append(f'\t$sht(dids=>{did.removeprefix("+")}) = "{self.delivered(did)}";')
        if self.pstn_target:
            init.append(f'\t$sht(routing=>pstn) = "{self.pstn_target}";')
        if self.pbx_target:
            init.append(f'\t$sht(routing=>pbx) = "{self.pbx_target}";')
        for method, (status, reason) in self.failures.items():
            init.append(f'\t$sht(routing=>reason:{method}) = "{reason}";')
            init.append(f"\t$sht(routing=>fail:{method}) = {status};")
        defines = [{"challenge": "OUTBOUND_AUTH_CHALLENGE", "ip": "OUTBOUND_AUTH_IP",
                    "none": ""}[self.outbound_auth],
                   "DID_IN_TO" if self.did_from == "to" else "",
                   "ASSERT_IDENTITY" if self.assert_identity else ""]
        trusted = []
        for source in self.trusted:
            address, _, port = source.partition(":")
            trusted.append(f'($si == "{address}" && $sp == {port})' if port
                           else f'$si == "{address}"')
        return _Config(CONFIG_TEMPLATE.read_text()).substitute(
            defines="\n".join(f"#!define {name}" for name in defines if name),
            host=self.trunk.host, trunk_port=self.trunk.sip_port, pstn_port=self.pstn.sip_port,
            rpc_socket=self.rpc_socket, realm=self.realm, username=self.username,
            min_expires=min(10, self.max_expires), max_expires=self.max_expires,
            htable_init="\n".join(init), trusted=" || ".join(trusted) or "0",
        )

    def _rpc(self, method: str, *params: object, check: bool = True) -> dict[str, Any]:
        return kamailio_rpc(self.rpc_socket, method, *params, check=check)


def kamailio_rpc(server: Path, method: str, *params: object,
                 check: bool = True) -> dict[str, Any]:
    """One JSON-RPC call over Kamailio's datagram socket ``server`` (module jsonrpcs)."""
    client = server.parent / f"client-{random.randrange(1 << 30)}.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(client))
        try:
            sock.settimeout(5)
            request = {"jsonrpc": "2.0", "method": method, "params": list(params), "id": 1}
            sock.sendto(json.dumps(request).encode(), str(server))
            reply: dict[str, Any] = json.loads(sock.recv(65535))
        finally:
            client.unlink()
    if check and "error" in reply:
        raise RuntimeError(f"kamailio {method}{params}: {reply['error']}")
    return reply


@contextmanager
def kamailio_carrier(
    tmp: Path, *, username: str = "pbx-trunk", password: str = "trunk-secret",
    realm: str = "carrier.test", dids: Sequence[str] = ("+4681234567",),
    did_from: DidFrom = "ruri", number_format: NumberFormat = "e164", country_code: str = "46",
    outbound_auth: OutboundAuth = "challenge", trusted: Sequence[str] = ("127.0.0.1",),
    assert_identity: bool = False, max_expires: int = 3600, host: str = "127.0.0.2",
) -> Iterator[Carrier]:
    """Kamailio as a carrier (see the module's docstring), stopped when the block ends.

    ``host`` is 127.0.0.2, not the PBX's and phones' 127.0.0.1: the PBX knows a
    carrier by its address, so the carrier must not share it with the phones."""
    if shutil.which("kamailio") is None:
        raise RuntimeError("kamailio is not installed (apt-get install -y kamailio)")
    directory = Path(tempfile.mkdtemp(prefix="carrier-", dir=tmp))  # two carriers, two directories
    with tempfile.TemporaryDirectory(prefix="kam-") as runtime:
        for attempt in range(3):
            # a port found free can be taken before Kamailio binds it: pick again then
            carrier = Carrier(
                directory, Path(runtime), SipSide(host, free_ports(1, host)),
                SipSide(host, free_ports(1, host)), username, password, realm, tuple(dids),
                did_from, number_format, country_code, outbound_auth, tuple(trusted),
                assert_identity, max_expires)
            try:
                carrier.start()
                break
            except RuntimeError as exc:
                if "Address already in use" not in str(exc) or attempt == 2:
                    raise
        try:
            yield carrier
        finally:
            carrier.stop()


def start_kamailio(config: Path, log_path: Path, runtime: Path, probe: tuple[str, int], *,
                   options: Sequence[str] = ("-m", "64", "-M", "8"),
                   prefix: Sequence[str] = ()) -> subprocess.Popen[bytes]:
    """Kamailio in the foreground (``-DD``) in a session of its own, logging to
    ``log_path``, its run files in ``runtime``; returns once ``probe`` (host,
    UDP port) answers an OPTIONS.  ``options`` go to kamailio (memory ``-m``
    and ``-M`` in MB, workers ``-n``), ``prefix`` before it (``taskset -c 0``)."""
    command = [*prefix, "kamailio", "-f", str(config), "-DD", "-E", "-Y", str(runtime), *options]
    with open(log_path, "ab") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    try:
        _wait_for_sip(*probe, process, log_path)
    except BaseException:
        stop_group(process)
        raise
    return process


def stop_group(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the main process (it stops its workers), SIGKILL its group if it lingers."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)  # its own session: only its processes
        process.wait()


def _wait_for_sip(host: str, port: int, process: subprocess.Popen[bytes], log: Path,
                  timeout: float = 20.0) -> None:
    """Return once an OPTIONS to ``host:port`` gets any answer (workers are up)."""
    deadline = time.monotonic() + timeout
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((host, 0))
        sock.settimeout(0.2)
        probe = (f"OPTIONS sip:{host}:{port} SIP/2.0\r\n"
                 f"Via: SIP/2.0/UDP {host}:{sock.getsockname()[1]};branch=z9hG4bK-probe\r\n"
                 f"From: <sip:probe@{host}>;tag=1\r\nTo: <sip:{host}>\r\n"
                 f"Call-ID: probe\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n"
                 f"Content-Length: 0\r\n\r\n").encode()
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"kamailio exited early:\n{log.read_text(errors='replace')}")
            sock.sendto(probe, (host, port))
            try:
                sock.recv(4096)
                return
            except TimeoutError:
                continue
    raise RuntimeError(f"kamailio did not answer:\n{log.read_text(errors='replace')}")


@dataclass
class PstnPhone:
    """A sipp UAS on the PSTN (``pstn_phone.xml``); see :func:`pstn_phone`."""

    host: str
    port: int
    process: subprocess.Popen[bytes]
    messages: Path
    screen: Path
    result: SippResult | None = None

    def invites(self) -> list[Request]:
        """Every INVITE it received so far, parsed (From, P-Asserted-Identity, Record-Route…)."""
        text = self.messages.read_text(errors="replace") if self.messages.exists() else ""
        invites = []
        for block in text.split("message received")[1:]:
            message = block.split(":\n", 1)[1].split("\n" + "-" * 20, 1)[0].strip()
            if message.startswith("INVITE "):
                request = parse_message(message.replace("\n", "\r\n").encode() + b"\r\n",
                                        check=False)
                assert isinstance(request, Request)
                invites.append(request)
        return invites

    def stop(self, timeout: float = 15.0) -> SippResult:
        """Stop taking calls and return its counts; ``echoed`` tells the RTP
        packets it echoed.  SIGUSR2 makes sipp write its screen with the RTP
        counts (its final screen lacks them), SIGUSR1 ends it once its calls have."""
        if self.result is None:
            if self.process.poll() is None:
                self.process.send_signal(signal.SIGUSR2)
                time.sleep(0.2)
                self.process.send_signal(signal.SIGUSR1)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            text = self.screen.read_text(errors="replace") if self.screen.exists() else ""
            self.result = SippResult(self.process.returncode, sipp_count(text, "Successful call"),
                                     sipp_count(text, "Failed call"), text)
        return self.result

    @property
    def echoed(self) -> int:
        """RTP packets it echoed while it ran (read once it stopped: :meth:`stop`)."""
        text = self.stop().output
        for line in text.splitlines():
            if "Total echo RTP pckts 1st stream" in line:
                return int(line.split()[0])
        return 0


@contextmanager
def pstn_phone(tmp: Path, *, echo: bool = True, host: str = "127.0.0.1") -> Iterator[PstnPhone]:
    """A phone on the PSTN: a sipp UAS that answers every call with SDP (PCMA and
    telephone-event), copies Record-Route, echoes RTP with ``echo`` and keeps
    every message (``invites()``); it waits for the caller's BYE."""
    port, media = free_ports(1, host), free_ports(4, host)
    name = f"pstn-{port}"
    phone = PstnPhone(host, port, subprocess.Popen(
        ["sipp", "-sf", str(SCENARIOS / "pstn_phone.xml"), "-i", host, "-p", str(port),
         "-mi", host, "-mp", str(media), *(["-rtp_echo"] if echo else []), "-nostdin",
         "-trace_msg", "-message_file", str(tmp / f"{name}.messages"),
         "-trace_screen", "-screen_file", str(tmp / f"{name}.screen")],
        cwd=tmp, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    ), tmp / f"{name}.messages", tmp / f"{name}.screen")
    try:
        yield phone
    finally:
        phone.stop()


def customer_scenario(tmp: Path, *, audio: bool = True, digits: str = "",
                      digits_after_ms: int = 2000, hold_ms: int = 3000) -> Path:
    """``pstn_customer.xml.in`` with its media: after the answer, ``g711a.pcap``
    (7 s of PCMA) with ``audio``; ``digits`` as RFC 4733 events, the first
    ``digits_after_ms`` after the answer, one a second (a digit stops the
    audio still playing: sipp plays one pcap at a time); the caller hangs up
    ``hold_ms`` after the last of them."""
    steps = []
    if audio:
        steps.append(_play(SIPP_MEDIA / "g711a.pcap"))
    for index, digit in enumerate(digits):
        steps.append(f'<pause milliseconds="{digits_after_ms if index == 0 else 1000}"/>')
        name = {"*": "star", "#": "pound"}.get(digit, digit)
        steps.append(_play(SIPP_MEDIA / f"dtmf_2833_{name}.pcap"))
    steps.append(f'<pause milliseconds="{hold_ms}"/>')
    path = tmp / f"pstn_customer-{random.randrange(1 << 30)}.xml"
    path.write_text((SCENARIOS / "pstn_customer.xml.in").read_text()
                    .replace("<!-- MEDIA -->", "\n  ".join(steps)))
    return path


def customer_call(tmp: Path, carrier: Carrier, did: str, *, caller: str = "+46701234567",
                  audio: bool = True, digits: str = "", digits_after_ms: int = 2000,
                  hold_ms: int = 3000, transport: str = "u1",
                  timeout: float = 30.0) -> SippResult:
    """A customer on the PSTN calls ``did`` (as dialled: ``+4681234567``) from
    ``caller`` through the carrier's network side, without credentials, and
    hangs up; the media as :func:`customer_scenario` says.  Returns when the
    call has ended: exit code 0 if it was answered and hung up cleanly."""
    scenario = customer_scenario(tmp, audio=audio, digits=digits,
                                 digits_after_ms=digits_after_ms, hold_ms=hold_ms)
    return run_sipp(str(scenario), carrier.pstn, [(caller, "", did)], transport=transport,
                    timeout=timeout, tmp=tmp, extra=["-mp", str(free_ports(4))])


def _play(pcap: Path) -> str:
    return f'<nop><action><exec play_pcap_audio="{pcap}"/></action></nop>'
