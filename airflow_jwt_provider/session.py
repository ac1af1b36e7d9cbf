"""A ``requests.Session`` for one API: base URL, default timeout, TLS settings, bearer auth."""

from __future__ import annotations

from typing import Any

import requests

from airflow_jwt_provider.auth import JwtBearerAuth
from airflow_jwt_provider.token_client import HttpSettings


def join_url(base_url: str | None, endpoint: str | None) -> str:
    """``endpoint`` if absolute, else appended to ``base_url`` with exactly one slash between."""
    endpoint = endpoint or ""
    if endpoint.startswith(("http://", "https://")):
        return endpoint
    if not base_url:
        raise ValueError(endpoint)
    if not endpoint:
        return base_url
    return f"{base_url.rstrip('/')}/{endpoint.lstrip('/')}"


class JwtBearerSession(requests.Session):
    """A session whose requests carry the bearer token and the connection's HTTP settings.

    Relative URLs are resolved against ``base_url`` (the connection's host), and every
    request gets the connection's timeout unless it sets its own, so that a forgotten
    ``timeout=`` cannot hang a task forever.
    """

    def __init__(self, auth: JwtBearerAuth, http: HttpSettings, base_url: str | None = None) -> None:
        super().__init__()
        self.auth = auth
        self.base_url = base_url
        self.default_timeout = http.timeout
        self.verify = http.verify
        if http.proxies:
            self.proxies.update(http.proxies)

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        kwargs.setdefault("timeout", self.default_timeout)
        if isinstance(url, str) and "://" not in url and self.base_url:
            url = join_url(self.base_url, url)
        return super().request(method, url, *args, **kwargs)
