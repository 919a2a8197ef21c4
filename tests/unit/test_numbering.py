"""Numbering plans: what users dial, as E.164, per country; emergency numbers left
alone; the forms trunks want; garbage refused with a reason and a SIP status."""

from __future__ import annotations

import pytest

from pbx.numbering import (
    COUNTRIES, ExternalNumber, NumberError, NumberingPlan, carrier_format, from_carrier,
)

SE, DK, NO, FI, DE, GB, US = (NumberingPlan(COUNTRIES[c])
                              for c in ("SE", "DK", "NO", "FI", "DE", "GB", "US"))


@pytest.mark.parametrize(("plan", "dialled", "e164", "international"), [
    # Sweden: trunk prefix 0, international prefix 00
    (SE, "+46 8 123 45 67", "+4681234567", False),
    (SE, "08-123 45 67", "+4681234567", False),
    (SE, "0046812345 67", "+4681234567", False),
    (SE, "+4681234567", "+4681234567", False),
    (SE, "+46 (0)8-123 45 67", "+4681234567", False),  # the 0 written in brackets
    (SE, "070-123 45 67", "+46701234567", False),
    (SE, "0910-123 45", "+4691012345", False),
    (SE, "+45 32 12 34 56", "+4532123456", True),
    (SE, "00 1 212 555 0100", "+12125550100", True),
    (SE, "+7 495 123-45-67", "+74951234567", True),  # a country the table does not list
    # Denmark and Norway: no trunk prefix, eight digits
    (DK, "32 12 34 56", "+4532123456", False),
    (DK, "+45 3212 3456", "+4532123456", False),
    (DK, "0046 8 123 45 67", "+4681234567", True),
    (NO, "22 12 34 56", "+4722123456", False),
    (NO, "+47 22 12 34 56", "+4722123456", False),
    (NO, "0045 32123456", "+4532123456", True),
    # Finland, Germany, the UK: trunk prefix 0
    (FI, "09 123 4567", "+35891234567", False),
    (FI, "040 123 4567", "+358401234567", False),
    (FI, "00358 9 123 4567", "+35891234567", False),
    (DE, "030 1234567", "+49301234567", False),
    (DE, "+49 (0)30 1234567", "+49301234567", False),
    (DE, "0049 89 12345678", "+498912345678", False),
    (GB, "020 7946 0018", "+442079460018", False),
    (GB, "07700 900123", "+447700900123", False),
    (GB, "+44 (0)20 7946 0018", "+442079460018", False),
    (GB, "00 46 8 123 45 67", "+4681234567", True),
    # the NANP: trunk prefix 1 or none, international prefix 011
    (US, "(212) 555-0100", "+12125550100", False),
    (US, "1-212-555-0100", "+12125550100", False),
    (US, "+1 212 555 0100", "+12125550100", False),
    (US, "011 46 8 123 45 67", "+4681234567", True),
    (US, "212.555.0100", "+12125550100", False),
])
def test_dialled_numbers_become_e164(plan: NumberingPlan, dialled: str, e164: str,
                                     international: bool) -> None:
    assert plan.normalise(dialled) == ExternalNumber(e164, international=international)


@pytest.mark.parametrize(("plan", "dialled"), [
    (SE, "112"), (DK, "112"), (NO, "110"), (NO, "112"), (NO, "113"), (FI, "112"),
    (DE, "112"), (DE, "110"), (GB, "999"), (GB, "112"), (US, "911"), (US, "112"),
])
def test_emergency_numbers_are_recognised_and_left_as_dialled(plan: NumberingPlan,
                                                              dialled: str) -> None:
    number = plan.normalise(dialled)
    assert number == ExternalNumber(dialled, emergency=True)
    for form in ("e164", "e164-noplus", "national"):
        assert carrier_format(number, form, plan.country) == dialled  # never rewritten


def test_another_countrys_emergency_number_is_not_one_here() -> None:
    with pytest.raises(NumberError):
        SE.normalise("999")  # 999 is the UK's; in Sweden it is an incomplete number
    with pytest.raises(NumberError):
        US.normalise("110")


