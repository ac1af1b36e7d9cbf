"""Connection parsing: every documented error names its field and says what to do."""

from __future__ import annotations

import json
from typing import Any

import pytest
from airflow.sdk import Connection

from airflow_jwt_provider.connection.parser import parse_connection
from airflow_jwt_provider.connection.settings import JwtBearerSettings
from airflow_jwt_provider.exceptions import JwtBearerConfigError

BASE_EXTRA = {"auth_url": "https://login.example.com/oauth2/token", "key_file": "/keys/k.p12"}


def parse(extra: dict[str, Any] | None = None, **fields: Any) -> JwtBearerSettings:
    fields.setdefault("login", "client-1")
    conn = Connection(conn_id="my_conn", conn_type="jwt_bearer", extra=json.dumps(extra), **fields)
    return parse_connection(conn)


def error_of(extra: dict[str, Any] | None = None, **fields: Any) -> JwtBearerConfigError:
    with pytest.raises(JwtBearerConfigError) as info:
        parse(extra, **fields)
    assert str(info.value).startswith("Connection 'my_conn': ")
    return info.value


def test_defaults() -> None:
    settings = parse(BASE_EXTRA)
    assert settings.client_id == "client-1"
    assert settings.lifetime == 60
    assert settings.claims == {}
    assert settings.client_auth == "none"
    assert settings.http.verify is True
    assert settings.http.timeout == 30.0
    assert settings.audience is None
    assert settings.signer.source.path == "/keys/k.p12"  # type: ignore[attr-defined]
    assert settings.grant_type == "urn:ietf:params:oauth:grant-type:jwt-bearer"


def test_form_nulls_mean_unset() -> None:
    # What the Airflow 3.3 form stores: every declared field, null when left empty.
    extra = {**BASE_EXTRA, "subject": None, "lifetime": None, "claims": None, "scope": "", "x5t": None}
    settings = parse(extra)
    assert settings.subject is None
    assert settings.lifetime == 60
    assert settings.claims == {}


def test_uri_style_strings_are_converted() -> None:
    extra = {
        **BASE_EXTRA,
        "lifetime": "120",
        "x5t": "true",
        "verify": "false",
        "timeout": "12.5",
        "claims": '{"box_sub_type": "enterprise"}',
        "audience": '["https://a", "https://b"]',
        "auth_params": '{"resource": "https://api"}',
    }
    settings = parse(extra)
    assert settings.lifetime == 120
    assert settings.x5t is True
    assert settings.http.verify is False
    assert settings.http.timeout == 12.5
    assert settings.claims == {"box_sub_type": "enterprise"}
    assert settings.audience == ("https://a", "https://b")
    assert settings.auth_params == {"resource": "https://api"}


def test_prefixed_form_keys_are_accepted() -> None:
    settings = parse({"extra__jwt_bearer__auth_url": BASE_EXTRA["auth_url"], "key_file": "/k.pem"})
    assert settings.auth_url == BASE_EXTRA["auth_url"]


def test_client_secret_post_is_the_default_with_a_secret() -> None:
    assert parse(BASE_EXTRA, password="top-secret").client_auth == "client_secret_post"


def test_verify_accepts_a_ca_bundle_and_proxies_a_url() -> None:
    settings = parse({**BASE_EXTRA, "verify": "/etc/ssl/ca.pem", "proxies": "http://proxy:3128"})
    assert settings.http.verify == "/etc/ssl/ca.pem"
    assert settings.http.proxies == {"http": "http://proxy:3128", "https": "http://proxy:3128"}


def test_host_schema_and_port_make_the_base_url() -> None:
    assert parse(BASE_EXTRA, host="api.example.com").api_base_url == "https://api.example.com"
    assert parse(BASE_EXTRA, host="api.example.com", schema="http", port=8080).api_base_url == (
        "http://api.example.com:8080"
    )
    assert parse(BASE_EXTRA, host="https://api.box.com/2.0/").api_base_url == "https://api.box.com/2.0"
    assert parse(BASE_EXTRA, host="https://h/v1", port=444).api_base_url == "https://h:444/v1"


def test_secrets_are_not_in_repr() -> None:
    settings = parse(
        {**BASE_EXTRA, "keystore_password": "store-pw-1", "key_password": "key-pw-22"}, password="client-secret-3"
    )
    text = repr(settings)
    for secret in ("store-pw-1", "key-pw-22", "client-secret-3"):
        assert secret not in text


