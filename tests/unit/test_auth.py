"""Digest authentication (pbx.sip.auth): RFC 7616 vectors, UAC<->UAS round trips, attacks."""

from __future__ import annotations

import time

import pytest

from pbx.sip import auth
from pbx.sip.auth import (
    AuthOutcome,
    AuthResult,
    Credentials,
    DigestAuthenticator,
    build_authorization,
    parse_auth_header,
)

# RFC 7616 §3.9.1, with the folded lines of the RFC's figures kept as CRLF + spaces.
RFC_CHALLENGE = (
    'Digest\r\n    realm="http-auth@example.org",\r\n    qop="auth, auth-int",\r\n'
    "    algorithm={algorithm},\r\n"
    '    nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",\r\n'
    '    opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"'
)
RFC_AUTHORIZATION = (
    'Digest username="Mufasa",\r\n    realm="http-auth@example.org",\r\n'
    '    uri="/dir/index.html",\r\n    algorithm={algorithm},\r\n'
    '    nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",\r\n    nc=00000001,\r\n'
    '    cnonce="f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",\r\n    qop=auth,\r\n'
    '    response="{response}",\r\n'
    '    opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"'
)
RFC_RESPONSES = {
    "MD5": "8ca523f5e9506fed4657c9700eebdbec",
    "SHA-256": "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1",
}

REALM = "pbx.example.com"
SECRET = b"0123456789abcdef0123456789abcdef"
URI = "sip:pbx.example.com"
USERS = {"alice": "correct horse", "bob": 'p"a\\ss'}


def answer(challenge: str, *, password: str = "correct horse", username: str = "alice",
           method: str = "REGISTER", nc: int = 1, cnonce: str | None = "0a4f113b") -> str:
    return build_authorization(challenge, method=method, uri=URI, username=username,
                               password=password, cnonce=cnonce, nc=nc)


def with_param(header: str, name: str, value: str) -> str:
    """``header`` with one auth-param replaced, re-serialised quoted."""
    scheme, params = parse_auth_header(header)
    params[name] = value
    return scheme + " " + ", ".join(f'{k}="{v}"' for k, v in params.items())


@pytest.fixture
def server() -> DigestAuthenticator:
    return DigestAuthenticator(REALM, SECRET)


# --- RFC 7616 §3.9.1 ---------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ["MD5", "SHA-256"])
def test_rfc7616_example_authorization(algorithm: str) -> None:
    header = build_authorization(
        RFC_CHALLENGE.format(algorithm=algorithm),
        method="GET",
        uri="/dir/index.html",
        username="Mufasa",
        password="Circle of Life",
        cnonce="f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
    )
    expected = RFC_AUTHORIZATION.format(algorithm=algorithm, response=RFC_RESPONSES[algorithm])
    assert parse_auth_header(header) == parse_auth_header(expected)
    assert f'response="{RFC_RESPONSES[algorithm]}"' in header
    assert "qop=auth," in header and "nc=00000001," in header  # bare tokens, RFC 7616 §3.4


def test_parse_rfc7616_challenge_with_folded_lines() -> None:
    scheme, params = parse_auth_header(RFC_CHALLENGE.format(algorithm="SHA-256"))
    assert scheme == "Digest"
    assert params == {
        "realm": "http-auth@example.org",
        "qop": "auth, auth-int",
        "algorithm": "SHA-256",
        "nonce": "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
        "opaque": "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS",
    }


# --- parse_auth_header -------------------------------------------------------------------


def test_parse_lowercases_names_keeps_values_and_resolves_quoted_pairs() -> None:
    scheme, params = parse_auth_header(
        'Digest  USERNAME = "a\\"b\\\\c" ,Realm="Ünïcode realm", nc=00000001,algorithm=MD5'
    )
    assert scheme == "Digest"
    assert params == {
        "username": 'a"b\\c',
        "realm": "Ünïcode realm",
        "nc": "00000001",
        "algorithm": "MD5",
    }


@pytest.mark.parametrize(
    "value",
    [
        "",
        "Digest",
        "Digest ",
        'Digest username"alice"',
        "Digest username=",
        'Digest username="alice" realm="x"',
        'Digest username="alice",',
        'Digest ,username="alice"',
        'Digest username="alice',
        'Digest username="a\\"',
        'Digest username="a\nb"',
        "Digest user name=alice",
        'Digest username="a", username="b"',
        'Digest username="a", USERNAME="b"',
    ],
)
def test_parse_rejects_malformed(value: str) -> None:
    with pytest.raises(ValueError):
        parse_auth_header(value)


