"""The ``airflow jwt-bearer`` commands; Airflow imports this module only when one of them runs.

Rules every command keeps: passwords come from an environment variable named on the command
line or from a prompt, never from the command line itself; no secret (password, PIN,
assertion, access token) is printed unless a ``--show-…`` flag asks for it; what a command
produces goes to stdout (so ``export`` can be piped into a file) and notes go to stderr; a
failure prints what to fix and exits with status 1.

Airflow's logging writes to stdout (file descriptor 1), and so do libraries' log lines
(boto3 credential notices, provider warnings). While a command runs, descriptor 1 is pointed
at stderr and the command writes its own output to a duplicate of the original stdout, so
``airflow jwt-bearer export ... > key.pem`` holds the key alone.
"""

from __future__ import annotations

import argparse
import functools
import getpass
import json
import logging
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import NoReturn, TextIO

from airflow_jwt_provider.connection.parser import parse_connection
from airflow_jwt_provider.connection.settings import ConnectionLike, JwtBearerSettings
from airflow_jwt_provider.exceptions import JwtBearerError, KeystoreError

#: Where the command's own output goes (the original stdout) while descriptor 1 points at stderr.
_stdout: TextIO = sys.stdout


def _command(function: Callable[[argparse.Namespace], None]) -> Callable[[argparse.Namespace], None]:
    """Run ``function`` with logs on stderr, its own output on the original stdout, provider logs quiet."""

    @functools.wraps(function)
    def run(args: argparse.Namespace) -> None:
        global _stdout
        sys.stdout.flush()
        saved = os.dup(1)
        _stdout = os.fdopen(os.dup(saved), "w", encoding="utf-8")
        os.dup2(2, 1)
        try:
            with _quiet_provider_logs():
                function(args)
        finally:
            _stdout.flush()
            sys.stdout.flush()
            os.dup2(saved, 1)
            os.close(saved)
            _stdout.close()
            _stdout = sys.stdout

    return run


@_command
def inspect_key_file(args: argparse.Namespace) -> None:
    """``inspect KEY_FILE``: what the file holds, entry by entry; works without any connection."""
    from airflow_jwt_provider.cli.describe import certificate_lines, key_lines
    from airflow_jwt_provider.signing.key_files.loader import load_every_signing_key
    from airflow_jwt_provider.signing.key_files.source import KeyRequest, KeySource, detect_keystore_type

    path = args.key_file
    try:
        with open(os.path.expanduser(path), "rb") as handle:
            material = handle.read()
    except OSError as exc:
        _fail(f"{path}: cannot be read ({exc.strerror})")
    detected = detect_keystore_type(material)
    if detected is None:
        _fail(f"{path}: not a keystore (JKS, JCEKS, PKCS#12), a PEM private key or a service-account JSON key")
    password = _secret_from_env(args.password_env, "--password-env")
    key_password = _secret_from_env(args.key_password_env, "--key-password-env")

    def request(store_password: str | None) -> KeyRequest:
        return KeyRequest(KeySource(path=path), None, store_password, None, key_password)

    try:
        keys = load_every_signing_key(request(password))
    except KeystoreError as exc:
        if password is not None or exc.field not in ("keystore_password", "key_password"):
            _fail(_for_the_cli(str(exc)))
        password = _prompt(f"Password of {path}")
        if password is None:
            _fail(
                f"{path} needs a password: give the name of an environment variable holding it with "
                "--password-env VAR, or run the command in a terminal to be asked for it"
            )
        try:
            keys = load_every_signing_key(request(password))
        except KeystoreError as again:
            _fail(_for_the_cli(str(again)))

    names = {"pkcs12": "PKCS#12 keystore", "jks": "JKS keystore", "jceks": "JCEKS keystore"}
    names.update(pem="PEM private key", google_json="Google service-account JSON key")
    _out(f"{path}: {names[detected]}, {len(keys)} private key(s)")
    for key in keys:
        _out("")
        _out(f"alias {key.alias!r}" if key.alias else "key")
        lines = key_lines(key.public_key) + certificate_lines(key.certificate)
        if key.issuer:
            lines.append(f"client_email (iss): {key.issuer}")
        if key.key_id:
            lines.append(f"private_key_id (kid): {key.key_id}")
        if key.token_uri:
            lines.append(f"token_uri: {key.token_uri}")
        for line in lines:
            _out(f"  {line}")
        warning = _expiry_note(key.certificate, key.alias)
        if warning:
            _out(f"  {warning}")


