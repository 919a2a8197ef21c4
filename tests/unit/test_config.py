"""sip.conf loading: defaults, the demo file, overrides, and errors that name file, section and key."""

from pathlib import Path

import pytest

from pbx.cli import build_parser
from pbx.config import ConfigError, PortRange, load_config

REPO = Path(__file__).resolve().parents[2]


def test_demo_config_has_the_demo_extensions() -> None:
    config = load_config(REPO / "sip.conf.example")
    assert [e.number for e in config.extensions] == ["1001", "1002", "1003", "1004"]
    assert config.general.transports == ("udp", "tcp", "tls")
    assert config.general.voicemail_number == "133"
    assert config.extensions[0].callerid == '"Alice Andersson" <1001>'
    assert config.database_url.startswith("sqlite:///") and config.database_url.endswith("pbx.sqlite3")
    office = config.schedules[0]
    assert office.name == "office-hours" and office.definition.holidays == "SE"
    assert [str(i) for i in office.definition.fri] == ["08:00-17:00"]
    assert office.definition.sat == office.definition.sun == office.definition.holiday_hours == []


def test_overrides_replace_general_values(tmp_path: Path) -> None:
    config = load_config(REPO / "sip.conf.example").with_overrides(
        udp_port=6000, data_dir=str(tmp_path), bind="::1", http_port=None
    )
    assert config.general.udp_port == 6000 and config.general.http_port == 8080
    assert config.general.bind == "::1"
    assert config.data_path == tmp_path


@pytest.mark.parametrize(
    ("text", "section", "key"),
    [
        ("[general]\nudp_port = 70000\n", "general", "udp_port"),
        ("[general]\nbind = not-an-ip\n", "general", "bind"),
        ("[general]\ntransports = udp, sctp\n", "general", "transports"),
        ("[general]\nfrobnicate = 1\n", "general", "frobnicate"),
        ("[general]\nvoicemail_number = 13 3\n", "general", "voicemail_number"),
        ("[general]\nlanguage = no\n", "general", "language"),  # Bokmål is nb
        ("[general]\ntone_country = xx\n", "general", "tone_country"),
        ("[general]\npark_slots = 720-701\n", "general", "park_slots"),
        ("[general]\npark_slots = 1-5000\n", "general", "park_slots"),
        ("[general]\npark_timeout = 5\n", "general", "park_timeout"),
        ("[general]\nwebhooks_allow_http = maybe\n", "general", "webhooks_allow_http"),
        ("[general]\nwebhooks_max_attempts = 0\n", "general", "webhooks_max_attempts"),
        ("[1001]\ncallerid = x\n", "1001", "secret"),
        ("[general]\nsmtp_security = ssl\n", "general", "smtp_security"),
        ("[general]\nsmtp_verify = maybe\n", "general", "smtp_verify"),
        ("[general]\nsmtp_from = PBX <voicemail>\n", "general", "smtp_from"),
        ("[general]\nvoicemail_attach = aac\n", "general", "voicemail_attach"),
        ("[1001]\nsecret = x\nemail = a@example.com, b@\n", "1001", "email"),
        ("[1001]\nsecret = x\nvoicemail_delete = sometimes\n", "1001", "voicemail_delete"),
        ("[1001]\nsecret = x\nmedia_encryption = sdes\n", "1001", "media_encryption"),
        ("[general]\nmedia_encryption = maybe\n", "general", "media_encryption"),
        ("[general]\nsrtp_require_tls = perhaps\n", "general", "srtp_require_tls"),
        ("[c]\ntype = trunk\nhost = sip.c.test\nauth = ip\ntls_verify = sometimes\n", "c",
         "tls_verify"),
        ("[2000]\ntype = mailbox\nemail = reception\n", "2000", "email"),
        ("[bad ext!]\nsecret = x\n", "bad ext!", "number"),
        ("[oh]\ntype = schedule\nmon = 08:00-25:00\n", "oh", "mon"),
        ("[oh]\ntype = schedule\ntue = 13:00-17:00, 08:00-12:00\n", "oh", "tue"),
        ("[oh]\ntype = schedule\nholidays = XX\n", "oh", "holidays"),
        ("[oh]\ntype = schedule\ntimezone = Europe/Gothenburg\n", "oh", "timezone"),
        ("[oh]\ntype = schedule\nexceptions = 2026-12-24 closed; 24/12 closed\n", "oh",
         "exceptions"),
        ("[oh]\ntype = schedule\nweekdays = 08:00-17:00\n", "oh", "weekdays"),
        ("[oh]\ntype = schedule\n[500]\ntype = timecondition\nschedule = other\n"
         "open = 1001\nclosed = 1002\n", "500", "schedule"),
        ("[oh]\ntype = schedule\n[500]\ntype = timecondition\nschedule = oh\n"
         "open = 1001\nclosed = voicemail 1002\n", "500", "closed"),
        ("[x]\ntype = queues\n", "x", "type"),
        ("[500]\ntype = ivr\n", "500", "tree"),
        ("[general]\nflood_trusted = 10.0.0.0/8, proxy.example\n", "general", "flood_trusted"),
        ("[general]\nflood_window = 0\n", "general", "flood_window"),
    ],
)
def test_errors_name_file_section_and_key(tmp_path: Path, text: str, section: str, key: str) -> None:
    path = tmp_path / "sip.conf"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert (info.value.section, info.value.key) == (section, key)
    assert str(path) in str(info.value)