@pytest.mark.parametrize(("plan", "dialled", "e164"), [
    (NumberingPlan(COUNTRIES["SE"], "0"), "0 08-123 45 67", "+4681234567"),
    (NumberingPlan(COUNTRIES["SE"], "0"), "0 00 45 32 12 34 56", "+4532123456"),
    (NumberingPlan(COUNTRIES["SE"], "0"), "+46 8 123 45 67", "+4681234567"),  # + needs none
    (NumberingPlan(COUNTRIES["GB"], "9"), "9 020 7946 0018", "+442079460018"),
    (NumberingPlan(COUNTRIES["US"], "9"), "9 1 212 555 0100", "+12125550100"),
    (NumberingPlan(COUNTRIES["DK"], "0"), "0 32 12 34 56", "+4532123456"),
])
def test_the_outside_line_prefix_is_stripped_first(plan: NumberingPlan, dialled: str,
                                                   e164: str) -> None:
    assert plan.normalise(dialled).number == e164


@pytest.mark.parametrize(("plan", "dialled", "emergency"), [
    (NumberingPlan(COUNTRIES["SE"], "0"), "112", "112"),
    (NumberingPlan(COUNTRIES["SE"], "0"), "0112", "112"),
    (NumberingPlan(COUNTRIES["GB"], "9"), "999", "999"),
    (NumberingPlan(COUNTRIES["GB"], "9"), "9999", "999"),
    (NumberingPlan(COUNTRIES["US"], "9"), "911", "911"),
    (NumberingPlan(COUNTRIES["US"], "9"), "9911", "911"),
])
def test_emergency_numbers_work_with_and_without_the_outside_line_prefix(
    plan: NumberingPlan, dialled: str, emergency: str,
) -> None:
    assert plan.normalise(dialled) == ExternalNumber(emergency, emergency=True)


def test_without_the_outside_line_prefix_a_number_is_refused_with_the_hint() -> None:
    with pytest.raises(NumberError) as refused:
        NumberingPlan(COUNTRIES["GB"], "9").normalise("020 7946 0018")
    assert refused.value.reason == "Dial 9 for an outside line first"
    assert refused.value.status == 404


@pytest.mark.parametrize(("plan", "dialled", "status", "reason"), [
    (SE, "", 484, "No number dialled"),
    (SE, " - ", 484, "No number dialled"),
    (SE, "+", 484, "Only + dialled"),
    (SE, "08-123 45 67 ext 12", 404, "'e' is not part of a phone number (digits, and + first)"),
    (SE, "SALES", 404, "'S' is not part of a phone number (digits, and + first)"),
    (SE, "08#1234567", 404, "'#' is not part of a phone number (digits, and + first)"),
    (SE, "46+8123", 404, "'+' is not part of a phone number (digits, and + first)"),
    (SE, "٠٨١٢٣٤٥٦٧", 404, "'٠' is not part of a phone number (digits, and + first)"),
    (SE, "1" * 40, 404, "11111111… is far too long for a phone number"),
    (SE, "081", 484, "A Swedish number has 6 to 10 digits after 0 or +46, not 2"),
    (SE, "+46 8 123 45 67 89 01", 404,
     "A Swedish number has 6 to 10 digits after 0 or +46, not 12"),
    (SE, "8123456", 484, "A Swedish number starts with 0 (the trunk prefix) or +46"),
    (SE, "00", 484, "00 is only the international prefix"),
    (SE, "+0812345", 404, "No country code starts with 0"),
    (SE, "+999 1234 5678 9012 345", 404, "+9991… is longer than the 15 digits E.164 allows"),
    (SE, "+999 12", 484, "+99912 is too short for an international number"),
    (DK, "3212345", 484, "A Danish number has 8 digits after +45, not 7"),
    (DK, "12 34 56 78", 404, "A Danish number cannot start with 1 (after +45)"),
    (SE, "+45 1234 5678", 404, "A Danish number cannot start with 1 (after +45)"),
    (NO, "1234", 484, "A Norwegian number has 5 to 8 digits after +47, not 4"),
    (GB, "020 7946", 484, "A British number has 9 to 10 digits after 0 or +44, not 6"),
    (DE, "+49 30 1234 5678 9012 3", 404,
     "A German number has 5 to 13 digits after 0 or +49, not 15"),
    (US, "212-555-010", 484, "A US number has 10 digits after 1 or +1, not 9"),
    (US, "(012) 555-0100", 404, "A US number cannot start with 0 (after 1 or +1)"),
    (FI, "0123", 484, "A Finnish number has 5 to 12 digits after 0 or +358, not 3"),
])
def test_what_is_no_public_number_is_refused_with_a_reason(
    plan: NumberingPlan, dialled: str, status: int, reason: str,
) -> None:
    with pytest.raises(NumberError) as refused:
        plan.normalise(dialled)
    assert (refused.value.status, refused.value.reason) == (status, reason)