@_command
def export_public_key(args: argparse.Namespace) -> None:
    """``export --conn-id ID [--format pem|cert|jwks] [--alias A | --all]``: what to upload to the vendor."""
    from airflow_jwt_provider.cli.describe import certificate_pem, public_jwk, public_key_pem
    from airflow_jwt_provider.signing.rotation import BuiltKey, build_key, choose_key, every_key

    if args.alias and args.all:
        _fail("give --alias or --all, not both")
    settings = _settings(args.conn_id)
    keys: list[BuiltKey] = []
    try:
        if args.all:
            for candidate in every_key(settings):
                if candidate.key is None:
                    _fail(f"key {candidate.name!r} cannot be used: {candidate.problem}")
                keys.append(candidate.key)
        elif args.alias:
            folded = [name.lower() for name in settings.key_aliases]
            index = folded.index(args.alias.lower()) if args.alias.lower() in folded else None
            keys.append(build_key(settings, args.alias, index))
        else:
            keys.append(choose_key(settings).key)
    except JwtBearerError as exc:
        _fail(str(exc))

    if args.format == "jwks":
        jwks = []
        for key in keys:
            jwks.append(
                public_jwk(
                    key.signer.public_key,
                    algorithm=key.signer.algorithm,
                    kid=key.key_id,
                    certificate=key.signer.certificate,
                )
            )
            if not key.key_id:
                _note(
                    f"key {key.name or '(the key)'!r} has no kid in the connection: its JWK's kid is the RFC 7638 "
                    f"thumbprint {jwks[-1]['kid']}; set key_id to it if the server finds keys by kid"
                )
        _out(json.dumps({"keys": jwks}, indent=2))
        return
    for key in keys:
        if args.format == "cert":
            certificate = key.signer.certificate
            if certificate is None:
                _fail(
                    f"key {key.name or '(the key)'!r} has no certificate: export --format pem for its public key, "
                    "or (signer pkcs11 / aws_kms) set certificate_file to the certificate issued for it"
                )
            _out(certificate_pem(certificate), end="")
        else:
            _out(public_key_pem(key.signer.public_key), end="")
        _note(f"exported {key.describe()}")


@_command
def check_connection(args: argparse.Namespace) -> None:
    """``check --conn-id ID``: the diagnosis, step by step; exit status 1 when a step failed."""
    from airflow_jwt_provider.cli.diagnosis import diagnose, step_lines, verdict

    conn = _connection(args.conn_id)
    failed = False
    for step in diagnose(conn, subject=args.subject, scope=args.scope):
        failed = failed or step.failed
        for line in step_lines(step):
            _out(line)
    _out(verdict(args.conn_id, failed))
    if failed:
        raise SystemExit(1)


@_command
def mint_assertion(args: argparse.Namespace) -> None:
    """``mint --conn-id ID [--subject S] [--show-assertion]``: the JWT a token request would send now, decoded.

    Minted with the connection's key, or (keyless) the platform's current JWT.
    """
    from airflow_jwt_provider.cli.describe import claim_lines, decode_jwt
    from airflow_jwt_provider.connection.token_parameters import TokenParameters
    from airflow_jwt_provider.tokens.credentials import JwtBearerCredentials

    settings = _settings(args.conn_id)
    try:
        credentials = JwtBearerCredentials.from_settings(settings)
        assertion = credentials.source.assertion(TokenParameters.of(subject=args.subject))
    except JwtBearerError as exc:
        _fail(str(exc))
    header, claims = decode_jwt(assertion)
    _out(f"header: {json.dumps(header)}")
    _out("claims:")
    for line in claim_lines(claims):
        _out(f"  {line}")
    if credentials.choice is not None:
        _note(credentials.choice.describe())
    else:
        _note(f"not signed here: from {credentials.source.describe()}")
    if args.show_assertion:
        _out(f"assertion: {assertion}")
    else:
        _note("the assertion is a credential until it expires: add --show-assertion to print it")