def test_flood_guard_keys(tmp_path: Path) -> None:
    path = tmp_path / "sip.conf"
    path.write_text("[general]\nflood_max_requests = 0\nflood_trusted = 10.0.0.0/8, 192.0.2.7\n"
                    "scanner_user_agents = friendly-scanner, evil\nuser_agent = Acme\n")
    general = load_config(path).general
    assert general.flood_max_requests == 0
    assert general.flood_trusted == ("10.0.0.0/8", "192.0.2.7")
    assert general.scanner_user_agents == ("friendly-scanner", "evil")
    assert general.user_agent == "Acme"
    path.write_text("[general]\n")
    general = load_config(path).general
    assert (general.flood_max_requests, general.flood_window, general.flood_ban_time) == (16, 2, 300)
    assert general.user_agent == "" and "sipvicious" in general.scanner_user_agents


def test_voicemail_to_email_keys(tmp_path: Path) -> None:
    path = tmp_path / "sip.conf"
    path.write_text("[general]\nsmtp_host = mail.example.com\nsmtp_security = tls\n"
                    "smtp_verify = no\nsmtp_from = PBX Voicemail <vm@example.com>\n"
                    "voicemail_attach = mp3\nvoicemail_delete = yes\n"
                    "[1001]\nsecret = x\nemail = alice@example.com,  a.andersson@Example.COM\n"
                    "voicemail_delete = no\n[1002]\nsecret = y\n")
    config = load_config(path)
    general = config.general
    assert (general.smtp_host, general.smtp_port, general.smtp_security, general.smtp_verify) \
        == ("mail.example.com", 0, "tls", False)  # 0: the port of the security, 465
    assert (general.smtp_from, general.voicemail_attach, general.voicemail_delete) == (
        "PBX Voicemail <vm@example.com>", "mp3", True)
    alice, bertil = config.extensions
    assert (alice.email, alice.voicemail_delete) == (
        "alice@example.com, a.andersson@Example.COM", False)
    assert (bertil.email, bertil.voicemail_delete) == ("", None)  # None: as [general]


def test_a_bad_address_says_what_is_wrong(tmp_path: Path) -> None:
    path = tmp_path / "sip.conf"
    path.write_text("[1001]\nsecret = x\nemail = alice at example.com\n")
    with pytest.raises(ConfigError, match=r"\[1001\] email: .*'alice at example.com' is not an "
                                          r"e-mail address \(local@domain\)"):
        load_config(path)


