"""Provider metadata read by Airflow through the ``apache_airflow_provider`` entry point.

``conn-fields`` and ``ui-field-behaviour`` are what the Airflow 3 UI renders as the connection
form. The fields come from the one declaration the settings parser also reads
(:mod:`airflow_jwt_provider.connection.fields`, plus the fields each installed signer declares),
so the form and the parser cannot disagree. Airflow calls :func:`get_provider_info` while it is
being imported itself, so nothing reached from here may import Airflow: the signer and token
cache drop-downs list the registered names from the distributions' metadata, without loading them.
"""

from __future__ import annotations

from typing import Any


def conn_fields() -> dict[str, dict[str, Any]]:
    """The form: every extra key (:mod:`~airflow_jwt_provider.connection.fields`), installed signers' included."""
    from airflow_jwt_provider.connection.fields import form_fields

    return {name: field.form() for name, field in form_fields().items()}


def _option(
    description: str, default: str | None, example: str | None = None, *, sensitive: bool = False
) -> dict[str, Any]:
    option: dict[str, Any] = {
        "description": description,
        "version_added": "0.1.0",
        "type": "string",
        "example": example,
        "default": default,
    }
    if sensitive:
        option["sensitive"] = True
    return option


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
                "Seconds a lock on a token request outlives its holder: a live holder renews it while it "
                "fetches (the others wait for its token, however long its retries take), a killed holder's "
                "lock frees itself after this, so nobody waits longer on a dead process.\n",
                "10",
            ),
            "token_cache_io_timeout": _option(
                "Seconds each call to the shared store may take; past that the store counts as unavailable "
                "and tokens are fetched directly for a while (with one warning).\n",
                "0.5",
            ),
            "token_cache_secret": _option(
                "A random secret every worker and the triggerer share, that the shared token cache "
                "(``file``, ``redis``) seals tokens with for connections without a key of their own (a "
                "platform's JWT: Kubernetes, GitHub Actions, a cloud's metadata server) and without a "
                "client secret. Keep it in a secrets backend (``token_cache_secret_secret``) or the "
                "environment (``AIRFLOW__JWT_BEARER__TOKEN_CACHE_SECRET``).\n",
                None,
                sensitive=True,
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
                "python-modules": ["airflow_jwt_provider.triggers.http", "airflow_jwt_provider.triggers.event"],
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
                "conn-fields": conn_fields(),
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
