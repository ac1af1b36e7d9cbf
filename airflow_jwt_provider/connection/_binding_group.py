"""The binding group: tokens bound to a key (DPoP, RFC 9449) or to the TLS client certificate (RFC 8705).

A bound token is worth nothing to whoever copies it: the server checks, on every call, a proof only
the key's holder can make. The two mechanisms are exclusive (a server refuses a request that offers
both); RFC 8705 client authentication (``tls_client_auth``) combines with either.
"""

from __future__ import annotations

from airflow_jwt_provider.connection.extras import ExtraReader
from airflow_jwt_provider.connection.kinds import DPOP_ALGORITHMS, ClientAuthMethod, DPoPKeySource
from airflow_jwt_provider.connection.settings import DPoPSettings

_DPOP_DETAILS = ("dpop_key", "dpop_algorithm", "dpop_allow_bearer")


def parse_dpop(extras: ExtraReader) -> DPoPSettings | None:
    if not extras.flag("dpop", False):
        given = [key for key in _DPOP_DETAILS if key in extras.given]
        if given:
            raise extras.error(given[0], "is set but dpop is not; set dpop to true, or remove it")
        return None
    key = extras.member("dpop_key", DPoPKeySource) or DPoPKeySource.GENERATED
    algorithm = extras.choice("dpop_algorithm", DPOP_ALGORITHMS)
    if algorithm is not None and key is DPoPKeySource.SIGNER:
        raise extras.error(
            "dpop_algorithm",
            "applies to a generated DPoP key; with dpop_key signer the proofs use the signer's algorithm (set "
            "algorithm instead), or remove it",
        )
    return DPoPSettings(key, algorithm or "ES256", extras.flag("dpop_allow_bearer", False))


def parse_mtls(extras: ExtraReader, dpop: DPoPSettings | None, client_auth: ClientAuthMethod) -> bool:
    mtls = extras.flag("mtls", False)
    if mtls and dpop is not None:
        raise extras.error(
            "mtls",
            "and dpop both bind the token, and a server refuses a request that offers both (RFC 9449, RFC 8705); "
            "choose one (client_auth tls_client_auth works with dpop)",
        )
    return mtls or client_auth.uses_tls_certificate


def needs_key(dpop: DPoPSettings | None, mtls: bool) -> bool:
    """Whether binding alone needs the connection's key: a signer DPoP key, or the TLS client certificate's key."""
    return mtls or (dpop is not None and dpop.key is DPoPKeySource.SIGNER)
