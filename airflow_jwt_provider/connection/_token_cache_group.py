"""The token cache group: ``token_cache*`` from the extras, else from the ``[jwt_bearer]`` configuration section.

An extra wins over the configuration; an error names where the bad value came from (the
connection's extra, or the configuration option and its environment variable).
``token_cache_wait``, ``token_cache_io_timeout`` and ``token_cache_secret`` are deployment knobs:
configuration only (a secret in a connection's extra would be shown in the form).
``token_cache`` is ``memory`` or the name of a registered token store (``file``, ``redis``, or
one another package registers).
"""

from __future__ import annotations

from airflow_jwt_provider.common.redaction import mask_stable_secret
from airflow_jwt_provider.common.seconds import finite_seconds
from airflow_jwt_provider.connection.extras import ExtraReader, clean
from airflow_jwt_provider.connection.kinds import MEMORY_TOKEN_CACHE, token_cache_kinds
from airflow_jwt_provider.connection.settings import (
    CONFIG_SECTION,
    DEFAULT_TOKEN_CACHE_CONN_ID,
    DEFAULT_TOKEN_CACHE_IO_TIMEOUT,
    DEFAULT_TOKEN_CACHE_WAIT,
    MAX_TOKEN_CACHE_IO_TIMEOUT,
    MAX_TOKEN_CACHE_WAIT,
    TokenCacheSettings,
)
from airflow_jwt_provider.exceptions import JwtBearerConfigError


def parse_token_cache(extras: ExtraReader) -> TokenCacheSettings:
    from airflow.sdk import conf

    def configured(key: str) -> str | None:
        value = conf.get(CONFIG_SECTION, key, fallback=None)
        return clean(value) if isinstance(value, str) else None

    def config_error(key: str, problem: str) -> JwtBearerConfigError:
        where = f"[{CONFIG_SECTION}] {key} (AIRFLOW__{CONFIG_SECTION.upper()}__{key.upper()})"
        return JwtBearerConfigError(
            f"Connection {extras.conn_id!r}: the Airflow configuration option {where} {problem}", field=key
        )

    kinds = token_cache_kinds()
    kind = extras.choice("token_cache", kinds)
    if kind is None:
        configured_kind = configured("token_cache") or MEMORY_TOKEN_CACHE
        kind = {k.lower(): k for k in kinds}.get(configured_kind.lower())
        if kind is None:
            raise config_error("token_cache", f"is {configured_kind!r}; use one of: {', '.join(kinds)}")

    def seconds(key: str, default: float, maximum: float) -> float:
        raw = configured(key)
        if raw is None:
            return default
        number = finite_seconds(raw)
        if number is None or not 0 < number <= maximum:
            raise config_error(key, f"must be a number of seconds above 0 and at most {maximum:g}, got {raw!r}")
        return number

    secret = configured("token_cache_secret")
    mask_stable_secret(secret)  # one deployment-wide value: registered once however often it is read
    return TokenCacheSettings(
        kind=kind,
        conn_id=extras.text("token_cache_conn_id") or configured("token_cache_conn_id") or DEFAULT_TOKEN_CACHE_CONN_ID,
        directory=extras.text("token_cache_dir") or configured("token_cache_dir"),
        wait=seconds("token_cache_wait", DEFAULT_TOKEN_CACHE_WAIT, MAX_TOKEN_CACHE_WAIT),
        io_timeout=seconds("token_cache_io_timeout", DEFAULT_TOKEN_CACHE_IO_TIMEOUT, MAX_TOKEN_CACHE_IO_TIMEOUT),
        secret=secret,
    )
