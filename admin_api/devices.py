"""Devices: the desk phones, DECT handsets and softphones of each extension.

Every device has its own SIP login (``sip_username`` + secret, generated) and
registers into its extension's AOR, so a lost phone is cut off alone.  A desk
phone or DECT base with a vendor and a MAC gets a provisioning link; the
secret and the link are shown once, when made, never listed, never audited.
"""

import secrets
import time
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query, Request, Response
from pydantic import AfterValidator, BaseModel, Field
from sqlalchemy import ColumnElement
from sqlmodel import Session, col, func, select

from admin_api.deps import (
    ERRORS, NOT_FOUND, NUMBER, Db, Limit, Offset, Page, Sip, User, audit, fields_of,
    own_extension, require,
)
from admin_api.provision import provisioning_folder
from admin_api.security import new_sip_secret, token_hash
from pbx.models import ApiUser, Device, Extension
from provisioning import entry_file, generator
from provisioning.settings import normalise_mac

router = APIRouter(prefix="/api", tags=["devices"])

Kind = Literal["desk", "dect", "softphone"]
Vendor = Literal["", "yealink", "snom", "grandstream", "polycom"]
MODEL = r"^[0-9A-Za-z_.+ -]{0,40}$"
FIRMWARE = r"^(https?://\S{1,1990})?$"
READ_ALL = ("admin", "supervisor")  # other roles see their own extension's devices


def _mac(value: str | None) -> str | None:
    return normalise_mac(value) if value else None


Mac = Annotated[str | None, Field(max_length=40, description="00:15:65:AA:BB:CC, 0015-65aa-bbcc, …"),
                AfterValidator(_mac)]
DECT_BASE = "a DECT handset's base: the id of a Yealink DECT device with a MAC"


class DeviceIn(BaseModel):
    extension: str = Field(pattern=NUMBER)
    kind: Kind = "desk"
    vendor: Vendor = ""
    model: str = Field(default="", pattern=MODEL)
    mac: Mac = None
    label: str = Field(default="", max_length=200)
    base_id: int | None = Field(default=None, ge=1, le=2**31, description=DECT_BASE)
    firmware_url: str = Field(default="", pattern=FIRMWARE)


class DevicePatch(BaseModel):
    extension: str | None = Field(default=None, pattern=NUMBER)
    kind: Kind | None = None
    vendor: Vendor | None = None
    model: str | None = Field(default=None, pattern=MODEL)
    mac: Mac = None
    label: str | None = Field(default=None, max_length=200)
    base_id: int | None = Field(default=None, ge=1, le=2**31, description=DECT_BASE)
    firmware_url: str | None = Field(default=None, pattern=FIRMWARE)


class DeviceOut(BaseModel):
    id: int
    extension: str
    kind: str
    vendor: str
    model: str
    mac: str | None
    label: str
    base_id: int | None
    firmware_url: str
    created_at: float


class DeviceSecret(BaseModel):
    id: int
    sip_username: str = Field(description="the device's authentication name")
    secret: str = Field(description="the device's SIP password; shown this once only")


class DeviceCreated(DeviceOut, DeviceSecret):
    provisioning_url: str | None = Field(
        description="the phone's auto-provisioning server URL (secret; shown this once only)")
    provisioning_file: str | None = Field(description="the file the phone asks for first")


class DevicePage(Page):
    items: list[DeviceOut]


def shown(device: Device) -> DeviceOut:
    return DeviceOut(**fields_of(DeviceOut, device))


def _scope(user: ApiUser) -> list[ColumnElement[bool] | bool]:
    """The rows the caller may read: the organisation's, or only their extension's."""
    where: list[ColumnElement[bool] | bool] = [Device.organisation_id == user.organisation_id]
    if user.role not in READ_ALL:
        where.append(Device.extension == user.extension)
    return where


def _page(db: Session, where: list[ColumnElement[bool] | bool], limit: int, offset: int) -> DevicePage:
    total = db.exec(select(func.count()).select_from(Device).where(*where)).one()
    rows = db.exec(select(Device).where(*where).order_by(col(Device.extension), col(Device.id))
                   .offset(offset).limit(limit)).all()
    return DevicePage(total=total, limit=limit, offset=offset, items=[shown(d) for d in rows])


def _own_device(db: Session, user: ApiUser, device_id: int) -> Device:
    device = db.exec(select(Device).where(Device.id == device_id, *_scope(user))).first()
    if device is None:
        raise HTTPException(404, f"no device {device_id}")
    return device


def _invalid(field: str, message: str) -> HTTPException:
    return HTTPException(422, [{"loc": ["body", field], "msg": message, "type": "value_error"}])


def _check(db: Session, user: ApiUser, device: Device) -> None:
    """The rules pydantic cannot see: the extension and the DECT base exist in
    the caller's organisation, and no other device has the MAC."""
    if db.exec(select(Extension).where(Extension.organisation_id == user.organisation_id,
                                       Extension.number == device.extension)).first() is None:
        raise _invalid("extension", f"no extension {device.extension} in this organisation")
    if device.base_id is not None:
        base = db.exec(select(Device).where(Device.id == device.base_id,
                                            Device.organisation_id == user.organisation_id)).first()
        if device.kind != "dect":
            raise _invalid("base_id", "only a DECT handset has a base")
        if base is None or base.id == device.id or base.kind != "dect" or base.mac is None \
                or generator(base.vendor, base.kind) is None:
            raise _invalid("base_id", f"device {device.base_id} is not a provisioned DECT base")
    if device.mac is not None:
        other = db.exec(select(Device).where(Device.mac == device.mac)).first()
        if other is not None and other.id != device.id:
            raise HTTPException(409, f"MAC {device.mac} is used by another device")