@pytest.mark.parametrize(
    ("extra", "fields", "field", "message"),
    [
        (
            {**BASE_EXTRA, "keystore_pasword": "x"},
            {},
            "extra key 'keystore_pasword'",
            "did you mean 'keystore_password'",
        ),
        (
            {**BASE_EXTRA, "colour": "x"},
            {},
            "extra key 'colour'",
            "accepted keys: preset, auth_url, auth_issuer, grant",
        ),
        ({"key_file": "/k"}, {}, "auth_url", "(the token endpoint URL) is required"),
        ({**BASE_EXTRA, "auth_url": "login.example.com/token"}, {}, "auth_url", "absolute http(s) URL"),
        ({"auth_url": BASE_EXTRA["auth_url"]}, {}, "key_file", "neither is private_key"),
        ({**BASE_EXTRA, "private_key": "-----BEGIN PRIVATE KEY-----"}, {}, "key_file", "both set; keep only one"),
        ({**BASE_EXTRA, "lifetime": "soon"}, {}, "lifetime", "whole number of seconds"),
        ({**BASE_EXTRA, "lifetime": 0}, {}, "lifetime", "must be above 0 and at most 86400 seconds"),
        ({**BASE_EXTRA, "claims": "[1, 2]"}, {}, "claims", "must be a JSON object"),
        ({**BASE_EXTRA, "claims": "{oops"}, {}, "claims", "not valid JSON"),
        ({**BASE_EXTRA, "claims": {"exp": 1}}, {}, "claims.exp", "use the 'lifetime' setting"),
        ({**BASE_EXTRA, "claims": {"jti": "x"}}, {}, "claims.jti", "the provider sets it"),
        ({**BASE_EXTRA, "algorithm": "HS256"}, {}, "algorithm", "use one of: RS256"),
        ({**BASE_EXTRA, "keystore_type": "jkss"}, {}, "keystore_type", "use one of: jks, jceks"),
        ({**BASE_EXTRA, "client_auth": "secret"}, {}, "client_auth", "use one of: none"),
        ({**BASE_EXTRA, "client_auth": "client_secret_basic"}, {}, "password", "client secret) is empty"),
        ({**BASE_EXTRA, "x5t": "maybe"}, {}, "x5t", "must be true or false"),
        ({**BASE_EXTRA, "timeout": -3}, {}, "timeout", "must be above 0 and at most 3600 seconds"),
        # non-finite and out-of-range numbers, in every form a connection can carry them
        ({**BASE_EXTRA, "timeout": float("inf")}, {}, "timeout", "must be a number of seconds"),
        ({**BASE_EXTRA, "timeout": "nan"}, {}, "timeout", "must be a number of seconds"),
        ({**BASE_EXTRA, "timeout": "inf"}, {}, "timeout", "must be a number of seconds"),
        ({**BASE_EXTRA, "timeout": 1e9}, {}, "timeout", "at most 3600 seconds"),
        ({**BASE_EXTRA, "lifetime": float("inf")}, {}, "lifetime", "whole number of seconds"),
        ({**BASE_EXTRA, "lifetime": "1e400"}, {}, "lifetime", "whole number of seconds"),
        ({**BASE_EXTRA, "lifetime": 10**30}, {}, "lifetime", "at most 86400 seconds"),
        ({**BASE_EXTRA, "lifetime": 60.5}, {}, "lifetime", "whole number of seconds"),
        ({**BASE_EXTRA, "default_token_lifetime": "-1"}, {}, "default_token_lifetime", "above 0"),
        ({**BASE_EXTRA, "default_token_lifetime": [1]}, {}, "default_token_lifetime", "whole number"),
        ({**BASE_EXTRA, "audience": [1]}, {}, "audience", "non-empty list of strings"),
        ({**BASE_EXTRA, "auth_params": {"a": ["b"]}}, {}, "auth_params.a", "string or a number"),
        ({**BASE_EXTRA, "proxies": {"https": 3}}, {}, "proxies", "proxy URL or an object"),
        ({**BASE_EXTRA, "preset": "dropbox"}, {}, "preset", "use one of: box, salesforce"),
        (BASE_EXTRA, {"login": None}, "login", "(the client id) is empty"),
        (BASE_EXTRA, {"host": "api.example.com", "schema": "api"}, "schema", "must be http or https"),
    ],
)
def test_errors_name_the_field(extra: dict[str, Any], fields: dict[str, Any], field: str, message: str) -> None:
    error = error_of(extra, **fields)
    assert error.field == field
    assert f"Connection 'my_conn': {field} " in str(error)
    assert message in str(error)


