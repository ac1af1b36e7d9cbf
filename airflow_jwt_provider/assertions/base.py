"""The assertion source contract: :class:`AssertionSource` (gives a JWT) and :class:`SourceType` (a registered kind).

A source gives the JWT a token request carries, each time one is made (a retry gets a fresh one from
``sign``; a platform's token is reused until it nears expiry, or read again when its file changed). It
also says who that JWT names (:meth:`AssertionSource.identity`), which is what the token cache keys on:
a token fetched with one projected token is still good after the kubelet rotates the file.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from airflow_jwt_provider.assertions.jwt import ExternalJwt
from airflow_jwt_provider.common.registry import RegistrationError
from airflow_jwt_provider.connection.settings import HttpSettings
from airflow_jwt_provider.connection.source_settings import SOURCES, SourceRegistration, SourceSettings
from airflow_jwt_provider.connection.token_parameters import TokenParameters
from airflow_jwt_provider.exceptions import AssertionSourceError, JwtBearerConfigError

#: A platform's JWT is asked for again when less than this share of its life is left (or a minute), but never
#: before half of its life: a 60 s token is reused for 30 s.
REFRESH_RATIO = 0.2
MIN_REFRESH_SECONDS = 60.0
#: How long the identity read from a JWT is taken as current before the source is looked at again.
IDENTITY_RECHECK_SECONDS = 5.0


@dataclass(frozen=True)
class SourceContext:
    """What a source may need from the connection when it is built.

    :param conn_id: named in errors.
    :param http: timeout, TLS and proxy settings for sources that call the platform over HTTP.
    :param mint: the connection's minting function (the ``sign`` source only; ``None`` when keyless).
    :param lifetime: the connection's ``lifetime`` (AWS STS asks for a token that lives this long).
    :param prefix: ``assertion`` or ``actor_token``: the settings' prefix, for messages.
    """

    conn_id: str
    http: HttpSettings
    mint: Callable[[TokenParameters], str] | None = None
    lifetime: int = 60
    prefix: str = "assertion"

    def setting(self, suffix: str) -> str:
        return f"{self.prefix}_{suffix}"


@runtime_checkable
class AssertionSource(Protocol):
    """Gives JWTs.

    * ``assertion(params)``: the JWT to send now; ``params`` are the call's token parameters, which
      only a minting source can honour (platform sources refuse a per-call subject or claims).
    * ``identity()``: who the JWT names, for the token cache key (never the JWT itself).
    * ``current()``: the platform's JWT, decoded, for ``airflow jwt-bearer check``; ``None`` for ``sign``.
    * ``describe()``: one line for logs and ``check`` (never a secret).
    """

    def assertion(self, params: TokenParameters) -> str: ...

    def identity(self) -> str: ...

    def current(self) -> ExternalJwt | None: ...

    def describe(self) -> str: ...


@runtime_checkable
class SourceType(SourceRegistration, Protocol):
    """A registered kind of source: parses its settings and builds the source."""

    def build(self, settings: SourceSettings, context: SourceContext) -> AssertionSource: ...


def build_source(settings: SourceSettings, context: SourceContext) -> AssertionSource:
    """The source ``settings`` describe, built by its registration."""
    try:
        registration = SOURCES.get(settings.source)
    except RegistrationError as exc:
        raise JwtBearerConfigError(
            f"Connection {context.conn_id!r}: {context.setting('source')} {settings.source!r}: {exc}",
            field=context.setting("source"),
        ) from None
    if not isinstance(registration, SourceType):
        raise JwtBearerConfigError(
            f"Connection {context.conn_id!r}: assertion source {settings.source!r} is registered without a "
            "build(settings, context) method",
            field=context.setting("source"),
        )
    return registration.build(settings, context)


class PlatformSource:
    """What a source that takes the platform's JWT shares: no per-call parameters, and a JWT reused until near expiry.

    Subclasses implement :meth:`fetch` (ask the platform, or read the file) and may override
    :meth:`still_good`; the rest (reuse, identity, the per-call check) lives here.
    """

    def __init__(self, context: SourceContext, name: str) -> None:
        self.context = context
        self.name = name
        self._lock = threading.Lock()
        self._jwt: ExternalJwt | None = None
        self._refresh_at = 0.0
        self._identity_until = 0.0

    def fetch(self) -> ExternalJwt:
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError

    def check(self, jwt: ExternalJwt) -> None:
        """Refuse a JWT that must not be sent (expired; for another audience); each source words its advice."""
        jwt.check_usable(where=self.describe(), field_name=self.context.setting("source"))

    def still_good(self, jwt: ExternalJwt) -> bool:
        """Whether the JWT last fetched may be sent again (default: not yet near its expiry)."""
        return time.time() < self._refresh_at

    def _latest(self) -> ExternalJwt:
        """The JWT last fetched, fetched again when it is no longer good (unchecked: see :meth:`current`)."""
        jwt = self._jwt
        if jwt is None or not self.still_good(jwt):
            jwt = self._jwt = self.fetch()
            left = jwt.seconds_left()
            if left is None:
                self._refresh_at = time.time() + 3600.0
            else:
                life = jwt.lifetime or left
                margin = min(max(MIN_REFRESH_SECONDS, life * REFRESH_RATIO), life / 2)
                self._refresh_at = time.time() + left - margin
        return jwt

    def current(self) -> ExternalJwt:
        """The JWT to send now, refused when it must not be sent (checked on every use: a JWT that was fine a
        minute ago may have expired since)."""
        with self._lock:
            jwt = self._latest()
            self.check(jwt)
            return jwt

    def assertion(self, params: TokenParameters) -> str:
        if params.subject is not None or params.claims:
            raise JwtBearerConfigError(
                f"Connection {self.context.conn_id!r}: a per-call subject or claims cannot change the JWT of "
                f"assertion_source {self.name!r}: the platform decides what it claims. Use a connection per identity, "
                "or assertion_source sign",
                field="subject",
            )
        return self.current().compact

    def identity(self) -> str:
        """Who the JWT names, for the token cache key (asked on every API call, so it looks at the source at most
        every few seconds). The expiry is not checked here, nor is a read failure fatal once a JWT was read: a
        cached access token outlives the JWT it was fetched with (a CI token of ten minutes, an hour's access
        token); only a request for a new one needs a JWT that may be sent."""
        with self._lock:
            now = time.time()
            if self._jwt is None or now >= self._identity_until:
                try:
                    self._latest()
                except AssertionSourceError:
                    if self._jwt is None:
                        raise
                    # the file went away, the platform is down: the identity has not changed
                self._identity_until = now + IDENTITY_RECHECK_SECONDS
            assert self._jwt is not None
            return f"{self.name}:{self._jwt.identity}"
