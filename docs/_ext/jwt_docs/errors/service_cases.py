"""Errors that need a device, a cloud API or a particular server, each played on this machine by a stand-in.

* a PKCS#11 token: SoftHSM2 (Debian's ``softhsm2``, which ``scripts/install-system-deps`` installs), a
  token initialised in the case's directory by ``devserver.hsm``, used in a process of its own;
* AWS KMS: moto's in-process mock (``mock_aws``); the amazon provider's boto3 client talks to it as it
  would to AWS, through an Airflow ``aws`` connection;
* AWS STS ``GetWebIdentityToken`` (IAM outbound identity federation, which moto does not implement): the
  devserver's platform (``devserver.platform.LocalPlatform``), which speaks STS's query protocol, told to
  refuse the next call with the error code AWS documents;
* an authorization server that authenticates clients by their TLS certificate: the devserver over HTTPS
  with a certificate authority made for the run.

Each stand-in answers with the codes the real service documents, but not always with its words: the
parts of a message the provider writes are what a deployment sees, the quoted service text may differ.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from jwt_docs.keys import EXAMPLE_API, EXAMPLE_ISSUER, EXAMPLE_TOKEN_URL

from .case import AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, Case, Workspace, aws_connection, hook

#: The PIN the PKCS#11 case gives (the token's real one is devserver.hsm's): never in a message.
WRONG_PIN = "docs-wrong-pin-0000"
REGION = "eu-west-1"


def _wrong_pin(ws: Workspace) -> object:
    from devserver import hsm

    token = hsm.create_softhsm(ws.directory / "softhsm")
    extra = {"auth_url": f"{ws.server}/token", "signer": "pkcs11", "key_alias": "rsa-signing"}
    extra.update(pkcs11_module=token.module_path, pkcs11_token_label=token.token_label, keystore_password=WRONG_PIN)
    return hook(ws, "hsm_api", extra).mint_assertion()


@contextlib.contextmanager
def _kms() -> Iterator[object]:
    """moto's AWS for the block, the ``aws_default`` connection pointing at it; a KMS client."""
    import boto3
    from moto import mock_aws

    with mock_aws():
        aws_connection()
        yield boto3.client(
            "kms",
            region_name=REGION,
            aws_access_key_id=AWS_ACCESS_KEY_ID,
            aws_secret_access_key=AWS_SECRET_ACCESS_KEY,
        )


def _no_such_kms_key(ws: Workspace) -> object:
    with _kms():
        extra = {"auth_url": f"{ws.server}/token", "signer": "aws_kms", "key_alias": "alias/jwt-signing"}
        return hook(ws, "kms_api", extra).mint_assertion()


def _mtls_with_a_kms_key(ws: Workspace) -> object:
    """The key exists and signs, but mTLS needs it in Python's TLS: refused before any request is made."""
    with _kms() as kms:
        key = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")  # type: ignore[attr-defined]
        extra = {"auth_url": EXAMPLE_TOKEN_URL, "signer": "aws_kms", "key_alias": key["KeyMetadata"]["KeyId"]}
        return hook(ws, "kms_api", {**extra, "mtls": True, "timeout": 5}, host=EXAMPLE_API).get_token()


def _sts_refuses(ws: Workspace) -> object:
    from devserver.platform import LocalPlatform

    with LocalPlatform() as platform:
        ws.servers.append((platform.url, f"https://sts.{REGION}.amazonaws.com"))
        aws_connection(endpoint_url=platform.url)
        platform.fail_next_sts("OutboundWebIdentityFederationDisabledException")
        extra = {"auth_url": f"{ws.server}/token", "assertion_source": "aws_sts", "assertion_audience": EXAMPLE_ISSUER}
        return hook(ws, "aws_api", extra).get_token()


def _certificate_not_registered(ws: Workspace) -> object:
    """The client is registered for tls_client_auth with one subject; the worker's certificate has another."""
    from devserver import LocalAuthorizationServer

    with LocalAuthorizationServer(tls=True) as server:
        ws.servers.append((server.url, EXAMPLE_ISSUER))
        server.register_client("my-client", tls_client_auth_subject_dn="CN=my-client")
        certificate, key = server.issue_client_certificate("airflow-worker-7")
        client = ws.directory / "client.pem"
        client.write_text(key + certificate)
        extra = {"auth_url": server.token_url, "key_file": str(client), "grant": "client_credentials"}
        extra.update(client_auth="tls_client_auth", verify=server.ca_file)
        return hook(ws, "bank_api", extra, host=server.api_url).get_token()


CASES: tuple[Case, ...] = (
    Case(
        "A wrong PKCS#11 user PIN",
        "KeystoreError",
        "keystore_password",
        "correct the PIN in `keystore_password`; HSMs lock it after a few wrong attempts",
        _wrong_pin,
        stand_in="a SoftHSM2 token initialised for the build",
        own_process=True,
    ),
    Case(
        "A KMS key that does not exist in the aws connection's region",
        "KeystoreError",
        "key_alias",
        "check the key id, alias or ARN in `key_alias` and the region of the `aws` connection",
        _no_such_kms_key,
        stand_in="moto's in-process AWS (the detail in parentheses is moto's wording of AWS's error)",
    ),
    Case(
        "mTLS with a key in an HSM or KMS",
        "JwtBearerConfigError",
        "mtls",
        "use a key file for mTLS, or DPoP with `dpop_key: signer` to bind tokens to the device's key",
        _mtls_with_a_kms_key,
        stand_in="a KMS key made in moto's in-process AWS",
    ),
    Case(
        "AWS STS refuses GetWebIdentityToken",
        "AssertionSourceError",
        "outbound web identity federation",
        "enable outbound web identity federation (IAM → Account settings), or allow `sts:GetWebIdentityToken` "
        "to the identity of the `aws` connection",
        _sts_refuses,
        stand_in="the devserver's STS, answering OutboundWebIdentityFederationDisabledException as AWS documents",
    ),
    Case(
        "The server does not accept the client's TLS certificate",
        "TokenEndpointError",
        "tls_client_auth",
        "register the certificate (or its subject) for the client, and point `auth_issuer` at the server so "
        "that its mTLS endpoint is used",
        _certificate_not_registered,
        stand_in="the devserver over HTTPS with mutual TLS and a certificate authority made for the build",
    ),
)
