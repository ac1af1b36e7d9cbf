"""Fixtures of the node-oidc-provider tests: the keys, and one server trusting them for the whole module.

* the connection's key: a PEM file made at test time (``devserver.keystores.make_pem_key``), registered as the
  ``private_key_jwt`` key of :data:`CLIENT_ID` and trusted as the issuer :data:`CLIENT_ID` of jwt-bearer
  assertions and of actor tokens;
* a "platform" key (EC P-256) standing for a Kubernetes cluster's service-account token signer: trusted as
  :data:`PLATFORM_ISSUER`, and registered as the key of :data:`WORKLOAD_CLIENT`, whose client assertion is the
  platform's JWT itself (federated client credentials);
* an untrusted key, registered nowhere.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from devserver.keystores import Keystore, make_pem_key
from tests.oidc_provider.harness import HarnessError, OidcProviderServer, install_node_modules

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"

#: Authenticates with private_key_jwt (the connection's key); also the trusted issuer of that key's assertions.
CLIENT_ID = "airflow-client"
#: Authenticates with private_key_jwt, with the platform's key: the platform's JWT is its client assertion.
WORKLOAD_CLIENT = "workload-client"
#: Authenticates with client_secret_post: a keyless connection needs no key at all.
SECRET_CLIENT = "secret-client"
SECRET = "secret-client-secret-0123456789abcdef"
#: A public client (token_endpoint_auth_method none).
PUBLIC_CLIENT = "public-client"

#: The platform's issuer (a Kubernetes API server's service-account issuer) and the workload's identity.
PLATFORM_ISSUER = "https://kubernetes.default.svc.cluster.local"
PLATFORM_KID = "k8s-sa-signer-1"
SERVICE_ACCOUNT = "system:serviceaccount:ns:sa"
ACTOR_ACCOUNT = "system:serviceaccount:ns:actor"
#: The audience the server requires of the platform's subject and actor tokens in a token exchange.
EXCHANGE_AUDIENCE = "oidc-provider-sts"
#: Allowed on tokens requested without a resource indicator.
SCOPE = "read"
#: An RFC 8707 resource server whose access tokens are JWTs (signed with the server's keys, published at /jwks).
JWT_RESOURCE = "https://jwt-api.example/"


@dataclass(frozen=True)
class Keys:
    client: Keystore  # the connection's PEM key file
    untrusted: Keystore  # a PEM key file registered nowhere
    platform: ec.EllipticCurvePrivateKey


@pytest.fixture(scope="session")
def node_modules() -> Path:
    """node-oidc-provider and jose, installed by ``npm ci`` from the lock file (once; reused while it matches)."""
    try:
        return install_node_modules()
    except HarnessError as exc:
        pytest.fail(f"cannot install the node-oidc-provider test server: {exc}")


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Keys:
    directory = tmp_path_factory.mktemp("oidc-provider-keys")
    return Keys(
        client=make_pem_key(directory, "client", key_algorithm="RSA"),
        untrusted=make_pem_key(directory, "untrusted", key_algorithm="RSA"),
        platform=ec.generate_private_key(ec.SECP256R1()),
    )


def public_jwk(key: Keystore | ec.EllipticCurvePrivateKey, kid: str | None = None) -> dict[str, Any]:
    """The public JWK of a key file (from its certificate, as a server would be given it) or of a private key."""
    public = key.certificate().public_key() if isinstance(key, Keystore) else key.public_key()
    if isinstance(public, rsa.RSAPublicKey):
        jwk: dict[str, Any] = jwt.algorithms.RSAAlgorithm.to_jwk(public, as_dict=True)
    elif isinstance(public, ec.EllipticCurvePublicKey):
        jwk = jwt.algorithms.ECAlgorithm.to_jwk(public, as_dict=True)
    else:
        raise TypeError(f"no JWK for {type(public).__name__}")
    if kid:
        jwk["kid"] = kid
    return jwk


def _client(client_id: str, **metadata: Any) -> dict[str, Any]:
    grant_types = ["client_credentials", JWT_BEARER, TOKEN_EXCHANGE]
    return {"client_id": client_id, "grant_types": grant_types, "response_types": [], "redirect_uris": [], **metadata}


def server_config(keys: Keys) -> dict[str, Any]:
    client_jwks = {"keys": [public_jwk(keys.client)]}
    platform_jwks = {"keys": [public_jwk(keys.platform, PLATFORM_KID)]}
    return {
        "clients": [
            _client(CLIENT_ID, token_endpoint_auth_method="private_key_jwt", jwks=client_jwks),
            _client(WORKLOAD_CLIENT, token_endpoint_auth_method="private_key_jwt", jwks=platform_jwks),
            _client(SECRET_CLIENT, token_endpoint_auth_method="client_secret_post", client_secret=SECRET),
            _client(PUBLIC_CLIENT, token_endpoint_auth_method="none"),
        ],
        "trustedIssuers": {
            CLIENT_ID: {"jwks": client_jwks},
            PLATFORM_ISSUER: {"jwks": platform_jwks, "audience": EXCHANGE_AUDIENCE},
        },
        "resourceServers": {JWT_RESOURCE: {"scope": SCOPE, "accessTokenFormat": "jwt", "accessTokenTTL": 300}},
        "scopes": [SCOPE],
        "debug": True,  # every refusal, with oidc-provider's hidden error_detail, on stderr
    }


@pytest.fixture(scope="module")
def oidc_server(
    node_modules: Path, keys: Keys, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OidcProviderServer]:
    server = OidcProviderServer(server_config(keys), tmp_path_factory.mktemp("oidc-provider"))
    try:
        server.start()
    except HarnessError as exc:
        pytest.fail(f"the node-oidc-provider test server did not start: {exc}")
    try:
        yield server
    finally:
        server.stop()
