"""Numbering plans: what a user dialled as a number of the public network (pure).

Phones dial numbers the way people write them: ``08-123 45 67`` (national,
with the trunk prefix 0), ``0046 8 123 45 67`` (the international prefix),
``+46 8 123 45 67`` (E.164, ITU-T E.164 §6), often behind an outside-line
prefix (``0`` or ``9``, "dial 9 for an outside line") some organisations keep
from their old PBX.  :meth:`NumberingPlan.normalise` turns all of them into
one E.164 number (``+4681234567``) by the organisation's country, so routes,
limits and call records see one form; :func:`carrier_format` writes it the
way a trunk wants it (its ``number_format`` in its ``country``) and
:func:`from_carrier` reads a carrier's caller ID back.

Emergency numbers (112, 911, 999 …) are recognised first, before any prefix
rule, and are never rewritten into something else: they leave as dialled.

Internal numbers (extensions, services, feature codes) are not this
module's business: the dial plan (``pbx.router``) knows them and asks here
only about the rest; :meth:`NumberingPlan.looks_external` tells a public
number from a mistyped extension.  Emergency numbers are kept out of the
dial plan (``sip.conf`` and the admin API refuse them).  A number that
cannot be a public one raises
:class:`NumberError` with a reason a phone can show and the SIP status it
maps to (RFC 3261 §21.4: 484 when digits are missing, 404 otherwise).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

E164_MAX_DIGITS = 15  # ITU-T E.164 §6: country code and national number together
E164_MIN_DIGITS = 7  # the shortest in service: a 3-digit country code and 4 digits
NUMBER_FORMATS = ("e164", "e164-noplus", "national")  # a trunk's number_format
E164_PREFIX = r"^\+[1-9][0-9]{0,14}$"  # a prefix of E.164 numbers: +46, +4670, +1
_SEPARATORS = re.compile(r"[\s\-./()]")  # what people write between digit groups


class NumberError(ValueError):
    """A dialled string that is no public number: the reason and its SIP status."""

    def __init__(self, reason: str, status: int = 404) -> None:
        super().__init__(reason)
        self.reason, self.status = reason, status


@dataclass(frozen=True, slots=True)
class Country:
    """A country's numbering plan as a PBX needs it (ITU-T E.164 assignments,
    the national regulators' plans)."""

    code: str  # ISO 3166 alpha-2
    adjective: str  # "Swedish", for reasons
    calling_code: str  # "46"
    trunk_prefix: str  # "0"; "" where there is none (Denmark, Norway); "1" in the NANP
    international_prefix: str  # "00"; "011" in the NANP
    emergency: tuple[str, ...]
    lengths: tuple[int, int]  # digits of a national (significant) number, min and max
    leading: str = "1-9"  # what a national number may start with
    bare_national: bool = False  # national numbers dialled without the trunk prefix (NANP)

    def parse(self, text: str) -> ExternalNumber:
        """``text`` (separators allowed, no outside-line prefix) as an E.164 number."""
        digits = clean(text)
        if digits in self.emergency:
            return ExternalNumber(digits, emergency=True)
        if digits.startswith("+"):
            return self._e164(digits[1:], digits)
        if digits.startswith(self.international_prefix):
            return self._e164(digits[len(self.international_prefix):], digits)
        national = digits
        if self.trunk_prefix:
            if digits.startswith(self.trunk_prefix):
                national = digits[len(self.trunk_prefix):]
            elif not self.bare_national:
                raise NumberError(f"A {self.adjective} number starts with {self.trunk_prefix} "
                                  f"(the trunk prefix) or +{self.calling_code}", 484)
        return self._national(national)

    def _national(self, national: str) -> ExternalNumber:
        prefix = self.trunk_prefix
        if prefix and national.startswith(prefix) and not re.match(f"[{self.leading}]", prefix):
            national = national[len(prefix):]  # +46 (0)8 …: the trunk prefix kept by habit
        low, high = self.lengths
        span = str(low) if low == high else f"{low} to {high}"
        after = f"{prefix} or +{self.calling_code}" if prefix else f"+{self.calling_code}"
        if not low <= len(national) <= high:
            status = 484 if len(national) < low else 404
            raise NumberError(f"A {self.adjective} number has {span} digits after {after}, "
                              f"not {len(national)}", status)
        if not re.match(f"[{self.leading}]", national):
            raise NumberError(f"A {self.adjective} number cannot start with {national[0]} "
                              f"(after {after})")
        return ExternalNumber(f"+{self.calling_code}{national}")

    def _e164(self, digits: str, dialled: str) -> ExternalNumber:
        if not digits:
            raise NumberError(f"{dialled} is only the international prefix", 484)
        if digits[0] == "0":
            raise NumberError("No country code starts with 0")
        if digits.startswith(self.calling_code):
            return self._national(digits[len(self.calling_code):])
        home = country_of(digits)
        if home is not None:
            return home._national(digits[len(home.calling_code):]).abroad()
        if len(digits) > E164_MAX_DIGITS:
            raise NumberError(f"+{digits[:4]}… is longer than the {E164_MAX_DIGITS} digits "
                              "E.164 allows")
        if len(digits) < E164_MIN_DIGITS:
            raise NumberError(f"+{digits} is too short for an international number", 484)
        return ExternalNumber(f"+{digits}", international=True)


