"""Bencode, the encoding of rtpengine's ng control protocol (BEP 3).

Integers ``i42e``, byte strings ``4:spam``, lists ``l...e`` and dictionaries
``d...e`` with byte-string keys in sorted order.  Strings go out as UTF-8 and
come back as ``str`` when they decode as UTF-8 (rtpengine's replies are text:
SDP, results, reasons), else as ``bytes``.
"""

from __future__ import annotations

Value = int | str | bytes | list["Value"] | dict[str, "Value"]


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
    """The value ``data`` bencodes; ValueError if it is malformed or has trailing bytes."""
    value, end = _decode(data, 0)
    if end != len(data):
        raise ValueError(f"trailing bytes after bencoded value at offset {end}")
    return value


def _decode(data: bytes, at: int) -> tuple[Value, int]:
    try:
        kind = data[at:at + 1]
        if kind == b"i":
            end = data.index(b"e", at)
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
                key, at = _decode(data, at)
                if not isinstance(key, (str, bytes)):
                    raise ValueError(f"dictionary key at offset {at} is not a string")
                entries[key if isinstance(key, str) else key.decode("latin-1")], at = \
                    _decode(data, at)
            return entries, at + 1
        if kind.isdigit():
            colon = data.index(b":", at)
            start = colon + 1
            end = start + int(data[at:colon])
            if end > len(data):
                raise ValueError(f"string at offset {at} runs past the end")
            raw = data[start:end]
            try:
                return raw.decode(), end
            except UnicodeDecodeError:
                return raw, end
    except (IndexError, ValueError) as exc:
        raise ValueError(f"malformed bencode at offset {at}: {exc}") from None
    raise ValueError(f"malformed bencode at offset {at}: unexpected {kind!r}")
