"""The provisioning server: ``GET /provision/{token}/{file name}``.

A phone's auto-provisioning URL is its device's folder
``/provision/<token>/``; the phone appends the file name its vendor uses, with
its own MAC in it.  A file is served only when the MAC names a device and
the token is that device's (compared in constant time, stored as SHA-256),
so a leaked URL yields nothing for any other phone, and a guessed MAC
nothing without the token.  Every fetch, served or refused, is logged with
source address, MAC and user agent; refusals are a plain 404.
"""

import hmac
import logging
from urllib.parse import quote

from fastapi import APIRouter, Request, Response
from sqlmodel import Session, col, select

from admin_api.deps import Db, Sip
from admin_api.security import token_hash
from pbx.config import WILDCARDS
from pbx.models import Device, Extension, Organisation
from pbx.server import SipServer as SipNode
from provisioning import BLF_KEYS, content_type, dect_accounts, generator
from provisioning.settings import Account, BlfKey, PhoneSettings, SipServer, mac_in_filename
from provisioning.timezone import UTC, ZoneRule, zone_rule

log = logging.getLogger("provisioning")
router = APIRouter(tags=["provisioning"])
NO_TOKEN = token_hash("")  # compared against when no device matches: same work either way


def provisioning_folder(request: Request, sip: SipNode, token: str) -> str:
    """The URL a phone is pointed at: HTTPS when it listens (the file holds SIP
    secrets), else this server as the admin reached it; the configured
    external address or the host the admin used; ``/provision/<token>/``."""
    general = sip.config.general
    host = general.external_address or request.url.hostname or "localhost"
    host = f"[{host}]" if ":" in host else host
    if general.https_port:
        return f"https://{host}:{general.https_port}/provision/{quote(token)}/"
    port = f":{request.url.port}" if request.url.port else ""
    return f"{request.url.scheme}://{host}{port}/provision/{quote(token)}/"


def sip_server(sip: SipNode, domain: str, http_host: str) -> SipServer:
    """Where phones send SIP: the external address, else the bound address
    (else the address the phone fetched its file from), on the first
    configured transport that listens."""
    general = sip.config.general
    host = general.external_address or (general.bind if general.bind not in WILDCARDS
                                        else http_host)
    transport = next((t for t in general.transports if t.upper() in sip.transports), "udp")
    listening = sip.transports.get(transport.upper())
    port = listening.local_port if listening is not None else general.udp_port
    return SipServer(domain=domain or host, host=host, port=port, transport=transport)


@router.get("/provision/{token}/{filename}", response_class=Response,
            responses={200: {"description": "the configuration file",
                             "content": {"text/plain": {}, "application/xml": {}}},
                       404: {"description": "no such file for this token and MAC"}})
def provision(token: str, filename: str, request: Request, db: Db, sip: Sip) -> Response:
    source = request.client.host if request.client else "?"
    agent = request.headers.get("user-agent", "")
    mac = mac_in_filename(filename)
    device = db.exec(select(Device).where(Device.mac == mac)).first() if mac else None
    matches = hmac.compare_digest(device.provisioning_token if device else NO_TOKEN,
                                  token_hash(token))
    if device is None:
        body, reason = None, "unknown MAC" if mac else "no MAC in the file name"
    elif not matches:
        body, reason = None, "the token is not this MAC's"
    else:
        body, reason = _file(db, sip, device, filename, request)
    if device is None or body is None:
        log.warning("provisioning refused %r: %s (MAC %s, from %s, user agent %r)",
                    filename, reason, mac, source, agent)
        return Response(status_code=404, content="not found\n", media_type="text/plain")
    log.info("provisioning served %r to device %s (MAC %s, from %s, user agent %r)",
             filename, device.id, mac, source, agent)
    return Response(content=body, media_type=content_type(body),
                    headers={"Cache-Control": "no-store"})


def _file(db: Session, sip: SipNode, device: Device, filename: str,
          request: Request) -> tuple[bytes | None, str]:
    """The requested file of ``device``'s configuration, or the reason there is none."""
    make = generator(device.vendor, device.kind)
    if make is None:
        return None, f"a {device.kind} device of vendor {device.vendor or 'unknown'} has no files"
    settings = phone_settings(db, sip, device, request)
    if settings is None:
        return None, f"extension {device.extension} is gone"
    wanted = filename.lower()
    for name, body in make(settings).items():
        if name.lower() == wanted:
            return body, ""
    return None, "the device's vendor has no such file"


def phone_settings(db: Session, sip: SipNode, device: Device,
                   request: Request) -> PhoneSettings | None:
    """Everything ``device``'s files say, read from the store and the SIP node."""
    assert device.mac is not None
    org = db.get(Organisation, device.organisation_id)
    own = _extension(db, device.organisation_id, device.extension)
    if org is None or own is None:
        return None
    accounts = [_account(own, device)]
    blf: list[BlfKey] = []
    if device.kind == "dect":
        handsets = db.exec(select(Device).where(
            Device.base_id == device.id, Device.organisation_id == device.organisation_id,
        ).order_by(col(Device.id)).limit(dect_accounts(device.model) - 1)).all()
        for handset in handsets:
            ext = _extension(db, handset.organisation_id, handset.extension)
            if ext is not None:
                accounts.append(_account(ext, handset))
    else:
        colleagues = db.exec(select(Extension).where(
            Extension.organisation_id == device.organisation_id,
            Extension.number != device.extension,
        ).order_by(col(Extension.number)).limit(BLF_KEYS)).all()
        blf = [BlfKey(e.number, e.display_name or e.number) for e in colleagues]
    folder = str(request.url).rsplit("/", 1)[0] + "/"
    tenant = sip.directory.tenants.get(org.id or 0)  # the domain the SIP side serves for it
    domain = tenant.domain if tenant is not None else org.domain
    return PhoneSettings(
        mac=device.mac, model=device.model, accounts=tuple(accounts),
        server=sip_server(sip, domain, request.url.hostname or ""),
        timezone=_zone(org), base_url=folder, language=sip.directory.locale(org)[0],
        blf=tuple(blf), voicemail=sip.config.general.voicemail_number,
        firmware_url=device.firmware_url,
    )


def _extension(db: Session, organisation_id: int, number: str) -> Extension | None:
    return db.exec(select(Extension).where(Extension.organisation_id == organisation_id,
                                           Extension.number == number)).first()


def _account(ext: Extension, device: Device) -> Account:
    return Account(extension=ext.number, display_name=ext.display_name,
                   auth_name=device.sip_username, secret=device.secret, label=device.label)


def _zone(org: Organisation) -> ZoneRule:
    try:
        return zone_rule(org.timezone)
    except ValueError as exc:
        log.warning("organisation %s: %s; phones get UTC", org.slug, exc)
        return UTC
