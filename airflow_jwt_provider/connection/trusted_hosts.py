"""Where the bearer token may go: the connection's API base, and the hosts its ``trusted_hosts`` lists.

Why: code sends requests to URLs it did not write. An operator's ``endpoint`` may be rendered
from API data, a ``pagination_function`` may follow an absolute "next" link, a task may call
``session.get(url)`` with a URL from a record. An answer that points elsewhere (by mistake, by
an injected record, by a compromised upstream) would otherwise walk the token out of the
company: ``requests`` and aiohttp drop the ``Authorization`` header on cross-host *redirects*,
but not on requests the code makes itself.

So every request that would carry the token is checked first, by this one rule, on the sync
and the async path alike: its scheme, host and port must be those of the connection's API
base (Host, or Salesforce's ``instance_url`` when Host is empty), or its host must be listed
in ``trusted_hosts``. Anything else fails before it is sent — never silently sent without the
token, never sent with it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from urllib.parse import urlsplit

from airflow_jwt_provider.exceptions import JwtBearerConfigError

_DEFAULT_PORTS = {"http": 80, "https": 443}


def is_loopback(host: str) -> bool:
    """``localhost``, ``127.0.0.0/8`` and ``::1``: the only hosts plain http may carry a token to."""
    host = host.strip("[]").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class Origin:
    """Scheme, host (lower case) and port of a URL, the port filled in from the scheme."""

    scheme: str
    host: str
    port: int

    @classmethod
    def of(cls, url: str) -> Origin | None:
        """The origin of an absolute http(s) URL; ``None`` for anything else."""
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError:
            return None
        scheme = parts.scheme.lower()
        if scheme not in _DEFAULT_PORTS or not parts.hostname:
            return None
        return cls(scheme, parts.hostname.lower(), port if port is not None else _DEFAULT_PORTS[scheme])

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = _DEFAULT_PORTS[self.scheme] == self.port
        return f"{self.scheme}://{host}" + ("" if default else f":{self.port}")


@dataclass(frozen=True)
class HostPattern:
    """One ``trusted_hosts`` entry: ``api.example.com``, ``*.example.com`` or either with ``:port``.

    A wildcard matches any subdomain (``a.example.com``, ``a.b.example.com``) but not the domain
    itself nor a look-alike (``evil-example.com``). Without a port, the scheme's default port is
    meant (443 for https).
    """

    host: str
    port: int | None = None
    wildcard: bool = False

    @classmethod
    def parse(cls, entry: str) -> HostPattern:
        """Parse one entry; ``ValueError`` with the problem (the settings parser adds the field)."""
        text = entry.strip().lower()
        if "://" in text:  # a pasted URL: keep its host and port, refuse anything more
            parts = urlsplit(text)
            if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
                raise ValueError(f"{entry!r} must be a host name (api.example.com or *.example.com), not a URL")
            text = parts.netloc
        host, port_text = text, None
        if text.startswith("["):  # [IPv6] or [IPv6]:port
            host, _, rest = text[1:].partition("]")
            port_text = rest[1:] if rest.startswith(":") else (rest or None)
        elif text.count(":") == 1:  # host:port
            host, _, port_text = text.partition(":")
        port = None
        if port_text is not None:
            if not port_text.isdigit() or not 0 < int(port_text) < 65536:
                raise ValueError(f"{entry!r} has an invalid port")
            port = int(port_text)
        wildcard = host.startswith("*.")
        name = host[2:] if wildcard else host
        if not name or "*" in name or "/" in name or " " in name or (wildcard and "." not in name):
            raise ValueError(
                f"{entry!r} is not a host name: use api.example.com, or *.example.com for every subdomain "
                "of example.com (a wildcard needs at least two labels after it)"
            )
        return cls(name, port, wildcard)

    def matches(self, origin: Origin) -> bool:
        host_ok = origin.host.endswith("." + self.host) if self.wildcard else origin.host == self.host
        port = self.port if self.port is not None else _DEFAULT_PORTS[origin.scheme]
        return host_ok and origin.port == port

    def __str__(self) -> str:
        text = ("*." if self.wildcard else "") + self.host
        return text if self.port is None else f"{text}:{self.port}"


def parse_trusted_hosts(entries: Iterable[str]) -> tuple[HostPattern, ...]:
    """Every entry parsed (``ValueError`` for the first bad one)."""
    return tuple(HostPattern.parse(entry) for entry in entries if entry.strip())


@dataclass(frozen=True)
class TrustedHosts:
    """The hosts one connection's token may be sent to (see the module docstring).

    :param conn_id: for error messages.
    :param base_url: the API base (Host, or the token's ``instance_url``); ``None`` if neither.
    :param patterns: the connection's ``trusted_hosts``.
    """

    conn_id: str
    base_url: str | None
    patterns: tuple[HostPattern, ...] = ()

    @cached_property
    def base_origin(self) -> Origin | None:
        """The API base's origin, parsed once (every request that carries the token is checked)."""
        return Origin.of(self.base_url) if self.base_url else None

    def allows(self, url: str) -> bool:
        origin = Origin.of(url)
        if origin is None:
            return False
        if origin == self.base_origin:
            return True
        if origin.scheme != "https" and not is_loopback(origin.host):
            return False  # a listed host gets the token over TLS only (loopback test servers excepted)
        return any(pattern.matches(origin) for pattern in self.patterns)

    def check(self, url: str) -> None:
        """Raise :class:`JwtBearerConfigError` unless ``url`` may receive the token."""
        if self.allows(url):
            return
        origin = Origin.of(url)
        where = str(origin) if origin is not None else "a URL that is not absolute http(s)"
        listed = ", ".join(str(p) for p in self.patterns) or "none"
        plain = (
            "; a listed host gets the token over https only"
            if origin is not None and origin.scheme == "http" and any(p.matches(origin) for p in self.patterns)
            else ""
        )
        raise JwtBearerConfigError(
            f"Connection {self.conn_id!r}: refusing to send the access token to {where}: it is not the API "
            f"base ({self.base_url or 'no Host set'}) and not in trusted_hosts (listed: {listed}){plain}. "
            "If that host is meant to receive this token, add it to the connection's trusted_hosts extra",
            field="trusted_hosts",
        )
