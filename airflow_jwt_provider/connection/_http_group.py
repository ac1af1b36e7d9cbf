"""The HTTP group of a connection's settings: timeout, TLS verification, proxies, trusted hosts."""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import unquote, urlsplit

from airflow_jwt_provider.common.redaction import mask_stable_secret
from airflow_jwt_provider.connection.extras import ExtraReader, parse_bool
from airflow_jwt_provider.connection.settings import DEFAULT_TIMEOUT, MAX_TIMEOUT, HttpSettings
from airflow_jwt_provider.connection.trusted_hosts import HostPattern, parse_trusted_hosts


def parse_http(extras: ExtraReader) -> HttpSettings:
    """``timeout``, ``verify`` and ``proxies``: what every request of the connection uses."""
    return HttpSettings(
        timeout=extras.seconds("timeout", DEFAULT_TIMEOUT, maximum=MAX_TIMEOUT),
        verify=_verify(extras),
        proxies=_proxies(extras),
    )


def parse_trusted_hosts_setting(extras: ExtraReader) -> tuple[HostPattern, ...]:
    """``trusted_hosts``: comma-separated host patterns or a JSON list of them."""
    value = extras.json_value("trusted_hosts")
    if value is None:
        return ()
    if isinstance(value, str):
        value = value.replace(",", " ").split()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise extras.error(
            "trusted_hosts", 'must be host names, comma-separated or a JSON list like ["files.example.com"]'
        )
    try:
        return parse_trusted_hosts(value)
    except ValueError as exc:
        raise extras.error("trusted_hosts", f"entry {exc}") from None


def _verify(extras: ExtraReader) -> bool | str:
    value = extras.raw("verify")
    if value is None:
        return True
    parsed = parse_bool(value)
    if parsed is not None:
        return parsed
    if isinstance(value, str):
        return value  # a CA bundle path, as requests accepts
    raise extras.error("verify", "must be true, false or the path of a CA bundle")


def _proxies(extras: ExtraReader) -> dict[str, str] | None:
    value = extras.json_value("proxies")
    if value is None:
        return None
    if isinstance(value, str):
        proxies = {"http": value, "https": value}
    elif isinstance(value, Mapping) and all(isinstance(v, str) for v in value.values()):
        proxies = {str(k): v for k, v in value.items()}
    else:
        raise extras.error("proxies", 'must be a proxy URL or an object like {"https": "http://proxy:3128"}')
    for url in proxies.values():
        try:
            password = urlsplit(url).password
        except ValueError:
            raise extras.error(
                "proxies", "holds a URL that cannot be parsed; use http://[user:password@]host:port"
            ) from None
        mask_stable_secret(url)
        mask_stable_secret(password and unquote(password))
    return proxies