def test_parse_unterminated_quote_does_not_backtrack() -> None:
    value = 'Digest username="' + "a b\\x" * 20000
    started = time.perf_counter()
    with pytest.raises(ValueError, match="offset 7"):
        parse_auth_header(value)
    assert time.perf_counter() - started < 0.5


def test_parse_error_messages_do_not_echo_the_input() -> None:
    with pytest.raises(ValueError) as error:
        parse_auth_header('Digest username="x\r\n y" evil\r\nVia: injected')
    assert "\n" not in str(error.value) and "injected" not in str(error.value)


def test_credentials_defaults_to_md5_without_qop() -> None:
    credentials = Credentials.from_params(
        {"username": "a", "realm": "r", "nonce": "n", "uri": "sip:r", "response": "00"}
    )
    assert credentials == Credentials("a", "r", "n", "sip:r", "00", "MD5", None, None, None, None)


# --- challenge() -------------------------------------------------------------------------


def test_challenge_lists_algorithms_in_preference_order_with_one_nonce(
    server: DigestAuthenticator,
) -> None:
    values = server.challenge(1000.0)
    parsed = [parse_auth_header(v) for v in values]
    assert [p["algorithm"] for _, p in parsed] == ["SHA-256", "MD5"]
    assert all(scheme == "Digest" for scheme, _ in parsed)
    (_, first), (_, second) = parsed
    assert first["realm"] == REALM and first["qop"] == "auth" and first["opaque"]
    assert first["nonce"] == second["nonce"] and first["opaque"] == second["opaque"]
    assert "stale" not in first
    assert server.challenge(1000.0)[0] != values[0]  # fresh random part each time


def test_challenge_stale_flag_and_rfc2069_mode() -> None:
    server = DigestAuthenticator(REALM, SECRET, algorithms=["MD5"], qop=None)
    (value,) = server.challenge(5.0, stale=True)
    _, params = parse_auth_header(value)
    assert params["stale"] == "true" and "qop" not in params
    assert "stale=true" in value  # a token, not quoted (RFC 7616 §3.3)


def test_challenge_quotes_a_realm_with_quotes() -> None:
    server = DigestAuthenticator('the "main" office', SECRET)
    _, params = parse_auth_header(server.challenge(0.0)[0])
    assert params["realm"] == 'the "main" office'


@pytest.mark.parametrize(
    "kwargs",
    [
        {"realm": "", "secret": SECRET},
        {"realm": REALM, "secret": b"short"},
        {"realm": REALM, "secret": SECRET, "algorithms": ["SHA-1"]},
        {"realm": REALM, "secret": SECRET, "algorithms": []},
        {"realm": REALM, "secret": SECRET, "algorithms": ["MD5", "md5"]},
        {"realm": REALM, "secret": SECRET, "qop": "auth-int"},
        {"realm": REALM, "secret": SECRET, "algorithms": ["MD5-sess"], "qop": None},
        {"realm": REALM, "secret": SECRET, "nonce_ttl": 0},
        {"realm": "bad\r\nrealm", "secret": SECRET},
    ],
)
def test_authenticator_refuses_bad_configuration(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        DigestAuthenticator(**kwargs)


# --- round trips -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "algorithm",
    ["SHA-256", "MD5", "SHA-512-256", "SHA-256-sess", "MD5-sess", "SHA-512-256-sess"],
)
def test_round_trip_with_qop(algorithm: str) -> None:
    server = DigestAuthenticator(REALM, SECRET, algorithms=[algorithm])
    (challenge,) = server.challenge(100.0)
    header = answer(challenge, cnonce=None)
    assert f"algorithm={algorithm}," in header
    assert server.verify("REGISTER", header, USERS.get, 101.0) == AuthResult(
        AuthOutcome.OK, "alice", "authenticated"
    )


@pytest.mark.parametrize("algorithm", ["SHA-256", "MD5"])
def test_round_trip_without_qop(algorithm: str) -> None:
    server = DigestAuthenticator(REALM, SECRET, algorithms=[algorithm], qop=None)
    (challenge,) = server.challenge(100.0)
    header = answer(challenge)
    assert "qop" not in parse_auth_header(header)[1]
    assert "cnonce" not in parse_auth_header(header)[1]
    assert server.verify("REGISTER", header, USERS.get, 101.0).outcome is AuthOutcome.OK


def test_round_trip_with_special_characters_in_password(server: DigestAuthenticator) -> None:
    header = answer(server.challenge(0.0)[0], username="bob", password=USERS["bob"])
    result = server.verify("REGISTER", header, USERS.get, 1.0)
    assert (result.outcome, result.username) == (AuthOutcome.OK, "bob")


