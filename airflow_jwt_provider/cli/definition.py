"""The ``airflow jwt-bearer`` command group, declared in the provider info (``"cli"``).

Kept light on purpose: Airflow calls :func:`get_cli_commands` for every ``airflow``
invocation, so nothing here imports the provider's key, HTTP or crypto code; each command
is loaded by name when it runs (``lazy_load_command``).
"""

from __future__ import annotations

from airflow.cli.cli_config import ActionCommand, Arg, CLICommand, GroupCommand, lazy_load_command

_COMMANDS = "airflow_jwt_provider.cli.commands"

ARG_CONN_ID = Arg(("--conn-id",), help="the jwt_bearer connection", required=True, metavar="CONN_ID")
ARG_SUBJECT = Arg(("--subject",), help="sub claim for this call (default: the connection's subject)")
ARG_SCOPE = Arg(("--scope",), help="scope for this call (default: the connection's scope)")
ARG_KEY_FILE = Arg(("key_file",), help="keystore (JKS, JCEKS, PKCS#12), PEM private key or service-account JSON")
ARG_PASSWORD_ENV = Arg(
    ("--password-env",),
    help="name of an environment variable holding the store password or PEM passphrase "
    "(without it, a password is asked for at a prompt when one is needed)",
    metavar="VAR",
)
ARG_KEY_PASSWORD_ENV = Arg(
    ("--key-password-env",),
    help="name of an environment variable holding the key entry password (JKS/JCEKS, if not the store's)",
    metavar="VAR",
)
ARG_FORMAT = Arg(
    ("--format",),
    help="pem: the public key; cert: the certificate; jwks: a JWK set with kid, x5c and x5t#S256 (default: pem)",
    choices=("pem", "cert", "jwks"),
    default="pem",
)
ARG_ALIAS = Arg(("--alias",), help="export this key of key_alias instead of the one that signs now")
ARG_ALL = Arg(
    ("--all",), help="export every key listed in key_alias (e.g. to register the next key)", action="store_true"
)
ARG_SHOW_ASSERTION = Arg(
    ("--show-assertion",), help="also print the signed assertion (a credential)", action="store_true"
)
ARG_SHOW_TOKEN = Arg(("--show-token",), help="also print the access token (a credential)", action="store_true")

JWT_BEARER_COMMANDS = (
    ActionCommand(
        name="inspect",
        help="Describe a key file: type, aliases, keys, certificates, thumbprints, expiry (no connection needed)",
        func=lazy_load_command(f"{_COMMANDS}.inspect_key_file"),
        args=(ARG_KEY_FILE, ARG_PASSWORD_ENV, ARG_KEY_PASSWORD_ENV),
    ),
    ActionCommand(
        name="export",
        help="Print the public key, certificate or JWK set of a connection's key, to register it with the vendor",
        func=lazy_load_command(f"{_COMMANDS}.export_public_key"),
        args=(ARG_CONN_ID, ARG_FORMAT, ARG_ALIAS, ARG_ALL),
    ),
    ActionCommand(
        name="check",
        help="Diagnose a connection step by step: settings, preset rules, key, certificate, assertion, token, clock",
        func=lazy_load_command(f"{_COMMANDS}.check_connection"),
        args=(ARG_CONN_ID, ARG_SUBJECT, ARG_SCOPE),
    ),
    ActionCommand(
        name="mint",
        help="Mint an assertion and show its decoded header and claims (the JWT itself only with --show-assertion)",
        func=lazy_load_command(f"{_COMMANDS}.mint_assertion"),
        args=(ARG_CONN_ID, ARG_SUBJECT, ARG_SHOW_ASSERTION),
    ),
    ActionCommand(
        name="token",
        help="Fetch a fresh access token and show its type, scope and lifetime (the token only with --show-token)",
        func=lazy_load_command(f"{_COMMANDS}.fetch_token"),
        args=(ARG_CONN_ID, ARG_SUBJECT, ARG_SCOPE, ARG_SHOW_TOKEN),
    ),
)


def get_cli_commands() -> list[CLICommand]:
    """The ``jwt-bearer`` group (``get_provider_info()["cli"]`` names this function)."""
    return [
        GroupCommand(
            name="jwt-bearer",
            help="Keys and diagnosis of jwt_bearer connections (OAuth 2.0 JWT Bearer grant)",
            subcommands=JWT_BEARER_COMMANDS,
        )
    ]