@dataclass(frozen=True, slots=True)
class ExternalNumber:
    """A number of the public network: E.164 (``+4681234567``), or an emergency
    number exactly as dialled (``112``).  ``international``: outside the
    organisation's country."""

    number: str
    emergency: bool = False
    international: bool = False

    def abroad(self) -> ExternalNumber:
        return ExternalNumber(self.number, self.emergency, international=True)


COUNTRIES: dict[str, Country] = {c.code: c for c in (
    Country("SE", "Swedish", "46", "0", "00", ("112",), (6, 10)),
    Country("DK", "Danish", "45", "", "00", ("112",), (8, 8), leading="2-9"),
    Country("NO", "Norwegian", "47", "", "00", ("110", "112", "113"), (5, 8), leading="0-9"),
    Country("FI", "Finnish", "358", "0", "00", ("112",), (5, 12)),
    Country("DE", "German", "49", "0", "00", ("112", "110"), (5, 13)),
    Country("GB", "British", "44", "0", "00", ("999", "112"), (9, 10)),
    Country("US", "US", "1", "1", "011", ("911", "112"), (10, 10), leading="2-9",
            bare_national=True),
)}


def country_of(digits: str) -> Country | None:
    """The country of the plan table whose calling code ``digits`` (E.164 without
    ``+``) start with: its national lengths then apply abroad too."""
    return next((c for c in COUNTRIES.values() if digits.startswith(c.calling_code)), None)


def clean(text: str) -> str:
    """The digits (and a leading ``+``) of what was dialled, separators removed."""
    digits = _SEPARATORS.sub("", text)
    if not digits:
        raise NumberError("No number dialled", 484)
    body = digits[1:] if digits.startswith("+") else digits
    if not body:
        raise NumberError("Only + dialled", 484)
    if not body.isdigit() or not body.isascii():
        wrong = next(ch for ch in body if not ("0" <= ch <= "9"))
        raise NumberError(f"{wrong!r} is not part of a phone number (digits, and + first)")
    if len(body) > 30:  # longer than any prefix and E.164 number together
        raise NumberError(f"{digits[:8]}… is far too long for a phone number")
    return digits


@dataclass(frozen=True, slots=True)
class NumberingPlan:
    """How an organisation's users dial out: its country and outside-line prefix."""

    country: Country
    outside_prefix: str = ""  # "0" or "9": dialled before an external number

    def normalise(self, dialled: str) -> ExternalNumber:
        """``dialled`` as E.164, or as the emergency number it is."""
        digits = clean(dialled)
        if digits in self.country.emergency:
            return ExternalNumber(digits, emergency=True)
        prefix = self.outside_prefix
        if prefix and not digits.startswith("+"):
            if not digits.startswith(prefix):
                raise NumberError(f"Dial {prefix} for an outside line first")
            digits = digits[len(prefix):]
        return self.country.parse(digits)

    def looks_external(self, dialled: str) -> bool:
        """Is ``dialled`` (no number of the organisation's) meant for the public
        network, so that a mistake in it earns a reason, rather than a mistyped
        extension (a plain 404)?  It is when it starts the way external numbers
        do here: ``+``, the outside-line prefix if there is one, else the
        international or trunk prefix, or a whole national number where no
        trunk prefix is needed; emergency numbers always."""
        try:
            digits = clean(dialled)
        except NumberError:
            return False
        country = self.country
        if digits in country.emergency or digits.startswith("+"):
            return True
        if self.outside_prefix:
            return digits.startswith(self.outside_prefix)
        if digits.startswith(country.international_prefix) or (
                country.trunk_prefix and digits.startswith(country.trunk_prefix)):
            return True
        low, high = country.lengths
        return (not country.trunk_prefix or country.bare_national) and low <= len(digits) <= high


def carrier_format(number: ExternalNumber, form: str, country: Country) -> str:
    """``number`` as a trunk in ``country`` wants it (``form``, one of
    :data:`NUMBER_FORMATS`): ``e164`` +4681234567, ``e164-noplus`` 4681234567,
    ``national`` 081234567 in Sweden and 004681234567 from Denmark.  Emergency
    numbers leave as dialled, whatever the form."""
    if number.emergency or form == "e164":
        return number.number
    digits = number.number[1:]
    if form == "e164-noplus":
        return digits
    if form != "national":
        raise ValueError(f"unknown number format {form!r}; use one of "
                         f"{', '.join(NUMBER_FORMATS)}")
    if digits.startswith(country.calling_code):  # calling codes are prefix-free (E.164 §6)
        return country.trunk_prefix + digits[len(country.calling_code):]
    return country.international_prefix + digits


def from_carrier(presented: str, form: str, country: Country) -> str:
    """A caller ID a trunk in ``country`` presents in ``form``, in E.164 when it
    can be read as a number; anything else (``anonymous``, a short code)
    unchanged."""
    try:
        digits = clean(presented)
    except NumberError:
        return presented
    if form == "e164-noplus" and digits.isdigit():
        digits = "+" + digits
    try:
        return country.parse(digits).number
    except NumberError:
        return presented
