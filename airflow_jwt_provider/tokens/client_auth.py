"""How the client authenticates at the token endpoint: one small object per method, applying itself to a request.

RFC 6749 §2.3 and RFC 7523 §2.2 define the methods; each is a class whose :meth:`apply` adds
what the method needs to the token request's form (or returns the HTTP authentication to send),
as Authlib's client authentication methods do. :func:`client_authentication` picks the class for a
connection's ``client_auth`` (a :class:`~airflow_jwt_provider.connection.kinds.ClientAuthMethod`).

Every object knows the secret it sends (``client_secret``), so that texts built from the
server's answer can blank it should the server repeat it; none shows a secret in ``repr``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar
from urllib.parse import quote

from requests.auth import HTTPBasicAuth

from airflow_jwt_provider.connection.kinds import ClientAuthMethod

CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


@dataclass(frozen=True)
class ClientAuthentication:
    """No client authentication (``none``): a public client, or one the assertion alone identifies.

    Subclasses override :meth:`apply`.
    """

    method: ClassVar[ClientAuthMethod] = ClientAuthMethod.NONE
    client_id: str | None = None
    client_secret: str | None = field(default=None, repr=False)
    #: Mints a new client assertion for each request (``private_key_jwt``: never the same ``jti`` twice).
    client_assertion: Callable[[], str] | None = field(default=None, repr=False)

    def apply(self, form: dict[str, str | list[str]]) -> HTTPBasicAuth | None:
        """Add this method's fields to ``form``; return the HTTP authentication to send, if any."""
        return None


@dataclass(frozen=True)
class ClientSecretPost(ClientAuthentication):
    """``client_secret_post``: id and secret in the form (RFC 6749 §2.3.1)."""

    method: ClassVar[ClientAuthMethod] = ClientAuthMethod.CLIENT_SECRET_POST

    def apply(self, form: dict[str, str | list[str]]) -> HTTPBasicAuth | None:
        form["client_id"] = self.client_id or ""
        form["client_secret"] = self.client_secret or ""
        return None


@dataclass(frozen=True)
class ClientSecretBasic(ClientAuthentication):
    """``client_secret_basic``: HTTP Basic, id and secret form-urlencoded first (RFC 6749 §2.3.1)."""

    method: ClassVar[ClientAuthMethod] = ClientAuthMethod.CLIENT_SECRET_BASIC

    def apply(self, form: dict[str, str | list[str]]) -> HTTPBasicAuth | None:
        return HTTPBasicAuth(quote(self.client_id or "", safe=""), quote(self.client_secret or "", safe=""))


@dataclass(frozen=True)
class PrivateKeyJwt(ClientAuthentication):
    """``private_key_jwt``: a client assertion signed with the connection's key (RFC 7523 §2.2)."""

    method: ClassVar[ClientAuthMethod] = ClientAuthMethod.PRIVATE_KEY_JWT

    def apply(self, form: dict[str, str | list[str]]) -> HTTPBasicAuth | None:
        if self.client_assertion is None:
            raise ValueError("private_key_jwt needs a client assertion factory")
        if self.client_id:
            form["client_id"] = self.client_id
        form["client_assertion_type"] = CLIENT_ASSERTION_TYPE
        form["client_assertion"] = self.client_assertion()
        return None


@dataclass(frozen=True)
class TlsClientAuth(ClientAuthentication):
    """``tls_client_auth`` (RFC 8705 §2.1): the certificate of the TLS handshake authenticates; ``client_id`` sent."""

    method: ClassVar[ClientAuthMethod] = ClientAuthMethod.TLS_CLIENT_AUTH

    def apply(self, form: dict[str, str | list[str]]) -> HTTPBasicAuth | None:
        form["client_id"] = self.client_id or ""  # §2: the client MUST include client_id; no secret
        return None


@dataclass(frozen=True)
class SelfSignedTlsClientAuth(TlsClientAuth):
    """``self_signed_tls_client_auth`` (RFC 8705 §2.2): the same request; the server holds the certificate itself."""

    method: ClassVar[ClientAuthMethod] = ClientAuthMethod.SELF_SIGNED_TLS_CLIENT_AUTH


_BY_METHOD: dict[ClientAuthMethod, type[ClientAuthentication]] = {
    cls.method: cls
    for cls in (
        ClientAuthentication,
        ClientSecretPost,
        ClientSecretBasic,
        PrivateKeyJwt,
        TlsClientAuth,
        SelfSignedTlsClientAuth,
    )
}


def client_authentication(
    method: ClientAuthMethod,
    client_id: str | None,
    client_secret: str | None,
    client_assertion: Callable[[], str],
) -> ClientAuthentication:
    """The object for ``method`` (the client assertion factory is used by ``private_key_jwt`` only)."""
    return _BY_METHOD[method](client_id, client_secret, client_assertion)
