"""Property-based tests: whatever a connection or a token endpoint holds, the answer is a value or a clear error.

* The settings parser, given any extras and connection fields, returns settings or raises
  :class:`JwtBearerConfigError` — never another exception (``OverflowError``, ``TypeError``...).
* The token-response parser, given any status, headers and body, returns an :class:`AccessToken`
  whose times can be computed, or raises :class:`TokenEndpointError` — never another exception.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airflow_jwt_provider.connection.fields import ALL_FIELDS
from airflow_jwt_provider.connection.kinds import GrantType
from airflow_jwt_provider.connection.parser import parse_connection
from airflow_jwt_provider.exceptions import JwtBearerConfigError, TokenEndpointError
from airflow_jwt_provider.http.wire import build_response
from airflow_jwt_provider.tokens.access_token import AccessToken
from airflow_jwt_provider.tokens.client_auth import (
    ClientAuthentication,
)
from airflow_jwt_provider.tokens.endpoint import TokenClient, TokenRequest

EXTRA_KEYS = tuple(ALL_FIELDS)

#: JSON values, with the numbers and strings that break naive code.
_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**40), max_value=10**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["inf", "-inf", "nan", "1e400", "Infinity", "0", "-1", "60", "3600.5", "", " ", "true", "null"]),
    st.text(max_size=40),
)
_json = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)
#: Mostly the real keys (an unknown key is refused first, which would end most examples early).
_key_names = st.one_of(st.sampled_from(EXTRA_KEYS), st.sampled_from(EXTRA_KEYS), st.text(max_size=15))


@dataclass
class _Conn:
    """What the settings parser reads of a connection (any values, as a secrets backend could hold)."""

    conn_id: str
    host: Any
    login: Any
    password: Any
    schema: Any
    port: Any
    extra: Any

    @property
    def extra_dejson(self) -> dict[str, Any]:
        return json.loads(self.extra) if isinstance(self.extra, str) and self.extra.strip() else {}


@pytest.fixture
def no_masking(monkeypatch: pytest.MonkeyPatch) -> None:
    """Thousands of generated secrets would only grow this test process's masker."""
    for module in (
        "airflow_jwt_provider.connection.parser",
        "airflow_jwt_provider.connection._http_group",
        "airflow_jwt_provider.signing.signers.local",
        "airflow_jwt_provider.signing.signers.pkcs11",
    ):
        monkeypatch.setattr(f"{module}.mask_stable_secret", lambda value: None)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    extras=st.dictionaries(_key_names, _json, max_size=8),
    with_key=st.booleans(),
    host=st.one_of(st.none(), st.text(max_size=30), st.just("https://api.example.com/v2")),
    login=st.one_of(st.none(), st.text(max_size=20)),
    password=st.one_of(st.none(), st.text(max_size=20)),
    schema=st.one_of(st.none(), st.text(max_size=8)),
    port=st.one_of(st.none(), st.integers(min_value=-5, max_value=10**6)),
    as_text=st.booleans(),
)
def test_settings_parser_gives_settings_or_a_config_error(
    no_masking: None,
    extras: dict[str, Any],
    with_key: bool,
    host: Any,
    login: Any,
    password: Any,
    schema: Any,
    port: Any,
    as_text: bool,
) -> None:
    if with_key:  # reach the checks that come after the key source and the token URL
        extras = {"auth_url": "https://login.example.com/token", "key_file": "/k.p12", **extras}
    extra: Any = json.dumps(extras, allow_nan=True) if as_text else extras
    conn = _Conn("prop", host, login, password, schema, port, extra if as_text else json.dumps(extras))
    try:
        parsed = parse_connection(conn)
    except JwtBearerConfigError as error:
        refused: JwtBearerConfigError | None = error
    else:
        refused = None
    if refused is not None:
        assert str(refused).startswith("Connection 'prop': ") or refused.field is not None
        return
    assert 0 < parsed.http.timeout <= 3600
    assert 0 < parsed.lifetime <= 86400
    assert 0 < parsed.default_token_lifetime <= 86400
    repr(parsed)
    parsed.http  # noqa: B018 -- derived values compute


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    values=st.dictionaries(
        st.sampled_from(["lifetime", "timeout", "default_token_lifetime"]), _scalars, min_size=1, max_size=3
    ),
    as_text=st.booleans(),
)
def test_every_number_is_range_checked_where_it_enters(no_masking: None, values: dict[str, Any], as_text: bool) -> None:
    extras = {"auth_url": "https://login.example.com/token", "key_file": "/k.p12", **values}
    if as_text:  # a URI connection carries every extra as a string
        extras = {k: v if v is None or isinstance(v, str) else json.dumps(v, allow_nan=True) for k, v in extras.items()}
    conn = _Conn("prop", None, "client", None, None, None, json.dumps(extras, allow_nan=True))
    try:
        parsed = parse_connection(conn)
    except JwtBearerConfigError as error:
        assert_names_a_number_field(error, values)
        return
    assert 0 < parsed.http.timeout <= 3600
    assert 0 < parsed.lifetime <= 86400
    assert 0 < parsed.default_token_lifetime <= 86400


