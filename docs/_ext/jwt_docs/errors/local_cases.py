"""Errors of the connection, its key material and the platform's JWT: made in the case's temporary directory.

Each case writes what it needs there (a keystore, a PEM key, a JWT file) and calls the parser or the
hook as a task does; none needs more than the local server's token endpoint, and most fail before it.
"""

from __future__ import annotations

import os

from jwt_docs.keys import EXAMPLE_TOKEN_URL, STORE_PASSWORD, jks, pem, pkcs12

from .case import (
    CLIENT_SECRET,
    WRONG_PASSWORD,
    Case,
    Workspace,
    hook,
    key_file_hook,
    parse,
    platform_file_hook,
    without_module,
)


def _typo(ws: Workspace) -> object:
    return parse(ws, {"auth_url": EXAMPLE_TOKEN_URL, "key_file": "/keys/k.p12", "keystore_pasword": STORE_PASSWORD})


def _preset_claim(ws: Workspace) -> object:
    return parse(ws, {"preset": "box", "key_file": "/keys/box.p12", "subject": "1234567"}, password=CLIENT_SECRET)


def _other_signer(ws: Workspace) -> object:
    extra = {"auth_url": EXAMPLE_TOKEN_URL, "signer": "pkcs11", "key_file": "/keys/k.p12"}
    extra.update(pkcs11_module="/usr/lib/softhsm/libsofthsm2.so", pkcs11_token_label="jwt-signing")
    return parse(ws, extra, conn_id="hsm_api")


def _both_bindings(ws: Workspace) -> object:
    return parse(ws, {"auth_url": EXAMPLE_TOKEN_URL, "key_file": "/keys/k.p12", "dpop": True, "mtls": True})


def _wrong_algorithm(ws: Workspace) -> object:
    key = pem(ws.directory / "k.pem")
    return key_file_hook(ws, key, keystore_password=None, algorithm="RS256").mint_assertion()


def _wrong_password(ws: Workspace) -> object:
    store = pkcs12(ws.directory / "k.p12")
    return key_file_hook(ws, store, keystore_password=WRONG_PASSWORD).mint_assertion()


def _no_such_alias(ws: Workspace) -> object:
    return key_file_hook(ws, pkcs12(ws.directory / "k.p12"), key_alias="signing-2027").mint_assertion()


def _expired_certificate(ws: Workspace) -> object:
    return key_file_hook(ws, pkcs12(ws.directory / "k.p12", expired=True)).mint_assertion()


def _jks_without_extra(ws: Workspace) -> object:
    store = jks(ws.directory / "legacy.jks", ["signing"])
    with without_module("jks"):
        return key_file_hook(ws, store).mint_assertion()


def _several_entries(ws: Workspace) -> object:
    return key_file_hook(ws, jks(ws.directory / "k.jks", ["signing-2026", "signing-2027"])).mint_assertion()


def _no_key_can_sign(ws: Workspace) -> object:
    store = pkcs12(ws.directory / "k.p12", expired=True)
    return key_file_hook(ws, store, key_alias="signing, signing-2027").mint_assertion()


def _expired_file(ws: Workspace) -> object:
    return platform_file_hook(ws, expired=True).get_token()


def _unset_variable(ws: Workspace) -> object:
    os.environ.pop("AZURE_FEDERATED_TOKEN_FILE", None)
    extra = {"auth_url": f"{ws.server}/token", "assertion_source": "file"}
    extra["assertion_file"] = "$AZURE_FEDERATED_TOKEN_FILE"
    return hook(ws, "entra_api", extra).get_token()


def _github_outside_actions(ws: Workspace) -> object:
    for name in ("ACTIONS_ID_TOKEN_REQUEST_URL", "ACTIONS_ID_TOKEN_REQUEST_TOKEN"):
        os.environ.pop(name, None)
    extra = {"auth_url": f"{ws.server}/token", "assertion_source": "github_actions", "assertion_audience": "api"}
    return hook(ws, "gha_api", extra).get_token()


def _per_call_subject(ws: Workspace) -> object:
    return platform_file_hook(ws, expired=True).get_token(subject="someone-else")


ROTATING = "[Rotating a key](keys.md#rotating-a-key)"

CASES: tuple[Case, ...] = (
    Case("A typo in an extra key", "JwtBearerConfigError", "keystore_password", "fix the named key", _typo),
    Case(
        "A preset's mandatory claim is missing",
        "JwtBearerConfigError",
        "box_sub_type",
        "add the claim (the message names the vendor page)",
        _preset_claim,
    ),
    Case(
        "A setting of another signer",
        "JwtBearerConfigError",
        "key_file",
        "remove the leftover setting, or correct `signer`",
        _other_signer,
    ),
    Case("Two bindings at once", "JwtBearerConfigError", "dpop", "choose `dpop` or `mtls`", _both_bindings),
    Case(
        "The algorithm does not fit the key",
        "JwtBearerConfigError",
        "algorithm",
        "remove `algorithm` (it follows the key) or correct it",
        _wrong_algorithm,
    ),
    Case(
        "The keystore password is wrong",
        "KeystoreError",
        "keystore_password",
        "check the password; PKCS#12 cannot tell a wrong password from a damaged file",
        _wrong_password,
    ),
    Case(
        "No such key in the keystore",
        "KeystoreError",
        "signing-2027",
        "correct `key_alias` (the message lists the entries)",
        _no_such_alias,
    ),
    Case(
        "Several keys in the keystore and no key_alias",
        "KeystoreError",
        "key_alias",
        "set `key_alias` to one of the entries the message lists",
        _several_entries,
    ),
    Case(
        "The key's certificate has expired",
        "KeystoreError",
        "expired",
        f"renew the key pair and register it ({ROTATING}); a certificate expiring within 30 days is a warning "
        "in the task log",
        _expired_certificate,
    ),
    Case(
        "No key of key_alias can sign",
        "KeystoreError",
        "key_alias",
        f"add a valid key, register its certificate with the server and list it first in `key_alias` ({ROTATING})",
        _no_key_can_sign,
    ),
    Case(
        "A JKS keystore without the [jks] extra",
        "KeystoreError",
        "airflow-jwt-provider[jks]",
        "install the extra, or convert the keystore once with the `keytool` command the message gives",
        _jks_without_extra,
        stand_in="pyjks hidden from the import system while the case runs, as on an installation without the extra",
    ),
    Case(
        "The platform's JWT in assertion_file has expired",
        "AssertionSourceError",
        "assertion_file",
        "check the projected volume's `expirationSeconds` and the kubelet; the task fails before any request",
        _expired_file,
    ),
    Case(
        "The variable naming the token file is not set",
        "AssertionSourceError",
        "AZURE_FEDERATED_TOKEN_FILE",
        "run the worker in a pod of a service account with workload identity enabled",
        _unset_variable,
    ),
    Case(
        "github_actions outside a GitHub Actions job",
        "AssertionSourceError",
        "ACTIONS_ID_TOKEN_REQUEST_URL",
        "grant the workflow `permissions: id-token: write`, or use another source",
        _github_outside_actions,
    ),
    Case(
        "A per-call subject with a platform's JWT",
        "JwtBearerConfigError",
        "subject",
        "use a connection per identity, or `assertion_source: sign`",
        _per_call_subject,
    ),
)
