"""Provider metadata read by Airflow through the ``apache_airflow_provider`` entry point.

``conn-fields`` and ``ui-field-behaviour`` are what the Airflow 3 UI renders as the
connection form. Secrets use ``format: password``; every key below is also an extra
key of the connection contract (see ``settings.EXTRA_KEYS``).
"""

from __future__ import annotations

from typing import Any

_STRING = {"type": ["string", "null"]}
_SECRET = {"type": ["string", "null"], "format": "password"}
#: How the form shows an optional drop-down left empty (it would otherwise read "null").
_UNSET_DISPLAY = {"null": "(default)"}


def _field(label: str, description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"label": label, "description": description, "schema": schema or _STRING}


CONN_FIELDS: dict[str, dict[str, Any]] = {
    "preset": _field(
        "Vendor preset",
        "Fills and checks the vendor's mandatory settings: box, salesforce, google, docusign, servicenow, entra.",
        {
            "type": ["string", "null"],
            "values_display": _UNSET_DISPLAY,
            "enum": [None, "box", "salesforce", "google", "docusign", "servicenow", "entra"],
        },
    ),
    "auth_url": _field("Token endpoint URL", "Where the JWT is exchanged for a token (also the default 'aud')."),
    "signer": _field(
        "Signer",
        "Where the private key lives: local (key file or inline key, the default), pkcs11 (an HSM or smart card), "
        "aws_kms (an AWS KMS key). Settings of another signer are refused.",
        {
            "type": ["string", "null"],
            "values_display": _UNSET_DISPLAY,
            "enum": [None, "local", "pkcs11", "aws_kms"],
        },
    ),
    "key_file": _field(
        "Key file path",
        "Keystore (JKS, JCEKS, PKCS#12), PEM private key or Google service-account JSON, readable by workers.",
    ),
    "private_key": _field(
        "Private key (inline)",
        "Instead of a key file: PEM text, base64 keystore bytes, or service-account JSON. Stored masked.",
        _SECRET,
    ),
    "keystore_password": _field(
        "Keystore password / PIN",
        "Store password; also the passphrase of an encrypted PEM, and the user PIN of the token with signer pkcs11.",
        _SECRET,
    ),
    "key_alias": _field(
        "Key alias",
        "The key that signs: keystore alias, PKCS#11 key label or KMS key id/ARN/alias. Several, comma-separated, "
        "to rotate: the first valid one signs.",
    ),
    "key_password": _field("Key password", "Password of the key entry, if it differs from the store's.", _SECRET),
    "keystore_type": _field(
        "Keystore type",
        "Normally detected from the content: jks, jceks, pkcs12, pem, google_json.",
        {
            "type": ["string", "null"],
            "values_display": _UNSET_DISPLAY,
            "enum": [None, "jks", "jceks", "pkcs12", "pem", "google_json"],
        },
    ),
    "pkcs11_module": _field(
        "PKCS#11 module", "signer pkcs11: path of the HSM vendor's PKCS#11 library (.so) on every worker."
    ),
    "pkcs11_token_label": _field("PKCS#11 token label", "signer pkcs11: the label of the token holding the key."),
    "pkcs11_key_id": _field(
        "PKCS#11 key id", "signer pkcs11: the key's CKA_ID in hex, instead of (or with) its label in Key alias."
    ),
    "aws_conn_id": _field(
        "AWS connection", "signer aws_kms: the Airflow aws connection with credentials and region; default aws_default."
    ),
    "certificate_file": _field(
        "Certificate file",
        "signer pkcs11 or aws_kms: PEM/DER certificate of the key, when the device holds only the key (x5t headers).",
    ),
    "issuer": _field("Issuer (iss)", "Defaults to the client id (Login)."),
    "subject": _field("Subject (sub)", "User, account or enterprise id the token acts for; tasks may override."),
    "audience": _field("Audience (aud)", "Defaults to the token endpoint URL (or the preset's rule)."),
    "lifetime": _field("Assertion lifetime (s)", "Seconds from iat to exp; default 60.", {"type": ["integer", "null"]}),
    "claims": _field(
        "Extra claims",
        'JSON object of additional claims, e.g. {"box_sub_type": "enterprise"}.',
        {"type": ["object", "null"]},
    ),
    "scope": _field("Scope", "Space-separated scopes to request."),
    "algorithm": _field(
        "Signing algorithm",
        "Defaults from the key: RSA → RS256, EC by curve, Ed25519 → EdDSA.",
        {
            "type": ["string", "null"],
            "values_display": _UNSET_DISPLAY,
            "enum": [None, "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"],
        },
    ),
    "key_id": _field(
        "Key id (kid)",
        'kid header, as registered with the server (Box public key id, ...); a JSON list ["k2", "k1"] gives one '
        "per Key alias entry.",
    ),
    "x5t": _field(
        "Certificate thumbprint headers", "Add x5t#S256 and x5t (Microsoft Entra).", {"type": ["boolean", "null"]}
    ),
    "nbf": _field("Add nbf claim", "Add a not-before claim equal to iat.", {"type": ["boolean", "null"]}),
    "client_auth": _field(
        "Client authentication",
        "How the client authenticates at the token endpoint; default client_secret_post when a secret is set.",
        {
            "type": ["string", "null"],
            "values_display": _UNSET_DISPLAY,
            "enum": [None, "none", "client_secret_post", "client_secret_basic", "private_key_jwt"],
        },
    ),
    "auth_params": _field(
        "Extra token request fields",
        'JSON object added to the token request form, e.g. {"resource": "..."}.',
        {"type": ["object", "null"]},
    ),
    "token_cache": _field(
        "Token cache",
        "Where tokens are shared: memory (each process), file (every process of a machine), redis (every "
        "worker of the cluster). Default: [jwt_bearer] token_cache, else memory.",
        {
            "type": ["string", "null"],
            "values_display": _UNSET_DISPLAY,
            "enum": [None, "memory", "file", "redis"],
        },
    ),
    "token_cache_conn_id": _field(
        "Token cache Redis connection",
        "The Airflow redis connection of token_cache redis (e.g. the Celery broker's Redis). "
        "Default: [jwt_bearer] token_cache_conn_id, else redis_default.",
    ),
    "token_cache_dir": _field(
        "Token cache directory",
        "The folder of token_cache file, owner-only. Default: [jwt_bearer] token_cache_dir, else "
        "$AIRFLOW_HOME/jwt_bearer_token_cache.",
    ),
    "default_token_lifetime": _field(
        "Default token lifetime (s)",
        "How long a token is used when the endpoint gives no expires_in (Salesforce); default 300.",
        {"type": ["integer", "null"]},
    ),
    "timeout": _field("HTTP timeout (s)", "For token and API calls; default 30.", {"type": ["number", "null"]}),
    "verify": _field("TLS verification", "true (default), false, or the path of a CA bundle."),
    "proxies": _field("Proxies", 'Proxy URL, or JSON object like {"https": "http://proxy:3128"}.', _SECRET),
    "trusted_hosts": _field(
        "Trusted hosts",
        "Other hosts the token may be sent to besides the API base URL, comma-separated "
        "(files.example.com, *.example.com, host:port); https only. Requests elsewhere are refused.",
    ),
}