@pytest.mark.parametrize("language", ["en", "sv", "da", "nb", "fi", "de"])
def test_every_prompt_language_is_accepted(tmp_path: Path, language: str) -> None:
    path = tmp_path / "sip.conf"
    path.write_text(f"[general]\nlanguage = {language}\ntone_country = US\n")
    general = load_config(path).general
    assert (general.language, general.tone_country) == (language, "us")


def test_unreadable_and_broken_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.conf")
    broken = tmp_path / "broken.conf"
    broken.write_text("no section header\n")
    with pytest.raises(ConfigError, match="syntax error"):
        load_config(broken)


def test_bad_override_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="command line"):
        load_config(None).with_overrides(rtp_port_min=30000, rtp_port_max=20000)


def test_port_range_parsing() -> None:
    assert PortRange.parse("10000-20000") == PortRange(10000, 20000)
    for bad in ("20000-10000", "80-90", "x-y", "10000"):
        with pytest.raises(ValueError):
            PortRange.parse(bad)


def test_cli_accepts_every_documented_override() -> None:
    args = build_parser().parse_args(
        ["serve", "--config", "x.conf", "--bind", "::1", "--sip-port", "5070", "--tls-port", "5071",
         "--http-port", "8081", "--rtp-ports", "30000-30100", "--data-dir", "/tmp/d"]
    )
    assert (args.sip_port, args.rtp_ports.low, args.rtp_ports.high) == (5070, 30000, 30100)


def test_schedule_and_time_condition_sections(tmp_path: Path) -> None:
    path = tmp_path / "sip.conf"
    path.write_text(
        "[office-hours]\ntype = schedule\ntimezone = Europe/Helsinki\n"
        "mon = 08:00-12:00, 13:00-17:00\nfri = 22:00-02:00\nsat = closed\nholidays = none\n"
        "holiday_hours = 10:00-14:00\n"
        "exceptions = 2026-12-24 closed; 2026-12-31 09:00-12:00, 13:00-15:00\n"
        "[500]\ntype = timecondition\nname = Reception\nschedule = office-hours\n"
        "open = 600\nclosed = voicemail:1001\n")
    config = load_config(path)
    definition = config.schedules[0].definition
    assert definition.model_dump(mode="json") == {
        "timezone": "Europe/Helsinki", "mon": ["08:00-12:00", "13:00-17:00"], "tue": [],
        "wed": [], "thu": [], "fri": ["22:00-02:00"], "sat": [], "sun": [], "holidays": "",
        "holiday_hours": ["10:00-14:00"],
        "exceptions": [{"date": "2026-12-24", "hours": [], "label": ""},
                       {"date": "2026-12-31", "hours": ["09:00-12:00", "13:00-15:00"],
                        "label": ""}]}
    condition = config.time_conditions[0]
    assert (condition.number, condition.name, condition.schedule, condition.open,
            condition.closed) == ("500", "Reception", "office-hours", "600", "voicemail:1001")


def test_a_bad_exception_names_its_entry(tmp_path: Path) -> None:
    path = tmp_path / "sip.conf"
    path.write_text("[oh]\ntype = schedule\nexceptions = 2026-12-24 closed; 2026-12-31 9-12\n")
    with pytest.raises(ConfigError, match=r"\[oh\] exceptions: .*'9-12' is not an interval"
                                          r".*\(entry '2026-12-31 9-12'\)"):
        load_config(path)


def test_the_parking_lot_and_webhook_keys(tmp_path: Path) -> None:
    path = tmp_path / "sip.conf"
    path.write_text("[general]\npark_slots = 800 - 803\npark_timeout = 60\n"
                    "webhooks_allow_http = yes\nwebhooks_first_retry = 1\n")
    general = load_config(path).general
    assert general.parking_slots == ("800", "801", "802", "803")
    assert (general.park_timeout, general.webhooks_allow_http, general.webhooks_first_retry,
            general.webhooks_max_attempts) == (60, True, 1, 12)
    assert load_config(None).general.parking_slots[0] == "701"
