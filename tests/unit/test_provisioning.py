"""Provisioning files parsed back the way the phone reads them: Yealink
``key = value`` lines, Snom/Grandstream/Polycom XML through ElementTree."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from provisioning import content_type, dect_accounts, entry_file, generator
from provisioning.settings import (
    Account, BlfKey, PhoneSettings, SipServer, mac_in_filename, normalise_mac,
)
from provisioning.timezone import UTC, parse_posix, zone_rule

NAME = 'Nora "N" <Nilsson> & Co'
SECRET = "s3cretXYZ234abcdEFGH"


def phone(**overrides: object) -> PhoneSettings:
    values: dict[str, object] = {
        "mac": "001565aabbcc",
        "model": "T46U",
        "accounts": (Account("1001", NAME, "1001-0123456789", SECRET),),
        "server": SipServer(domain="acme.example", host="192.0.2.10", port=5070, transport="tcp"),
        "timezone": zone_rule("Europe/Stockholm"),
        "base_url": "http://192.0.2.10:8080/provision/tok/",
        "language": "sv",
        "blf": (BlfKey("1002", "Per & Eva"), BlfKey("1003", "Kim")),
    }
    values.update(overrides)
    return PhoneSettings(**values)  # type: ignore[arg-type]


def make(vendor: str, settings: PhoneSettings, kind: str = "desk") -> dict[str, bytes]:
    """The files of a ``vendor`` phone (or DECT base) with ``settings``."""
    files = generator(vendor, kind)
    assert files is not None
    return files(settings)


def cfg(body: bytes) -> dict[str, str]:
    """A Yealink .cfg as the phone reads it: header line, then key = value."""
    lines = body.decode().splitlines()
    assert lines[0] == "#!version:1.0.0.1"
    pairs = [line.split(" = ", 1) for line in lines[1:] if line and not line.startswith("#")]
    assert all(len(p) == 2 for p in pairs)
    return dict(pairs)  # type: ignore[arg-type]


# ------------------------------------------------------------------ shared parts

@pytest.mark.parametrize("text", ["00:15:65:AA:BB:CC", "0015-65aa-bbcc", "0015.65AA.BBCC",
                                  "001565aabbcc", "00-15-65-aa-bb-cc"])
def test_mac_forms_normalise_to_twelve_lower_hex(text: str) -> None:
    assert normalise_mac(text) == "001565aabbcc"


@pytest.mark.parametrize("text", ["", "00:15:65:AA:BB", "00:15:65:AA:BB:CC:DD", "0015-65aa-bbcg"])
def test_bad_macs_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="12 hex digits"):
        normalise_mac(text)


def test_the_mac_a_phone_asks_with() -> None:
    assert mac_in_filename("001565aabbcc.cfg") == "001565aabbcc"
    assert mac_in_filename("cfg000B82AABBCC.xml") == "000b82aabbcc"
    assert mac_in_filename("snomD785-000413AABBCC.htm") == "000413aabbcc"
    assert mac_in_filename("0004f2aabbcc-phone.cfg") == "0004f2aabbcc"
    assert mac_in_filename("y000000000028.cfg") == "000000000028"  # a common file: no device
    assert mac_in_filename("snom760.htm") is None
    assert mac_in_filename("0015650aabbccdd.cfg") is None  # 15 hex digits is no MAC


def test_time_zones_become_offsets_and_week_rules() -> None:
    stockholm = zone_rule("Europe/Stockholm")
    assert stockholm.posix == "CET-1CEST,M3.5.0,M10.5.0/3"
    assert (stockholm.utc_offset, stockholm.dst_save) == (3600, 3600)
    assert stockholm.dst_start is not None and stockholm.dst_end is not None
    assert (stockholm.dst_start.month, stockholm.dst_start.week, stockholm.dst_start.weekday,
            stockholm.dst_start.hour) == (3, 5, 0, 2)  # last Sunday of March, 02:00
    assert (stockholm.dst_end.month, stockholm.dst_end.hour) == (10, 3)
    new_york = zone_rule("America/New_York")
    assert new_york.offset_text() == "-5" and new_york.dst_start is not None
    assert new_york.dst_start.week == 2  # second Sunday of March
    kolkata = zone_rule("Asia/Kolkata")
    assert kolkata.offset_text() == "+5:30" and not kolkata.has_dst
    st_johns = zone_rule("America/St_Johns")
    assert st_johns.offset_text() == "-3:30" and st_johns.has_dst


def test_rules_phones_cannot_express_keep_standard_time() -> None:
    jerusalem = parse_posix("Asia/Jerusalem", "IST-2IDT,M3.4.4/26,M10.5.0")  # 26:00 on Thursday
    assert jerusalem.utc_offset == 7200 and not jerusalem.has_dst
    assert not parse_posix("X", "ABC-1DEF,J60,J300").has_dst


@pytest.mark.parametrize("name", ["Mars/Olympus", "../etc/passwd", "Europe/", ""])
def test_unknown_time_zones_are_refused(name: str) -> None:
    with pytest.raises(ValueError):
        zone_rule(name)


def test_which_devices_have_files() -> None:
    assert generator("yealink", "desk") is not None and generator("yealink", "dect") is not None
    assert generator("snom", "dect") is None  # only Yealink W-series bases
    assert generator("", "desk") is None and generator("yealink", "softphone") is None
    assert entry_file("grandstream", "000b82aabbcc", "") == "cfg000b82aabbcc.xml"
    assert entry_file("snom", "000413aabbcc", "D785") == "snomD785-000413AABBCC.htm"
    assert dect_accounts("W70B") == 10 and dect_accounts("W60B") == 8
    assert content_type(b"<?xml version='1.0'?><a/>") == "application/xml"
    assert content_type(b"#!version:1.0.0.1\n").startswith("text/plain")


# ---------------------------------------------------------------------- Yealink

def test_yealink_desk_phone() -> None:
    files = make("yealink", phone())
    assert list(files) == ["001565aabbcc.cfg"]
    keys = cfg(files["001565aabbcc.cfg"])
    assert keys["account.1.enable"] == "1"
    assert keys["account.1.user_name"] == "1001"  # the register user: the extension
    assert keys["account.1.auth_name"] == "1001-0123456789"
    assert keys["account.1.password"] == SECRET
    assert keys["account.1.display_name"] == NAME
    assert keys["account.1.sip_server.1.address"] == "acme.example"
    assert keys["account.1.sip_server.1.port"] == "5070"
    assert keys["account.1.sip_server.1.transport_type"] == "1"  # TCP
    assert keys["account.1.outbound_proxy_enable"] == "1"
    assert keys["account.1.outbound_proxy.1.address"] == "192.0.2.10"
    assert keys["voice_mail.number.1"] == "133"
    assert keys["local_time.time_zone"] == "+1"
    assert keys["local_time.summer_time"] == "1"
    assert keys["local_time.start_time"] == "3/5/7/2"  # March, last week, Sunday, 02:00
    assert keys["local_time.end_time"] == "10/5/7/3"
    assert keys["local_time.offset_time"] == "60"
    assert keys["lang.gui"] == "English"  # no Swedish on Yealink phones
    assert keys["linekey.1.type"] == "15"
    assert (keys["linekey.2.type"], keys["linekey.2.value"], keys["linekey.2.label"]) == \
        ("16", "1002", "Per & Eva")
    assert keys["linekey.3.value"] == "1003" and "linekey.4.type" not in keys
    # a BLF key of a ringing colleague dials the PBX's directed pickup (**1002)
    assert keys["features.pickup.direct_pickup_enable"] == "1"
    assert keys["features.pickup.direct_pickup_code"] == "**"
    assert "static.firmware.url" not in keys


def test_yealink_values_stay_on_their_line_and_firmware_is_offered() -> None:
    account = Account("1001", "Evil\nstatic.security.user_password = admin:x", "a", "b")
    keys = cfg(yealink_file(phone(accounts=(account,), firmware_url="http://fw.example/T46U.rom")))
    assert "static.security.user_password" not in keys
    assert keys["static.firmware.url"] == "http://fw.example/T46U.rom"


def yealink_file(settings: PhoneSettings) -> bytes:
    return make("yealink", settings)[f"{settings.mac}.cfg"]


def test_yealink_dect_base_has_one_account_per_handset() -> None:
    handset = Account("1004", "Lager", "1004-aaaaaaaaaa", "handset-secret", label="Lager 1")
    base = phone(model="W60B", accounts=(phone().accounts[0], handset), timezone=UTC)
    files = make("yealink", base, "dect")
    keys = cfg(files["001565aabbcc.cfg"])
    assert keys["account.2.user_name"] == "1004"
    assert keys["account.2.auth_name"] == "1004-aaaaaaaaaa"
    assert keys["account.2.password"] == "handset-secret"
    assert keys["account.2.label"] == "Lager 1"
    assert keys["handset.1.dial_out_default_line"] == "1"
    assert (keys["handset.2.incoming_lines"], keys["handset.2.dial_out_lines"]) == ("2", "2")
    assert keys["handset.2.name"] == "Lager 1"
    assert keys["voice_mail.number.2"] == "133"
    assert keys["local_time.time_zone"] == "+0" and keys["local_time.summer_time"] == "0"
    assert not any(k.startswith("linekey.") for k in keys)  # DECT handsets have no BLF keys


def test_no_outbound_proxy_when_the_domain_is_the_server() -> None:
    settings = phone(server=SipServer("192.0.2.10", "192.0.2.10", 5060))
    keys = cfg(yealink_file(settings))
    assert keys["account.1.sip_server.1.address"] == "192.0.2.10"
    assert "account.1.outbound_proxy_enable" not in keys


# ------------------------------------------------------------------------- Snom

def test_snom() -> None:
    files = make("snom", phone(model="snom D785"))
    assert sorted(files) == ["001565AABBCC.xml", "snomD785-001565AABBCC.htm"]
    index = ET.fromstring(files["snomD785-001565AABBCC.htm"])
    assert index.tag == "setting-files"
    entry = index.find("file")
    assert entry is not None
    assert entry.get("url") == "http://192.0.2.10:8080/provision/tok/001565AABBCC.xml"
    root = ET.fromstring(files["001565AABBCC.xml"])
    settings = root.find("phone-settings")
    assert settings is not None

    def value(tag: str, idx: str | None = "1") -> str | None:
        path = f"{tag}[@idx='{idx}']" if idx else tag
        element = settings.find(path)  # type: ignore[union-attr]
        assert element is not None, tag
        return element.text

    assert value("user_active") == "on"
    assert value("user_name") == "1001"
    assert value("user_pname") == "1001-0123456789"
    assert value("user_pass") == SECRET
    assert value("user_realname") == NAME
    assert value("user_host") == "acme.example"
    assert value("user_outbound") == "192.0.2.10:5070;transport=tcp"
    assert value("user_mailbox") == "133"
    assert value("language", None) == "Svenska"
    assert value("utc_offset", None) == "+3600"
    assert value("dst", None) == "3600 03.05.07 02:00:00 10.05.07 03:00:00"
    keys = root.findall("functionKeys/fkey")
    assert [(k.get("idx"), k.text, k.get("label")) for k in keys] == [
        ("0", "blf <sip:1002@acme.example>|**", "Per & Eva"),  # |**: the pickup prefix
        ("1", "blf <sip:1003@acme.example>|**", "Kim"),
    ]


def test_snom_without_a_model_serves_the_settings_file_alone() -> None:
    files = make("snom", phone(model=""))
    assert list(files) == ["001565AABBCC.xml"]


# ------------------------------------------------------------------ Grandstream

def test_grandstream() -> None:
    files = make("grandstream", phone(model="GXP2170"))
    root = ET.fromstring(files["cfg001565aabbcc.xml"])
    assert root.tag == "gs_provision" and root.get("version") == "1"
    assert root.findtext("mac") == "001565aabbcc"
    config = root.find("config")
    assert config is not None and config.get("version") == "1"
    p = {element.tag: element.text or "" for element in config}
    assert p["P271"] == "1"
    assert p["P270"] == "1001"  # account name
    assert p["P47"] == "acme.example"  # SIP server
    assert p["P48"] == "192.0.2.10:5070"  # outbound proxy
    assert p["P35"] == "1001"  # SIP user ID
    assert p["P36"] == "1001-0123456789"  # authenticate ID
    assert p["P34"] == SECRET
    assert p["P3"] == NAME
    assert p["P33"] == "133"
    assert p["P130"] == "1"  # TCP
    assert (p["P64"], p["P246"]) == ("customize", "CET-1CEST,M3.5.0,M10.5.0/3")
    assert (p["P323"], p["P301"], p["P302"], p["P303"]) == ("1", "0", "Per & Eva", "1002")
    assert (p["P324"], p["P306"]) == ("1", "1003")
    assert "P192" not in p


def test_grandstream_has_seven_blf_keys_and_a_firmware_server() -> None:
    many = tuple(BlfKey(str(2000 + n), f"User {n}") for n in range(10))
    settings = phone(blf=many, firmware_url="https://fw.example/gs/gxp2170")
    body = make("grandstream", settings)["cfg001565aabbcc.xml"]
    p = {e.tag: e.text for e in ET.fromstring(body).find("config")}  # type: ignore[union-attr]
    assert p["P329"] == "1" and p["P321"] == "2006" and "P330" not in p
    assert (p["P212"], p["P192"]) == ("2", "fw.example/gs/gxp2170")


# ---------------------------------------------------------------------- Polycom

def test_polycom() -> None:
    files = make("polycom", phone(model="VVX450"))
    master = ET.fromstring(files["001565aabbcc.cfg"])
    assert master.tag == "APPLICATION"
    assert master.get("CONFIG_FILES") == "001565aabbcc-phone.cfg"
    root = ET.fromstring(files["001565aabbcc-phone.cfg"])
    assert root.tag == "PHONE_CONFIG"
    all_ = root.find("ALL")
    assert all_ is not None
    a = all_.attrib
    assert a["reg.1.address"] == "1001@acme.example"
    assert a["reg.1.auth.userId"] == "1001-0123456789"
    assert a["reg.1.auth.password"] == SECRET
    assert a["reg.1.displayName"] == NAME
    assert a["reg.1.server.1.address"] == "acme.example"
    assert a["reg.1.server.1.port"] == "5070"
    assert a["reg.1.server.1.transport"] == "TCPOnly"
    assert a["reg.1.outboundProxy.address"] == "192.0.2.10"
    assert (a["msg.mwi.1.callBackMode"], a["msg.mwi.1.callBack"]) == ("contact", "133")
    assert a["attendant.resourceList.1.address"] == "1002@acme.example"
    assert a["attendant.resourceList.1.label"] == "Per & Eva"
    assert a["tcpIpApp.sntp.gmtOffset"] == "3600"
    assert a["tcpIpApp.sntp.daylightSavings.enable"] == "1"
    assert a["tcpIpApp.sntp.daylightSavings.start.month"] == "3"
    assert a["tcpIpApp.sntp.daylightSavings.start.dayOfWeek"] == "1"  # Sunday
    assert a["tcpIpApp.sntp.daylightSavings.start.dayOfWeek.lastInMonth"] == "1"
    assert a["tcpIpApp.sntp.daylightSavings.stop.time"] == "3"
    assert a["lcl.ml.lang"] == "Swedish_Sweden"


def test_polycom_second_sunday_is_the_eighth() -> None:
    files = make("polycom", phone(timezone=zone_rule("America/New_York")))
    a = ET.fromstring(files["001565aabbcc-phone.cfg"]).find("ALL").attrib  # type: ignore[union-attr]
    assert a["tcpIpApp.sntp.gmtOffset"] == "-18000"
    assert a["tcpIpApp.sntp.daylightSavings.start.date"] == "8"
    assert a["tcpIpApp.sntp.daylightSavings.start.dayOfWeek.lastInMonth"] == "0"
    assert a["tcpIpApp.sntp.daylightSavings.stop.month"] == "11"
