"""Bencode, the encoding of rtpengine's ng control protocol (BEP 3).

Integers ``i42e``, byte strings ``4:spam``, lists ``l...e`` and dictionaries
``d...e`` with byte-string keys in sorted order.  Strings go out as UTF-8 and
come back as ``str`` when they decode as UTF-8 (rtpengine's replies are text:
SDP, results, reasons), else as ``bytes``.
"""

from __future__ import annotations

Value = int | str | bytes | list["Value"] | dict[str, "Value"]


class BencodeError(ValueError):
    """Bytes that are not one well-formed bencoded value."""


def encode(value: Value) -> bytes:
    """The bencoding of ``value`` (bool is refused: bencode has no such type)."""
    out: list[bytes] = []
    _encode(value, out)
    return b"".join(out)


def _encode(value: Value, out: list[bytes]) -> None:
    if isinstance(value, bool):
        raise TypeError("bencode has no booleans")
    if isinstance(value, int):
        out.append(b"i%de" % value)
    elif isinstance(value, (str, bytes)):
        raw = value.encode() if isinstance(value, str) else value
        out.append(b"%d:" % len(raw))
        out.append(raw)
    elif isinstance(value, list):
        out.append(b"l")
        for item in value:
            _encode(item, out)
        out.append(b"e")
    elif isinstance(value, dict):
        out.append(b"d")
        for key in sorted(value, key=lambda k: k.encode()):
            _encode(key, out)
            _encode(value[key], out)
        out.append(b"e")
    else:
        raise TypeError(f"cannot bencode {type(value).__name__}")


def decode(data: bytes) -> Value:
    """The value ``data`` bencodes; BencodeError if it is malformed or has trailing bytes."""
    value, end = _decode(data, 0)
    if end != len(data):
        raise BencodeError(f"trailing bytes after bencoded value at offset {end}")
    return value


def _decode(data: bytes, at: int) -> tuple[Value, int]:
    try:
        kind = data[at:at + 1]
        if kind == b"i":
            end = data.find(b"e", at)
            if end < 0:
                raise ValueError("integer without its closing 'e'")
            return int(data[at + 1:end]), end + 1
        if kind == b"l":
            items: list[Value] = []
            at += 1
            while data[at:at + 1] != b"e":
                item, at = _decode(data, at)
                items.append(item)
            return items, at + 1
        if kind == b"d":
            entries: dict[str, Value] = {}
            at += 1
            while data[at:at + 1] != b"e":
                raw_key, at = _string(data, at)
                entries[raw_key.decode()], at = _decode(data, at)
            return entries, at + 1
        if kind.isdigit():
            raw, end = _string(data, at)
            try:
                return raw.decode(), end
            except UnicodeDecodeError:
                return raw, end
    except BencodeError:
        raise
    except (IndexError, ValueError) as exc:
        raise BencodeError(f"malformed bencode at offset {at}: {exc}") from None
    raise BencodeError(f"malformed bencode at offset {at}: unexpected {kind!r}")


def _string(data: bytes, at: int) -> tuple[bytes, int]:
    """The byte string ``<length>:<bytes>`` at ``at`` and the offset after it."""
    colon = data.find(b":", at)
    if colon < 0:
        raise ValueError(f"string length at offset {at} without its ':'")
    length = data[at:colon]
    if not length.isdigit():
        raise ValueError(f"expected a string length at offset {at}, got {length[:10]!r}")
    end = colon + 1 + int(length)
    if end > len(data):
        raise ValueError(f"string at offset {at} runs past the end")
    return data[colon + 1:end], end
