"""The rule that decides where the bearer token may be sent, on its own."""

from __future__ import annotations

import pytest

from airflow_jwt_provider.connection.trusted_hosts import HostPattern, TrustedHosts, parse_trusted_hosts
from airflow_jwt_provider.exceptions import JwtBearerConfigError
from tests.connection.test_settings import BASE_EXTRA, error_of, parse


def trusted(*entries: str, base_url: str | None = "https://api.example.com/v2") -> TrustedHosts:
    return TrustedHosts("my_api", base_url, parse_trusted_hosts(entries))


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("https://api.example.com/v2/items", True),  # the API base
        ("https://API.example.com:443/other/path", True),  # same origin, any path, default port spelled out
        ("http://api.example.com/v2/items", False),  # same host, other scheme
        ("https://api.example.com:8443/v2/items", False),  # same host, other port
        ("https://evil.example/steal", False),
        ("https://api.example.com.evil.example/v2", False),
        ("ftp://api.example.com/v2", False),
        ("/relative/path", False),
    ],
)
def test_the_api_base_origin_is_trusted(url: str, allowed: bool) -> None:
    assert trusted().allows(url) is allowed


def test_wildcards_match_subdomains_only_never_a_suffix_look_alike() -> None:
    rule = trusted("*.example.com")
    assert rule.allows("https://files.example.com/x")
    assert rule.allows("https://a.b.example.com/x")
    assert not rule.allows("https://example.com/x")  # the domain itself is listed separately
    assert not rule.allows("https://evil-example.com/x")
    assert not rule.allows("https://example.com.evil.net/x")
    assert not rule.allows("https://files.example.com:8443/x")  # no port: the default one


def test_listed_hosts_get_the_token_over_https_only_unless_loopback() -> None:
    rule = trusted("files.example.com", "127.0.0.2:8080", "localhost:9000")
    assert rule.allows("https://files.example.com/x")
    assert not rule.allows("http://files.example.com/x")
    assert rule.allows("http://127.0.0.2:8080/x")
    assert rule.allows("http://localhost:9000/x")
    with pytest.raises(JwtBearerConfigError, match="over https only"):
        rule.check("http://files.example.com/x")


def test_refusal_names_the_host_the_setting_and_what_to_do_without_the_path() -> None:
    with pytest.raises(JwtBearerConfigError) as info:
        trusted("files.example.com").check("https://evil.example/next?access_token=abc")
    message = str(info.value)
    assert info.value.field == "trusted_hosts"
    assert message.startswith("Connection 'my_api': refusing to send the access token to https://evil.example:")
    assert "trusted_hosts (listed: files.example.com)" in message
    assert "add it to the connection's trusted_hosts extra" in message
    assert "access_token=abc" not in message
    assert "/next" not in message


def test_without_host_only_listed_hosts_are_trusted() -> None:
    rule = trusted(base_url=None)
    assert not rule.allows("https://api.example.com/v2/items")
    with pytest.raises(JwtBearerConfigError, match=r"not the API base \(no Host set\)"):
        rule.check("https://api.example.com/v2/items")


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ("Files.Example.com", HostPattern("files.example.com")),
        ("*.example.com", HostPattern("example.com", wildcard=True)),
        ("files.example.com:8443", HostPattern("files.example.com", 8443)),
        ("https://files.example.com/", HostPattern("files.example.com")),
        ("[::1]:8080", HostPattern("::1", 8080)),
    ],
)
def test_entries_parse(entry: str, expected: HostPattern) -> None:
    assert HostPattern.parse(entry) == expected


@pytest.mark.parametrize(
    "entry", ["*", "*.com", "files.*.com", "https://files.example.com/path", "host:99999", "host:x", "a b"]
)
def test_bad_entries_are_refused(entry: str) -> None:
    with pytest.raises(ValueError, match=r"host|port|URL"):
        HostPattern.parse(entry)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("files.example.com, *.cdn.example.com", ("files.example.com", "*.cdn.example.com")),
        ('["files.example.com", "127.0.0.2:8080"]', ("files.example.com", "127.0.0.2:8080")),
        (["files.example.com"], ("files.example.com",)),
    ],
)
def test_connection_setting_forms(value: object, expected: tuple[str, ...]) -> None:
    settings = parse({**BASE_EXTRA, "trusted_hosts": value})
    assert tuple(str(p) for p in settings.trusted_hosts) == expected


def test_connection_setting_errors_name_the_field() -> None:
    error = error_of({**BASE_EXTRA, "trusted_hosts": "ok.example.com, files.*.com"})
    assert error.field == "trusted_hosts"
    assert "trusted_hosts entry 'files.*.com' is not a host name" in str(error)
    assert "trusted_hosts must be host names" in str(error_of({**BASE_EXTRA, "trusted_hosts": {"a": 1}}))