def _option(description: str, default: str | None, example: str | None = None) -> dict[str, Any]:
    return {
        "description": description,
        "version_added": "0.1.0",
        "type": "string",
        "example": example,
        "default": default,
    }


#: The ``[jwt_bearer]`` section of the Airflow configuration: deployment-wide defaults of the token
#: cache (a connection's ``token_cache*`` extras win) and the knobs only a deployment sets.
CONFIG: dict[str, dict[str, Any]] = {
    "jwt_bearer": {
        "description": "Defaults of the jwt_bearer connections (airflow-jwt-provider). A connection's extra of "
        "the same name wins over these.\n",
        "options": {
            "token_cache": _option(
                "Where access tokens are cached: ``memory`` (each process alone), ``file`` (every process of "
                "one machine, through a directory), ``redis`` (every worker of the cluster, through the Redis "
                "of ``token_cache_conn_id``). Shared tokens are encrypted with a key derived from the "
                "connection's signing key.\n",
                "memory",
                "redis",
            ),
            "token_cache_conn_id": _option(
                "The Airflow connection of type ``redis`` that ``token_cache = redis`` uses, e.g. one that "
                "points at the Celery broker's Redis (apache-airflow-providers-redis, the provider's "
                "``[redis]`` extra).\n",
                "redis_default",
            ),
            "token_cache_dir": _option(
                "The directory of ``token_cache = file`` (created owner-only). Empty: "
                "``$AIRFLOW_HOME/jwt_bearer_token_cache``.\n",
                "",
                "/var/cache/airflow/jwt_bearer",
            ),
            "token_cache_wait": _option(
                "Seconds a process waits for the token request another process is making for the same token "
                "before it asks for one itself (and the time after which a lock left by a killed process "
                "expires).\n",
                "10",
            ),
            "token_cache_io_timeout": _option(
                "Seconds each call to the shared store may take; past that the store counts as unavailable "
                "and tokens are fetched directly for a while (with one warning).\n",
                "0.5",
            ),
        },
    }
}


def get_provider_info() -> dict[str, Any]:
    return {
        "package-name": "airflow-jwt-provider",
        "name": "JWT Bearer (OAuth 2.0 RFC 7523)",
        "description": "Call APIs server-to-server with access tokens from the OAuth 2.0 JWT Bearer grant.",
        "integrations": [
            {
                "integration-name": "OAuth 2.0 JWT Bearer",
                "external-doc-url": "https://datatracker.ietf.org/doc/html/rfc7523",
                "tags": ["protocol"],
            }
        ],
        "hooks": [
            {
                "integration-name": "OAuth 2.0 JWT Bearer",
                "python-modules": ["airflow_jwt_provider.hooks.jwt_bearer"],
            }
        ],
        "operators": [
            {
                "integration-name": "OAuth 2.0 JWT Bearer",
                "python-modules": ["airflow_jwt_provider.operators.http"],
            }
        ],
        "sensors": [
            {
                "integration-name": "OAuth 2.0 JWT Bearer",
                "python-modules": ["airflow_jwt_provider.sensors.http"],
            }
        ],
        "triggers": [
            {
                "integration-name": "OAuth 2.0 JWT Bearer",
                "python-modules": ["airflow_jwt_provider.triggers.http"],
            }
        ],
        # `airflow jwt-bearer inspect|export|check|mint|token`; the definitions import nothing heavy.
        "cli": ["airflow_jwt_provider.cli.definition.get_cli_commands"],
        "config": CONFIG,
        "connection-types": [
            {
                "connection-type": "jwt_bearer",
                "hook-class-name": "airflow_jwt_provider.hooks.jwt_bearer.JwtBearerHook",
                "hook-name": "JWT Bearer (OAuth 2.0 RFC 7523)",
                "conn-fields": CONN_FIELDS,
                "ui-field-behaviour": {
                    "hidden-fields": ["schema"],
                    "relabeling": {"host": "API base URL", "login": "Client ID", "password": "Client secret"},
                    "placeholders": {
                        "host": "https://api.box.com/2.0",
                        "login": "client id (the assertion's iss)",
                        "password": "client secret (only if the vendor wants one)",
                    },
                },
            }
        ],
    }