def test_client_picks_auth_from_qop_list_and_keeps_opaque(server: DigestAuthenticator) -> None:
    challenge = server.challenge(0.0)[1].replace('qop="auth"', 'qop="auth-int,auth"')
    header = answer(challenge)
    _, params = parse_auth_header(header)
    assert params["qop"] == "auth"
    assert params["opaque"] == parse_auth_header(challenge)[1]["opaque"]
    assert server.verify("REGISTER", header, USERS.get, 1.0).outcome is AuthOutcome.OK


def test_nonce_survives_a_restart_with_the_same_secret(server: DigestAuthenticator) -> None:
    header = answer(server.challenge(50.0)[0])
    restarted = DigestAuthenticator(REALM, SECRET)
    assert restarted.verify("REGISTER", header, USERS.get, 60.0).outcome is AuthOutcome.OK
    other_secret = DigestAuthenticator(REALM, b"another secret of 32 bytes......")
    assert other_secret.verify("REGISTER", header, USERS.get, 60.0).outcome is (
        AuthOutcome.CHALLENGE
    )


def test_response_is_bound_to_method_and_uri(server: DigestAuthenticator) -> None:
    header = answer(server.challenge(0.0)[0], method="REGISTER")
    assert server.verify("INVITE", header, USERS.get, 1.0).outcome is AuthOutcome.FAILED
    moved = with_param(header, "uri", "sip:elsewhere.example.com")
    assert server.verify("REGISTER", moved, USERS.get, 1.0).outcome is AuthOutcome.FAILED


# --- stale nonces ------------------------------------------------------------------------


def test_expired_nonce_with_right_password_is_stale(server: DigestAuthenticator) -> None:
    header = answer(server.challenge(1000.0)[0])
    assert server.verify("REGISTER", header, USERS.get, 1300.0).outcome is AuthOutcome.OK
    header = answer(server.challenge(1000.0)[0])
    result = server.verify("REGISTER", header, USERS.get, 1300.5)
    assert result == AuthResult(AuthOutcome.STALE, "alice", "nonce expired")


def test_expired_nonce_with_wrong_password_fails(server: DigestAuthenticator) -> None:
    """stale=true only for a UAC that knows the password (RFC 7616 §3.3)."""
    header = answer(server.challenge(1000.0)[0], password="guess")
    assert server.verify("REGISTER", header, USERS.get, 2000.0).outcome is AuthOutcome.FAILED


def test_short_ttl_is_honoured() -> None:
    server = DigestAuthenticator(REALM, SECRET, nonce_ttl=10.0)
    header = answer(server.challenge(0.0)[0])
    assert server.verify("REGISTER", header, USERS.get, 10.5).outcome is AuthOutcome.STALE


# --- forged or foreign challenges --------------------------------------------------------


def test_forged_nonce_is_challenged(server: DigestAuthenticator) -> None:
    challenge = server.challenge(0.0)[0]
    nonce = parse_auth_header(challenge)[1]["nonce"]
    # Move the timestamp forward: same length and alphabet, the HMAC no longer fits.
    forged = nonce[:5] + ("A" if nonce[5] != "A" else "B") + nonce[6:]
    header = answer(challenge.replace(nonce, forged))
    result = server.verify("REGISTER", header, USERS.get, 1.0)
    assert result == AuthResult(AuthOutcome.CHALLENGE, None, "nonce not issued here")


@pytest.mark.parametrize(
    "nonce", ["", "abc", "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", "é" * 48, "+" * 48]
)
def test_foreign_nonce_shapes_are_challenged(server: DigestAuthenticator, nonce: str) -> None:
    challenge = with_param(server.challenge(0.0)[0], "nonce", nonce)
    header = answer(challenge)
    assert server.verify("REGISTER", header, USERS.get, 1.0).outcome is AuthOutcome.CHALLENGE


def test_nonce_of_another_realm_is_challenged() -> None:
    sales = DigestAuthenticator("sales.example.com", SECRET)
    support = DigestAuthenticator(REALM, SECRET)
    nonce = parse_auth_header(sales.challenge(0.0)[0])[1]["nonce"]
    challenge = with_param(support.challenge(0.0)[0], "nonce", nonce)
    header = answer(challenge)
    assert support.verify("REGISTER", header, USERS.get, 1.0).outcome is AuthOutcome.CHALLENGE


