"""Errors a server's answer causes: the local server answers each path the way some real server does.

The answers are in :data:`jwt_docs.errors.server.TOKEN_ANSWERS`; what the page shows is the provider's
reading of them (the status, the OAuth error, and the hint it adds for the connection's settings).
"""

from __future__ import annotations

from jwt_docs.keys import pkcs12

from .case import Case, Workspace, key_file_hook, platform_file_hook, token_hook
from .server import ID_TOKEN_TYPE


def _invalid_client(ws: Workspace) -> object:
    return token_hook(ws, "/invalid-client").get_token()


def _clock(ws: Workspace) -> object:
    return token_hook(ws, "/expired").get_token()


def _html(ws: Workspace) -> object:
    return token_hook(ws, "/html").get_token()


def _untrusted_platform(ws: Workspace) -> object:
    return platform_file_hook(ws, "/untrusted-issuer").get_token()


def _client_id_wanted(ws: Workspace) -> object:
    """No Password: the client does not authenticate (``client_auth: none``) and sends no ``client_id``."""
    store = pkcs12(ws.directory / "k.p12")
    return key_file_hook(ws, store, auth_url=f"{ws.server}/no-client-auth").get_token()


def _bearer_for_dpop(ws: Workspace) -> object:
    return token_hook(ws, "/bearer-for-dpop", dpop=True).get_token()


def _dpop_proof_refused(ws: Workspace) -> object:
    return token_hook(ws, "/bad-dpop-proof", dpop=True, dpop_algorithm="ES512").get_token()


def _exchanged_id_token(ws: Workspace) -> object:
    extra = {"grant": "token_exchange", "requested_token_type": ID_TOKEN_TYPE}
    return token_hook(ws, "/id-token", **extra).run("items")


def _no_metadata(ws: Workspace) -> object:
    """No ``auth_url``: the token endpoint is to come from ``auth_issuer``'s metadata, which the server lacks."""
    extra = {"auth_url": None, "auth_issuer": ws.server, "grant": "client_credentials"}
    extra["client_auth"] = "private_key_jwt"
    return key_file_hook(ws, pkcs12(ws.directory / "k.p12"), **extra).get_token()


def _untrusted_host(ws: Workspace) -> object:
    return token_hook(ws, "/token").run("https://files.example.net/download/1")


def _forbidden(ws: Workspace) -> object:
    return token_hook(ws, "/token").run("forbidden/items")


CASES: tuple[Case, ...] = (
    Case(
        "The server refuses the client",
        "TokenEndpointError",
        "invalid_client",
        "check Login, Password and `client_auth`",
        _invalid_client,
    ),
    Case(
        "The clocks disagree",
        "TokenEndpointError",
        "clock",
        "synchronise the clock (NTP)",
        _clock,
    ),
    Case(
        "Something else answered instead of the token endpoint",
        "TokenEndpointError",
        "text/html",
        "check `auth_url` and the proxies",
        _html,
    ),
    Case(
        "The server does not trust the platform's JWT",
        "TokenEndpointError",
        "assertion_file",
        "register the platform's issuer and subject with the authorization server (`airflow jwt-bearer check` "
        "shows the JWT's `iss`, `sub`, `aud`)",
        _untrusted_platform,
    ),
    Case(
        "The server wants a client id without client authentication",
        "TokenEndpointError",
        "no client authentication mechanism provided",
        'add `"auth_params": {"client_id": "<id>"}` (the server wants `client_id` with `client_auth: none`)',
        _client_id_wanted,
    ),
    Case(
        "A Bearer token where DPoP was asked for",
        "TokenEndpointError",
        "dpop_allow_bearer",
        "enable DPoP for the client on the server, or accept unbound tokens with `dpop_allow_bearer`",
        _bearer_for_dpop,
    ),
    Case(
        "The server refuses the DPoP proof",
        "TokenEndpointError",
        "dpop_algorithm",
        "check `dpop_algorithm` against the server's `dpop_signing_alg_values_supported` (or the signer's "
        "algorithm with `dpop_key: signer`), and the clock",
        _dpop_proof_refused,
    ),
    Case(
        "A token exchange answered with a token that is not an access token",
        "JwtBearerConfigError",
        "requested_token_type",
        "set `requested_token_type` to the access token type, or hand `hook.get_token().access_token` to the "
        "system it is meant for",
        _exchanged_id_token,
    ),
    Case(
        "The metadata of auth_issuer cannot be read",
        "JwtBearerConfigError",
        "auth_issuer",
        "correct `auth_issuer`, or set `auth_url`",
        _no_metadata,
    ),
    Case(
        "A request to a host the connection does not trust",
        "JwtBearerConfigError",
        "trusted_hosts",
        "list the host in `trusted_hosts` (https only), or call the API base",
        _untrusted_host,
    ),
    Case(
        "The API refuses the call",
        "ApiResponseError",
        "403",
        "check the scope and the subject's rights",
        _forbidden,
    ),
)
