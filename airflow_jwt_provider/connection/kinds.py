"""The closed sets of a connection's choices, as types: a value is a member, never a bare string.

The settings parser turns the text of a connection into these members (refusing anything else,
naming the setting), and everything downstream compares members or asks a member to act. Open
sets, which other packages extend, are registries instead (signers, token stores:
:mod:`airflow_jwt_provider.common.registry`).

``str`` mixins keep the members equal to their wire values (``GrantType.JWT_BEARER ==
"urn:ietf:params:oauth:grant-type:jwt-bearer"``), so they go into a form or JSON as they are.
"""

from __future__ import annotations

from enum import Enum

from airflow_jwt_provider.common.registry import TOKEN_STORE_GROUP, Registry


class GrantType(str, Enum):
    """The OAuth 2.0 grant a token request uses (its ``grant_type``); the ``grant`` setting names it short."""

    #: RFC 7523 §2.1: the JWT is the authorization grant (``assertion``).
    JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
    #: RFC 6749 §4.4: the client acts for itself (with a client assertion, RFC 7523 §2.2).
    CLIENT_CREDENTIALS = "client_credentials"
    #: RFC 8693: the JWT is the ``subject_token`` exchanged for a token.
    TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"

    def __str__(self) -> str:
        return self.value

    @property
    def setting(self) -> str:
        """How the ``grant`` setting spells it: ``jwt_bearer``, ``client_credentials``, ``token_exchange``."""
        return self.name.lower()

    @classmethod
    def from_setting(cls, value: str) -> GrantType:
        return cls[value.upper()]


class ClientAssertionAudience(str, Enum):
    """What a client assertion's ``aud`` names (draft-ietf-oauth-rfc7523bis §4: the issuer identifier)."""

    #: The authorization server's issuer identifier (RFC 8414), as rfc7523bis asks; needs ``auth_issuer``.
    ISSUER = "issuer"
    #: The token endpoint URL, as RFC 7523 allowed and servers that predate rfc7523bis expect.
    TOKEN_ENDPOINT = "token_endpoint"
    #: Both, for a server that is being migrated.
    BOTH = "both"

    def __str__(self) -> str:
        return self.value


#: RFC 8693 §3 token type identifiers.
JWT_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:jwt"
ID_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:id_token"
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"


class ClientAuthMethod(str, Enum):
    """How the client authenticates at the token endpoint (RFC 6749 §2.3, RFC 7523 §2.2)."""

    NONE = "none"
    CLIENT_SECRET_POST = "client_secret_post"
    CLIENT_SECRET_BASIC = "client_secret_basic"
    PRIVATE_KEY_JWT = "private_key_jwt"
    #: RFC 8705 §2.1: the TLS client certificate, chained to a CA the server trusts, names the client.
    TLS_CLIENT_AUTH = "tls_client_auth"
    #: RFC 8705 §2.2: the TLS client certificate registered with the server as it is.
    SELF_SIGNED_TLS_CLIENT_AUTH = "self_signed_tls_client_auth"

    def __str__(self) -> str:
        return self.value

    @property
    def uses_tls_certificate(self) -> bool:
        """RFC 8705: the client authenticates with its certificate in the TLS handshake."""
        return self in (ClientAuthMethod.TLS_CLIENT_AUTH, ClientAuthMethod.SELF_SIGNED_TLS_CLIENT_AUTH)

    @property
    def needs_client_secret(self) -> bool:
        return self in (ClientAuthMethod.CLIENT_SECRET_POST, ClientAuthMethod.CLIENT_SECRET_BASIC)

    @property
    def needs_client_id(self) -> bool:
        """RFC 7523 §3: a client assertion's ``iss`` and ``sub`` are the client id; RFC 8705 §2: ``client_id`` sent."""
        return self is ClientAuthMethod.PRIVATE_KEY_JWT or self.uses_tls_certificate


class DPoPKeySource(str, Enum):
    """Which private key proves possession of a DPoP-bound token (RFC 9449), in every process that uses it."""

    #: A key made for the connection in the process that fetches the token, kept with the token (sealed in a
    #: shared cache), so that every process that is served the token signs its proofs with the same key.
    GENERATED = "generated"
    #: The connection's own signing key (a key file, an HSM, KMS): one signature of the device per API call.
    SIGNER = "signer"

    def __str__(self) -> str:
        return self.value


#: RFC 9449 proof algorithms a generated key may use (asymmetric only; ES256 is what servers accept first).
DPOP_ALGORITHMS = ("ES256", "ES384", "ES512", "EdDSA", "PS256", "RS256")


class KeystoreType(str, Enum):
    """The format of local key material (detected from the content; the setting only confirms it)."""

    JKS = "jks"
    JCEKS = "jceks"
    PKCS12 = "pkcs12"
    PEM = "pem"
    GOOGLE_JSON = "google_json"

    def __str__(self) -> str:
        return self.value

    @property
    def java(self) -> bool:
        """Read with pyjks (the ``[jks]`` extra)."""
        return self in (KeystoreType.JKS, KeystoreType.JCEKS)

    @property
    def names_token_endpoint(self) -> bool:
        """A Google service-account key carries its issuer (``client_email``) and ``token_uri``."""
        return self is KeystoreType.GOOGLE_JSON


#: ``token_cache`` value for "each process alone"; every other value names a registered token store.
MEMORY_TOKEN_CACHE = "memory"

#: The token stores' names (read from the installed distributions; no store is imported here).
_TOKEN_STORES: Registry[object] = Registry(
    TOKEN_STORE_GROUP, "token store", lambda _: True, preferred=("file", "redis")
)


def token_cache_kinds() -> tuple[str, ...]:
    """The ``token_cache`` values: ``memory`` and every registered token store (``file``, ``redis``, plugins')."""
    return (MEMORY_TOKEN_CACHE, *_TOKEN_STORES.names())