def test_realm_mismatch_is_challenged(server: DigestAuthenticator) -> None:
    challenge = with_param(server.challenge(0.0)[0], "realm", "other.example.com")
    result = server.verify("REGISTER", answer(challenge), USERS.get, 1.0)
    assert (result.outcome, result.reason) == (AuthOutcome.CHALLENGE, "realm is not ours")


def test_tampered_opaque_is_challenged_and_missing_opaque_is_tolerated(
    server: DigestAuthenticator,
) -> None:
    challenge = server.challenge(0.0)[0]
    tampered = with_param(challenge, "opaque", "xyz")
    assert server.verify("REGISTER", answer(tampered), USERS.get, 1.0).outcome is (
        AuthOutcome.CHALLENGE
    )
    scheme, params = parse_auth_header(challenge)
    del params["opaque"]
    bare = scheme + " " + ", ".join(f'{k}="{v}"' for k, v in params.items())
    assert server.verify("REGISTER", answer(bare), USERS.get, 1.0).outcome is AuthOutcome.OK


def test_algorithm_not_offered_is_challenged() -> None:
    """With MD5 switched off, an MD5 answer is not a downgrade path (RFC 8760 §2.4)."""
    server = DigestAuthenticator(REALM, SECRET, algorithms=["SHA-256"])
    md5_challenge = server.challenge(0.0)[0].replace("algorithm=SHA-256", "algorithm=MD5")
    result = server.verify("REGISTER", answer(md5_challenge), USERS.get, 1.0)
    assert (result.outcome, result.reason) == (AuthOutcome.CHALLENGE, "algorithm not offered")


def test_other_scheme_is_challenged(server: DigestAuthenticator) -> None:
    result = server.verify("REGISTER", 'Bearer realm="x", token="abc"', USERS.get, 1.0)
    assert result.outcome is AuthOutcome.CHALLENGE


# --- replays -------------------------------------------------------------------------------


def test_nonce_count_must_increase(server: DigestAuthenticator) -> None:
    challenge = server.challenge(0.0)[0]
    first = answer(challenge, nc=1)
    assert server.verify("REGISTER", first, USERS.get, 1.0).outcome is AuthOutcome.OK
    replay = server.verify("REGISTER", first, USERS.get, 2.0)
    assert replay == AuthResult(AuthOutcome.STALE, "alice", "nonce count already used")
    assert server.verify("REGISTER", answer(challenge, nc=3), USERS.get, 3.0).outcome is (
        AuthOutcome.OK
    )
    late = answer(challenge, nc=2)  # below the highest count seen
    assert server.verify("REGISTER", late, USERS.get, 4.0).outcome is AuthOutcome.STALE


def test_failed_attempt_does_not_burn_nonce_counts(server: DigestAuthenticator) -> None:
    """An attacker's nc=ffffffff with a wrong response must not lock out the real UAC."""
    challenge = server.challenge(0.0)[0]
    attack = answer(challenge, nc=0xFFFFFFFF, password="guess")
    assert server.verify("REGISTER", attack, USERS.get, 1.0).outcome is AuthOutcome.FAILED
    assert server.verify("REGISTER", answer(challenge), USERS.get, 2.0).outcome is AuthOutcome.OK


def test_nc_zero_is_never_accepted(server: DigestAuthenticator) -> None:
    header = answer(server.challenge(0.0)[0]).replace("nc=00000001", "nc=00000000")
    # The response no longer fits the nc, so recompute it as a UAC would with nc=0.
    header = with_param(header, "response", auth._request_digest(
        auth._ALGORITHMS["SHA-256"], username="alice", realm=REALM, password=USERS["alice"],
        method="REGISTER", uri=URI, nonce=parse_auth_header(header)[1]["nonce"], qop="auth",
        nc="00000000", cnonce="0a4f113b",
    ))
    assert server.verify("REGISTER", header, USERS.get, 1.0).outcome is AuthOutcome.STALE


def test_rfc2069_nonce_is_accepted_once() -> None:
    server = DigestAuthenticator(REALM, SECRET, qop=None)
    header = answer(server.challenge(0.0)[0])
    assert server.verify("REGISTER", header, USERS.get, 1.0).outcome is AuthOutcome.OK
    assert server.verify("REGISTER", header, USERS.get, 2.0).outcome is AuthOutcome.STALE