def assert_names_a_number_field(error: JwtBearerConfigError, values: dict[str, Any]) -> None:
    assert error.field in values
    assert str(error).startswith(f"Connection 'prop': {error.field} ")


_CLIENT = TokenClient("https://login.example.com/token", ClientAuthentication())
_SENT_ASSERTION = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJib2IifQ.c2lnbmF0dXJl"
_SENT_SECRET = "s3cr3t-client-secret"
#: What a server that repeats its input puts in an error text.
_echoes = st.sampled_from(
    [
        f"bad secret {_SENT_SECRET}",
        f"assertion {_SENT_ASSERTION} refused",
        f"client_secret={_SENT_SECRET}&assertion={_SENT_ASSERTION}",
        "multi\nline\r\nforged: log line",
    ]
)

_token_bodies = st.one_of(
    _json,
    st.fixed_dictionaries(
        {"access_token": st.one_of(_scalars, st.just("tok-" + "x" * 30))},
        optional={
            "token_type": st.one_of(_scalars, st.sampled_from(["bearer", "Bearer", "BEARER", "mac", "DPoP", "N_A"])),
            "expires_in": _scalars,
            "scope": _json,
            "error": st.one_of(_json, _echoes),
            "error_description": st.one_of(_json, _echoes),
            "error_uri": st.one_of(_json, _echoes),
            "instance_url": _json,
        },
    ),
)


@settings(max_examples=500, deadline=None)
@given(
    status=st.sampled_from([200, 200, 200, 201, 204, 301, 400, 401, 403, 404, 429, 500, 502, 503]),
    body=_token_bodies,
    raw=st.one_of(st.none(), st.binary(max_size=60)),
    content_type=st.sampled_from(["application/json", "text/html", "", "application/json; charset=utf-8"]),
    date=st.one_of(st.none(), st.text(max_size=40), st.just("Mon, 30 Nov 2026 05:00:00 GMT")),
)
def test_token_response_parser_gives_a_token_or_a_token_endpoint_error(
    status: int, body: Any, raw: bytes | None, content_type: str, date: str | None
) -> None:
    content = raw if raw is not None else json.dumps(body, allow_nan=True).encode()
    headers = {"Content-Type": content_type}
    if date is not None:
        headers["Date"] = date
    if raw is not None and status in (301, 302):
        headers["Location"] = raw.decode("latin-1")
    response: requests.Response = build_response(
        status=status,
        reason="X",
        headers=headers,
        url="https://login.example.com/token",
        method="POST",
        body=content,
        encoding="utf-8",
    )
    try:
        token = _CLIENT._parse(
            response,
            sent={"assertion": _SENT_ASSERTION, "client_secret": _SENT_SECRET},
            request=TokenRequest(GrantType.JWT_BEARER),
        )
    except TokenEndpointError as error:
        refused: TokenEndpointError | None = error
    else:
        refused = None
    if refused is not None:
        text = f"{refused} {refused.error_description} {refused.error_uri} {refused.hint}"
        assert _SENT_SECRET not in text
        assert _SENT_ASSERTION not in text
        assert "\n" not in str(refused)  # a server's answer cannot forge log lines
        return
    assert isinstance(token, AccessToken)
    assert token.token_type == "Bearer"
    assert token.lifetime.total_seconds() > 0
    token.valid  # noqa: B018 -- times compute without overflow
    token.expired  # noqa: B018
    assert token.authorization_header.startswith("Bearer ")