@_command
def fetch_token(args: argparse.Namespace) -> None:
    """``token --conn-id ID [--subject S] [--scope S] [--show-token]``: a fresh token, described."""
    from airflow_jwt_provider.connection.token_parameters import TokenParameters
    from airflow_jwt_provider.tokens.credentials import JwtBearerCredentials

    settings = _settings(args.conn_id)
    try:
        credentials = JwtBearerCredentials.from_settings(settings)
        token = credentials.get_token(TokenParameters.of(subject=args.subject, scope=args.scope), force_refresh=True)
    except JwtBearerError as exc:
        _fail(str(exc))
    _out(f"token_type: {token.token_type}")
    _out(f"scope: {token.scope if token.scope else '(none given by the server)'}")
    if token.expires_at is not None:
        _out(f"lifetime: {int(token.lifetime.total_seconds())} s (expires {token.expires_at:%Y-%m-%d %H:%M:%S} UTC)")
    else:
        _out("lifetime: not given by the server (expires_in missing)")
    for name, value in token.extra.items():
        if name not in ("refresh_token", "id_token"):  # credentials too
            _out(f"{name}: {json.dumps(value)}")
    if args.show_token:
        _out(f"access_token: {token.access_token}")
    else:
        _note("the access token is not shown: add --show-token to print it")


# --- helpers ---------------------------------------------------------------------------------------


def _connection(conn_id: str) -> ConnectionLike:
    from airflow.sdk import BaseHook

    try:
        conn: ConnectionLike = BaseHook.get_connection(conn_id)
    except Exception as exc:  # AirflowNotFoundException, or a secrets backend that cannot be reached
        if type(exc).__name__ == "AirflowNotFoundException":
            _fail(
                f"connection {conn_id!r} is not defined (looked in AIRFLOW_CONN_{conn_id.upper()}, the secrets "
                "backends and the metadata database)"
            )
        _fail(f"connection {conn_id!r} cannot be read ({type(exc).__name__})")
    if getattr(conn, "conn_type", "jwt_bearer") not in ("jwt_bearer", "jwt-bearer"):
        _fail(f"connection {conn_id!r} is of type {getattr(conn, 'conn_type', '?')!r}, not jwt_bearer")
    return conn


def _settings(conn_id: str) -> JwtBearerSettings:
    conn = _connection(conn_id)
    try:
        return parse_connection(conn)
    except JwtBearerError as exc:
        _fail(f"{exc} (airflow jwt-bearer check --conn-id {conn_id} goes through the settings step by step)")


def _secret_from_env(variable: str | None, option: str) -> str | None:
    if variable is None:
        return None
    value = os.environ.get(variable)
    if not value:
        _fail(f"{option} {variable}: the environment variable {variable} is not set or empty")
    _mask(value)
    return value


def _prompt(what: str) -> str | None:
    """Ask for a secret at the terminal (not echoed); ``None`` when there is no terminal."""
    if not sys.stdin.isatty():
        return None
    try:
        value = getpass.getpass(f"{what}: ") or None
    except (EOFError, KeyboardInterrupt):
        return None
    _mask(value)
    return value


def _mask(secret: str | None) -> None:
    """Keep a password the command was given out of any log line (Airflow's masker, once per value)."""
    from airflow_jwt_provider.common.redaction import mask_stable_secret

    mask_stable_secret(secret)


def _expiry_note(certificate: object, alias: str | None) -> str | None:
    from cryptography import x509

    from airflow_jwt_provider.signing.certificates import certificate_status, certificate_warning

    if not isinstance(certificate, x509.Certificate):
        return None
    if not certificate_status(certificate).usable:
        return "EXPIRED: create a new key pair and register its certificate with the authorization server"
    warning = certificate_warning(certificate, alias)
    return f"WARNING: {warning}" if warning else None


def _for_the_cli(message: str) -> str:
    """A key loading error as the command line sees it: the password comes from --password-env here."""
    if "keystore_password" in message or "key_password" in message:
        return f"{message} (here: the password given with --password-env / --key-password-env or at the prompt)"
    return message


@contextmanager
def _quiet_provider_logs() -> Iterator[None]:
    """The commands print what the provider would log (key choice, expiry): keep its log lines off the output."""
    logger = logging.getLogger("airflow_jwt_provider")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _out(text: str, end: str = "\n") -> None:
    print(text, end=end, file=_stdout, flush=True)


def _note(text: str) -> None:
    print(f"note: {text}", file=sys.stderr, flush=True)


def _fail(message: str) -> NoReturn:
    print(f"error: {message}", file=sys.stderr, flush=True)
    raise SystemExit(1)
