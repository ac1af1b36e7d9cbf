"""``assertion_source: sign`` (the default): the assertion is minted here and signed with the connection's key."""

from __future__ import annotations

from dataclasses import dataclass

from airflow_jwt_provider.assertions.base import SourceContext
from airflow_jwt_provider.assertions.jwt import ExternalJwt
from airflow_jwt_provider.connection.extras import ExtraReader
from airflow_jwt_provider.connection.source_settings import SIGN_SOURCE
from airflow_jwt_provider.connection.token_parameters import TokenParameters
from airflow_jwt_provider.exceptions import JwtBearerConfigError


@dataclass(frozen=True)
class SignSettings:
    @property
    def source(self) -> str:
        return SIGN_SOURCE

    @property
    def needs_key(self) -> bool:
        return True

    def describe(self) -> str:
        return "assertion_source sign: minted and signed with the connection's key"


class MintedAssertions:
    """A new assertion per request (new ``jti``, ``iat``, ``exp``): RFC 7523 servers refuse a replayed ``jti``."""

    def __init__(self, context: SourceContext) -> None:
        if context.mint is None:
            raise JwtBearerConfigError(
                f"Connection {context.conn_id!r}: {context.setting('source')} sign needs the connection's key",
                field="signer",
            )
        self._mint = context.mint

    def assertion(self, params: TokenParameters) -> str:
        return self._mint(params)

    def identity(self) -> str:
        return SIGN_SOURCE  # the key's fingerprint is part of the cache key already

    def current(self) -> ExternalJwt | None:
        return None

    def describe(self) -> str:
        return "minted with the connection's key"


class SignSourceType:
    name = SIGN_SOURCE
    title = "Minted with the connection's key"
    suffixes: frozenset[str] = frozenset()

    def parse(self, extras: ExtraReader, prefix: str) -> SignSettings:
        return SignSettings()

    def build(self, settings: SignSettings, context: SourceContext) -> MintedAssertions:
        return MintedAssertions(context)


SIGN = SignSourceType()