def _sip_username(db: Session, extension: str) -> str:
    """``<extension>-<10 hex>``: unguessable, and still tells an admin whose it is."""
    while True:
        name = f"{extension}-{secrets.token_hex(5)}"
        if db.exec(select(Device).where(Device.sip_username == name)).first() is None:
            return name


def drop_devices_of(db: Session, organisation_id: int, extension: str) -> None:
    """Delete an extension's devices with it (their logins die with their AOR)."""
    for device in db.exec(select(Device).where(Device.organisation_id == organisation_id,
                                               Device.extension == extension)).all():
        _forget(db, device)


def _forget(db: Session, device: Device) -> None:
    for handset in db.exec(select(Device).where(Device.base_id == device.id)).all():
        handset.base_id = None
        db.add(handset)
    db.delete(device)


@router.get("/devices", response_model=DevicePage, responses=ERRORS)
def list_devices(user: User, db: Db, extension: Annotated[str | None, Query(pattern=NUMBER)] = None,
                 limit: Limit = 100, offset: Offset = 0) -> DevicePage:
    """The organisation's hardware, optionally one extension's."""
    where = _scope(user)
    if extension is not None:
        where.append(Device.extension == extension)
    return _page(db, where, limit, offset)


@router.get("/extensions/{number}/devices", response_model=DevicePage, responses=NOT_FOUND)
def extension_devices(number: str, user: User, db: Db, limit: Limit = 100,
                      offset: Offset = 0) -> DevicePage:
    """What hardware one user (extension) has."""
    own_extension(db, user, number)
    if user.role not in READ_ALL and number != user.extension:
        raise HTTPException(404, f"no extension {number}")
    return _page(db, [*_scope(user), Device.extension == number], limit, offset)


@router.get("/devices/{device_id}", response_model=DeviceOut, responses=NOT_FOUND)
def get_device(device_id: int, user: User, db: Db) -> DeviceOut:
    return shown(_own_device(db, user, device_id))


@router.post("/devices", response_model=DeviceCreated, status_code=201, responses={
    **ERRORS, 409: {"description": "the MAC belongs to another device"},
    422: {"description": "invalid fields, an unknown extension or DECT base"}})
def create_device(body: DeviceIn, user: User, db: Db, sip: Sip, request: Request) -> DeviceCreated:
    require(user, "admin")
    secret = new_sip_secret()
    token = secrets.token_urlsafe(24)
    device = Device(**body.model_dump(), organisation_id=user.organisation_id, secret=secret,
                    sip_username=_sip_username(db, body.extension),
                    provisioning_token=token_hash(token), created_at=time.time())
    _check(db, user, device)
    db.add(device)
    db.flush()
    audit(db, user, "device.create", f"device {device.id}", None, shown(device).model_dump())
    db.commit()
    sip.directory.reload()  # it can register at once
    url = first = None
    if device.mac is not None and generator(device.vendor, device.kind) is not None:
        url = provisioning_folder(request, sip, token)
        first = entry_file(device.vendor, device.mac, device.model)
    return DeviceCreated(**shown(device).model_dump(), sip_username=device.sip_username,
                         secret=secret, provisioning_url=url, provisioning_file=first)


@router.patch("/devices/{device_id}", response_model=DeviceOut, responses={
    **NOT_FOUND, 409: {"description": "the MAC belongs to another device"},
    422: {"description": "invalid fields, an unknown extension or DECT base"}})
def update_device(device_id: int, body: DevicePatch, user: User, db: Db, sip: Sip) -> DeviceOut:
    require(user, "admin")
    device = _own_device(db, user, device_id)
    before = shown(device).model_dump()
    old_extension = device.extension
    for name, value in body.model_dump(exclude_unset=True).items():
        if value is not None or name in ("mac", "base_id"):  # these two can be cleared
            setattr(device, name, value)
    _check(db, user, device)
    db.add(device)
    audit(db, user, "device.update", f"device {device_id}", before, shown(device).model_dump())
    db.commit()
    sip.directory.reload()
    if device.extension != old_extension:  # it rings for its new extension once it re-registers
        sip.unregister(user.organisation_id, old_extension, device.sip_username)
    return shown(device)


@router.delete("/devices/{device_id}", status_code=204, responses=NOT_FOUND)
def delete_device(device_id: int, user: User, db: Db, sip: Sip) -> Response:
    require(user, "admin")
    device = _own_device(db, user, device_id)
    audit(db, user, "device.delete", f"device {device_id}", shown(device).model_dump(), None)
    _forget(db, device)
    db.commit()
    sip.directory.reload()  # its login stops working at once
    sip.unregister(user.organisation_id, device.extension, device.sip_username)  # and it stops ringing
    return Response(status_code=204)


@router.post("/devices/{device_id}/rotate-secret", response_model=DeviceSecret, responses=NOT_FOUND)
def rotate_secret(device_id: int, user: User, db: Db, sip: Sip) -> DeviceSecret:
    """A new SIP password; a provisioned phone picks it up with its next fetch."""
    require(user, "admin")
    device = _own_device(db, user, device_id)
    device.secret = new_sip_secret()
    db.add(device)
    audit(db, user, "device.rotate_secret", f"device {device_id}", None, None)
    db.commit()
    sip.directory.reload()
    sip.unregister(user.organisation_id, device.extension, device.sip_username)
    assert device.id is not None
    return DeviceSecret(id=device.id, sip_username=device.sip_username, secret=device.secret)