def test_replay_memory_is_pruned_when_nonces_expire() -> None:
    server = DigestAuthenticator(REALM, SECRET, nonce_ttl=30.0)
    for second in range(100):
        header = answer(server.challenge(float(second))[0])
        assert server.verify("REGISTER", header, USERS.get, second + 0.5).outcome is (
            AuthOutcome.OK
        )
    assert len(server._nonce_counts) <= 31
    late = answer(server.challenge(1000.0)[0])
    assert server.verify("REGISTER", late, USERS.get, 1000.0).outcome is AuthOutcome.OK
    assert len(server._nonce_counts) == 1


# --- failures look alike ---------------------------------------------------------------------


def test_unknown_user_and_wrong_password_are_indistinguishable(
    server: DigestAuthenticator, monkeypatch: pytest.MonkeyPatch
) -> None:
    digests: list[str] = []
    real = auth._request_digest

    def counting(*args: object, **kwargs: object) -> str:
        digests.append(kwargs["username"])  # type: ignore[arg-type]
        return real(*args, **kwargs)  # type: ignore[arg-type]

    header = answer(server.challenge(0.0)[0], password="x")
    monkeypatch.setattr(auth, "_request_digest", counting)
    wrong_password = server.verify("REGISTER", header, USERS.get, 1.0)
    unknown_user = server.verify("REGISTER", header, {"mallory": "x"}.get, 1.0)
    assert wrong_password == unknown_user
    assert wrong_password == AuthResult(AuthOutcome.FAILED, "alice", "wrong username or password")
    assert digests == ["alice", "alice"]  # the unknown user cost a hash too


def test_unknown_user_never_matches_even_with_the_dummy_password(
    server: DigestAuthenticator,
) -> None:
    header = answer(server.challenge(0.0)[0], password=server._dummy_password)
    assert server.verify("REGISTER", header, lambda _: None, 1.0).outcome is AuthOutcome.FAILED


# --- malformed answers -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda h: "Digest", "scheme and parameters"),
        (lambda h: h.replace("response=", "resp="), "lack response"),
        (lambda h: h.replace(", nc=00000001", ""), "nc"),
        (lambda h: h.replace("nc=00000001", "nc=1"), "nc"),
        (lambda h: h.replace("nc=00000001", "nc=0000000g"), "nc"),
        (lambda h: with_param(h, "cnonce", ""), "cnonce"),
        (lambda h: h.replace("algorithm=SHA-256", "algorithm=SHA-1"), "unknown digest algorithm"),
        (lambda h: h.replace("qop=auth", "qop=auth-int"), "unsupported qop"),
        (lambda h: h + ', username="eve"', "twice"),
    ],
)
def test_malformed_answers_are_bad_requests(
    server: DigestAuthenticator, mutate: object, reason: str
) -> None:
    header = mutate(answer(server.challenge(0.0)[0]))  # type: ignore[operator]
    result = server.verify("REGISTER", header, USERS.get, 1.0)
    assert result.outcome is AuthOutcome.BAD_REQUEST
    assert reason in result.reason and result.username is None


def test_sess_algorithm_without_qop_is_a_bad_request() -> None:
    header = (
        'Digest username="a", realm="r", nonce="n", uri="sip:r", response="0", algorithm=MD5-sess'
    )
    result = DigestAuthenticator("r", SECRET).verify("REGISTER", header, USERS.get, 0.0)
    assert result.outcome is AuthOutcome.BAD_REQUEST


# --- client side refusals ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "challenge",
    [
        'Basic realm="x"',
        'Digest realm="x", nonce="n", qop="auth-int"',
        'Digest realm="x", nonce="n", algorithm=SHA-1',
        'Digest realm="x", nonce="n", algorithm=MD5-sess',
        'Digest nonce="n"',
        'Digest realm="x"',
    ],
)
def test_build_authorization_refuses_unanswerable_challenges(challenge: str) -> None:
    with pytest.raises(ValueError):
        answer(challenge)


def test_build_authorization_refuses_header_injection_and_bad_nc(
    server: DigestAuthenticator,
) -> None:
    challenge = server.challenge(0.0)[0]
    with pytest.raises(ValueError, match="CR or LF"):
        answer(challenge, username="alice\r\nVia: x")
    with pytest.raises(ValueError, match="nc"):
        answer(challenge, nc=0)
    with pytest.raises(ValueError, match="nc"):
        answer(challenge, nc=0x100000000)


def test_build_authorization_makes_fresh_cnonce_and_formats_nc(
    server: DigestAuthenticator,
) -> None:
    challenge = server.challenge(0.0)[0]
    first, second = (parse_auth_header(answer(challenge, cnonce=None, nc=26))[1] for _ in "ab")
    assert first["cnonce"] != second["cnonce"] and len(first["cnonce"]) >= 16
    assert first["nc"] == "0000001a"