def test_invalid_extra_json() -> None:
    conn = Connection(conn_id="my_conn", conn_type="jwt_bearer", login="c", extra="{not json")
    with pytest.raises(JwtBearerConfigError, match="extra is not valid JSON") as info:
        parse_connection(conn)
    assert info.value.field == "extra"


def test_secret_values_are_not_in_error_messages() -> None:
    error = error_of({**BASE_EXTRA, "keystore_password": "hunter2-secret", "lifetime": "x"}, password="pw-secret-9")
    assert "hunter2-secret" not in str(error)
    assert "pw-secret-9" not in str(error)


def test_issuer_may_replace_the_client_id() -> None:
    settings = parse({**BASE_EXTRA, "issuer": "svc@example.com"}, login=None)
    assert settings.issuer == "svc@example.com"
    assert settings.client_id is None


def test_proxy_credentials_are_not_in_any_repr() -> None:
    url = "http://proxy-user:pr0xy-pa55@proxy.example.com:3128"
    settings = parse({**BASE_EXTRA, "proxies": {"https": url}})
    assert settings.http.proxies == {"https": url}
    for text in (repr(settings), repr(settings.http), str(settings)):
        assert "pr0xy-pa55" not in text
        assert "proxy-user" not in text


# --------------------------------------------------------------------------- token cache


def test_token_cache_defaults_to_memory() -> None:
    cache = parse(BASE_EXTRA).token_cache
    assert (cache.kind, cache.conn_id, cache.directory, cache.wait, cache.io_timeout) == (
        "memory",
        "redis_default",
        None,
        10.0,
        0.5,
    )
    assert not cache.shared


def test_token_cache_extras_win_over_the_configuration_section(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW__JWT_BEARER__TOKEN_CACHE", "redis")
    monkeypatch.setenv("AIRFLOW__JWT_BEARER__TOKEN_CACHE_CONN_ID", "broker_redis")
    monkeypatch.setenv("AIRFLOW__JWT_BEARER__TOKEN_CACHE_DIR", "/var/cache/jwt")
    monkeypatch.setenv("AIRFLOW__JWT_BEARER__TOKEN_CACHE_WAIT", "4.5")
    monkeypatch.setenv("AIRFLOW__JWT_BEARER__TOKEN_CACHE_IO_TIMEOUT", "0.2")
    configured = parse(BASE_EXTRA).token_cache
    assert (configured.kind, configured.conn_id, configured.directory) == ("redis", "broker_redis", "/var/cache/jwt")
    assert (configured.wait, configured.io_timeout) == (4.5, 0.2)
    assert configured.shared
    own = parse({**BASE_EXTRA, "token_cache": "File", "token_cache_dir": "/tmp/mine"}).token_cache
    assert (own.kind, own.directory, own.conn_id) == ("file", "/tmp/mine", "broker_redis")
    assert parse({**BASE_EXTRA, "token_cache": "memory"}).token_cache.kind == "memory"
    assert parse({**BASE_EXTRA, "token_cache_conn_id": "other"}).token_cache.conn_id == "other"


def test_token_cache_errors_name_the_extra_or_the_configuration_option(monkeypatch: pytest.MonkeyPatch) -> None:
    wrong = error_of({**BASE_EXTRA, "token_cache": "memcached"})
    assert wrong.field == "token_cache"
    assert "token_cache is 'memcached'; use one of: memory, file, redis" in str(wrong)
    assert "did you mean 'token_cache'" in str(error_of({**BASE_EXTRA, "token_cach": "redis"}))
    monkeypatch.setenv("AIRFLOW__JWT_BEARER__TOKEN_CACHE", "disk")
    configured = error_of(BASE_EXTRA)
    assert configured.field == "token_cache"
    assert "[jwt_bearer] token_cache (AIRFLOW__JWT_BEARER__TOKEN_CACHE) is 'disk'" in str(configured)
    monkeypatch.setenv("AIRFLOW__JWT_BEARER__TOKEN_CACHE", "redis")
    for value in ("0", "-1", "nan", "soon", "1e9"):
        monkeypatch.setenv("AIRFLOW__JWT_BEARER__TOKEN_CACHE_WAIT", value)
        error = error_of(BASE_EXTRA)
        assert error.field == "token_cache_wait"
        assert "AIRFLOW__JWT_BEARER__TOKEN_CACHE_WAIT" in str(error)
