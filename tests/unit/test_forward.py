"""Which organisation a request to worker 0's HTTP port names (admin_api.forward):
a bearer token (header, or a browser WebSocket's query), a widget's slug."""

from admin_api.forward import _headers, _key
from admin_api.security import token_hash


def scope(path: str, headers: list[tuple[bytes, bytes]] = (), query: bytes = b"") -> dict:  # type: ignore[assignment, type-arg]
    return {"type": "http", "path": path, "headers": list(headers), "query_string": query}


def test_a_bearer_token_names_its_owners_organisation() -> None:
    expected = f"token:{token_hash('abc')}"
    assert _key(scope("/api/calls/live", [(b"authorization", b"Bearer abc")])) == expected
    assert _key(scope("/api/events", query=b"token=abc")) == expected  # a WebSocket's
    assert _key(scope("/api/calls/live", [(b"authorization", b"Basic eDp5")])) is None


def test_a_widget_names_its_organisation_by_slug() -> None:
    assert _key(scope("/api/public/queues/acme/700/wait")) == "slug:acme"
    assert _key(scope("/api/public/queues/")) is None


def test_what_names_no_organisation_stays_on_worker_0() -> None:
    assert _key(scope("/api/login")) is None
    assert _key(scope("/provision/001565aabbcc.cfg")) is None


def test_hop_by_hop_headers_are_not_passed_on() -> None:
    kept = _headers(scope("/api/events", [(b"host", b"pbx"), (b"connection", b"Upgrade"),
                                          (b"upgrade", b"websocket"), (b"x-forwarded-for", b"1.2.3.4"),
                                          (b"authorization", b"Bearer abc")]))
    assert kept == [(b"host", b"pbx"), (b"authorization", b"Bearer abc")]
