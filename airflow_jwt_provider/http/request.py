"""One API call described as a value: :class:`ApiRequest`, and how ``pagination_function`` changes it.

The operator, the sensor, the sync hook and the trigger all send the same description, so a
deferred task and a synchronous one send the same request. It is also what a trigger's
serialized kwargs carry, so it holds no secret: the token is fetched where the request is sent.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

from airflow_jwt_provider.common.retry import IDEMPOTENT_METHODS
from airflow_jwt_provider.connection.token_parameters import DEFAULT_TOKEN, TokenParameters
from airflow_jwt_provider.exceptions import JwtBearerConfigError

#: Keys a ``pagination_function`` may return.
PAGINATION_KEYS = ("endpoint", "query", "json", "data", "headers")


@dataclass(frozen=True)
class ApiRequest:
    """One API call: everything but the token, which is added when it is sent.

    ``token`` selects the token (impersonation, scope, claims); the other fields the HTTP
    request. ``query`` becomes the URL's query string.
    """

    endpoint: str | None = None
    method: str = "GET"
    query: Mapping[str, Any] | None = None
    json: Any = None
    data: Any = None
    headers: Mapping[str, str] | None = None
    token: TokenParameters = field(default=DEFAULT_TOKEN)

    def __post_init__(self) -> None:
        object.__setattr__(self, "method", (self.method or "GET").upper())
        if self.json is not None and self.data is not None:
            raise JwtBearerConfigError("json and data are both set; send one body only", field="json")
        if self.method in ("GET", "HEAD") and self.query is None and isinstance(self.data, Mapping):
            # HttpHook sends a GET's data as the query string; done here so every path does the same.
            object.__setattr__(self, "query", self.data)
            object.__setattr__(self, "data", None)

    @property
    def idempotent(self) -> bool:
        return self.method in IDEMPOTENT_METHODS

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (trigger kwargs); ``None`` fields and default token parameters are left out."""
        values: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "token":
                if value != DEFAULT_TOKEN:
                    values["token"] = value.to_dict()
            elif value is not None:
                values[f.name] = value
        return values

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> ApiRequest:
        values = dict(values)
        token = TokenParameters.from_dict(values.pop("token", None))
        names = {f.name for f in fields(cls)} - {"token"}
        unknown = sorted(set(values) - names)
        if unknown:
            raise JwtBearerConfigError(f"unknown request field(s): {', '.join(unknown)}", field="request")
        return cls(**values, token=token)

    def with_changes(self, changes: Mapping[str, Any]) -> ApiRequest:
        """The next page's request: ``pagination_function``'s answer applied to this one.

        ``HttpOperator`` semantics: a dict merges into a dict (its items win), anything else
        replaces. ``json`` replaces ``data`` and the other way round.
        """
        if not isinstance(changes, Mapping):
            raise JwtBearerConfigError(
                f"pagination_function must return a dict (or None to stop), got {type(changes).__name__}",
                field="pagination_function",
            )
        unknown = sorted(set(changes) - set(PAGINATION_KEYS))
        if unknown:
            raise JwtBearerConfigError(
                f"pagination_function returned unknown key(s) {', '.join(unknown)}; use {', '.join(PAGINATION_KEYS)}",
                field="pagination_function",
            )
        merged: dict[str, Any] = {}
        for key, value in changes.items():
            current = getattr(self, key)
            merged[key] = {**current, **value} if isinstance(current, Mapping) and isinstance(value, Mapping) else value
        if "json" in merged and "data" not in merged:
            merged["data"] = None
        if "data" in merged and "json" not in merged:
            merged["json"] = None
        return replace(self, **merged)

    def describe(self) -> str:
        """``GET items``: method and endpoint, without query string or body, for log lines."""
        return f"{self.method} {self.endpoint or ''}"


def resolve_url(base_url: str | None, endpoint: str | None, *, conn_id: str) -> str:
    """``endpoint`` if absolute, else appended to ``base_url`` with exactly one slash between.

    :raises JwtBearerConfigError: ``endpoint`` is relative and the connection gives no base URL.
    """
    endpoint = endpoint or ""
    if endpoint.startswith(("http://", "https://")):
        return endpoint
    if not base_url:
        raise JwtBearerConfigError(
            f"Connection {conn_id!r}: host (the API base URL) is empty and endpoint {endpoint!r} is relative; "
            "set the connection's Host or pass an absolute URL",
            field="host",
        )
    if not endpoint:
        return base_url
    return f"{base_url.rstrip('/')}/{endpoint.lstrip('/')}"
