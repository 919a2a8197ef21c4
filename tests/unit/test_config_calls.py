"""sip.conf for calls to the public network: the [general] call policy keys and
``type = route`` sections, their errors naming file, section and key, and the
routes seeded into the store in the file's order."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlmodel import Session, select

from pbx.config import ConfigError, load_config
from pbx.directory import Directory
from pbx.models import OutboundRoute
from pbx.store import Store

ROUTES = """
[general]
country = dk
outside_prefix = 0
max_outbound_calls = 10
max_outbound_per_extension = 2
max_calls_per_hour = 30
max_org_calls_per_hour = 200
international = no
international_prefixes = +46, +47 , +358
max_call_duration = 7200

[carrier-a]
type = trunk
host = a.carrier.example
auth = ip

[carrier-b]
type = trunk
host = b.carrier.example
auth = ip

[cheap-intl]
type = trunk
host = intl.example
auth = ip
number_format = e164-noplus

[denmark]
type = route
patterns = +45., 112
trunks = carrier-a, carrier-b
callerid = trunk

[world]
type = route
patterns = _+.
trunks = cheap-intl
strip = 1
prepend = 00
callerid = anonymous
"""


def test_policy_keys_and_routes_are_read(tmp_path: Path) -> None:
    path = tmp_path / "sip.conf"
    path.write_text(ROUTES)
    config = load_config(path)
    general = config.general
    assert (general.country, general.outside_prefix, general.international) == ("DK", "0", False)
    assert general.international_prefixes == ("+46", "+47", "+358")
    assert (general.max_outbound_calls, general.max_outbound_per_extension,
            general.max_calls_per_hour, general.max_org_calls_per_hour,
            general.max_call_duration) == (10, 2, 30, 200, 7200)
    denmark, world = config.routes
    assert (denmark.name, denmark.patterns, denmark.trunks, denmark.callerid) == (
        "denmark", ("+45.", "112"), ("carrier-a", "carrier-b"), "trunk")
    assert (world.strip, world.prepend, world.callerid) == (1, "00", "anonymous")


def test_defaults_without_the_keys() -> None:
    general = load_config(None).general
    assert (general.country, general.outside_prefix, general.international) == ("SE", "", True)
    assert (general.max_outbound_calls, general.max_outbound_per_extension,
            general.max_calls_per_hour, general.max_org_calls_per_hour,
            general.max_call_duration) == (0, 3, 60, 0, 0)
    assert general.international_prefixes == ()


@pytest.mark.parametrize(("text", "section", "key", "message"), [
    ("[general]\ncountry = XX\n", "general", "country", "no numbering plan for country 'XX'"),
    ("[general]\noutside_prefix = 9#\n", "general", "outside_prefix", "should match pattern"),
    ("[general]\nmax_calls_per_hour = -1\n", "general", "max_calls_per_hour",
     "greater than or equal to 0"),
    ("[general]\nmax_outbound_calls = many\n", "general", "max_outbound_calls", "integer"),
    ("[general]\ninternational = maybe\n", "general", "international", "boolean"),
    ("[general]\ninternational_prefixes = +45, 47\n", "general", "international_prefixes",
     "'47' is not an E.164 prefix such as +45 or +4915"),
    ("[general]\nmax_call_duration = -5\n", "general", "max_call_duration",
     "greater than or equal to 0"),
    ("[out]\ntype = route\npatterns = +.\ntrunks = carrier-a, nowhere\n"
     "[carrier-a]\ntype = trunk\nhost = a.example\nauth = ip\n", "out", "trunks",
     "no [nowhere] section with type = trunk"),
    ("[112]\nsecret = s3cret\n", "112", None, "112 is an emergency number in SE"),
    ("[general]\ncountry = GB\n[999]\ntype = ringgroup\nmembers = 1001\n", "999", None,
     "999 is an emergency number in GB"),
    ("[out]\ntype = route\npatterns = +46.X\ntrunks = a\n", "out", "patterns",
     "+46.X: '.' at 4 must be the last character"),
    ("[out]\ntype = route\npatterns = +46., [12\ntrunks = a\n", "out", "patterns",
     "[12: '[' at 1 is never closed"),
    ("[out]\ntype = route\ntrunks = a\n", "out", "patterns", "Field required"),
    ("[out]\ntype = route\npatterns = +.\ntrunks =\n", "out", "trunks", "at least 1 item"),
    ("[out]\ntype = route\npatterns = +.\ntrunks = carrier a\n", "out", "trunks",
     "'carrier a' is not a trunk name"),
    ("[out]\ntype = route\npatterns = +.\ntrunks = 1st\n", "out", "trunks",
     "'1st' is not a trunk name (a letter, then"),
    ("[out]\ntype = route\npatterns = +.\ntrunks = a\nstrip = 30\n", "out", "strip",
     "less than or equal to 20"),
    ("[out]\ntype = route\npatterns = +.\ntrunks = a\nprepend = 0x\n", "out", "prepend",
     "should match pattern"),
    ("[out]\ntype = route\npatterns = +.\ntrunks = a\ncallerid = me\n", "out", "callerid",
     "use user, trunk, anonymous or an E.164 number"),
    ("[out]\ntype = route\npatterns = +.\ntrunks = a\nprefix = 9\n", "out", "prefix",
     "Extra inputs are not permitted"),
    ("[bad name!]\ntype = route\npatterns = +.\ntrunks = a\n", "bad name!", "name",
     "should match pattern"),
])
def test_errors_name_file_section_and_key(tmp_path: Path, text: str, section: str,
                                          key: str | None, message: str) -> None:
    path = tmp_path / "sip.conf"
    path.write_text(text)
    with pytest.raises(ConfigError) as error:
        load_config(path)
    assert (error.value.path, error.value.section, error.value.key) == (str(path), section, key)
    assert message in str(error.value)
    assert str(error.value).startswith(f"{path} [{section}]" + (f" {key}: " if key else ": "))


def test_routes_seed_the_store_in_file_order_after_the_ones_there(tmp_path: Path) -> None:
    path = tmp_path / "sip.conf"
    path.write_text(ROUTES)
    store = Store("sqlite://")
    store.seed(load_config(path))
    with Session(store.engine) as db:
        rows = db.exec(select(OutboundRoute).order_by(OutboundRoute.position)).all()
        assert [(r.name, r.position, r.patterns, r.trunks, r.caller_id) for r in rows] == [
            ("denmark", 0, "+45., 112", "carrier-a, carrier-b", "trunk"),
            ("world", 1, "_+.", "cheap-intl", "anonymous"),
        ]
        rows[0].trunks = "carrier-c"  # changed by an admin: the store owns it now
        db.add(rows[0])
        db.commit()
    path.write_text(ROUTES + "\n[sweden]\ntype = route\npatterns = +46.\ntrunks = carrier-a\n")
    config = load_config(path)
    store.seed(config)
    tenant = Directory(store, "pbx.test", policy=config.general).default
    assert [(r.name, r.trunks) for r in tenant.routes] == [
        ("denmark", ("carrier-c",)), ("world", ("cheap-intl",)), ("sweden", ("carrier-a",))]
    assert tenant.policy.country == "DK" and tenant.policy.max_call_duration == 7200