@pytest.mark.parametrize(("country", "e164", "forms"), [
    ("SE", "+4681234567", ("+4681234567", "4681234567", "081234567")),
    ("SE", "+4532123456", ("+4532123456", "4532123456", "004532123456")),
    ("DK", "+4532123456", ("+4532123456", "4532123456", "32123456")),
    ("DK", "+4681234567", ("+4681234567", "4681234567", "004681234567")),
    ("US", "+12125550100", ("+12125550100", "12125550100", "12125550100")),
    ("US", "+18765550100", ("+18765550100", "18765550100", "18765550100")),  # NANP: 1 + 10
    ("US", "+4681234567", ("+4681234567", "4681234567", "0114681234567")),
    ("GB", "+442079460018", ("+442079460018", "442079460018", "02079460018")),
])
def test_numbers_are_written_as_each_trunk_wants(country: str, e164: str,
                                                 forms: tuple[str, str, str]) -> None:
    """A trunk's number_format, national in the trunk's own country."""
    number = ExternalNumber(e164)
    assert tuple(carrier_format(number, form, COUNTRIES[country])
                 for form in ("e164", "e164-noplus", "national")) == forms
    with pytest.raises(ValueError, match="unknown number format 'sip'"):
        carrier_format(number, "sip", COUNTRIES[country])


@pytest.mark.parametrize(("country", "presented", "form", "shown"), [
    ("SE", "081234567", "national", "+4681234567"),
    ("SE", "004532123456", "national", "+4532123456"),
    ("SE", "4681234567", "e164-noplus", "+4681234567"),
    ("SE", "+4681234567", "e164", "+4681234567"),
    ("DK", "32123456", "national", "+4532123456"),
    ("US", "2125550100", "national", "+12125550100"),
    ("SE", "anonymous", "e164", "anonymous"),  # withheld: shown as it came
    ("SE", "1177", "national", "1177"),  # a short code: no E.164 form
    ("SE", "", "national", ""),
])
def test_caller_ids_from_a_carrier_are_read_back_into_e164(
    country: str, presented: str, form: str, shown: str,
) -> None:
    assert from_carrier(presented, form, COUNTRIES[country]) == shown


@pytest.mark.parametrize(("plan", "external", "internal"), [
    (SE, ["08-123 45 67", "0046812345", "+4681234567", "112", "081", "0"],
     ["1009", "600", "81234567", "*8", "alice", ""]),
    (NumberingPlan(COUNTRIES["SE"], "9"), ["9 08 123 45 67", "+4681234567", "112", "9"],
     ["08-123 45 67", "1009"]),
    (DK, ["32 12 34 56", "0046 8 123 45 67", "112"], ["1009", "600", "321234567"]),
    (US, ["212 555 0100", "1 212 555 0100", "011 46 8 123 45 67", "911"], ["209", "2125"]),
])
def test_what_looks_meant_for_the_public_network(plan: NumberingPlan, external: list[str],
                                                 internal: list[str]) -> None:
    """Numbers the dial plan does not know: public ones get a reason when they
    are wrong, anything else stays a mistyped extension (404)."""
    assert [n for n in external if not plan.looks_external(n)] == []
    assert [n for n in internal if plan.looks_external(n)] == []
