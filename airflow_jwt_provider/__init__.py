"""Apache Airflow provider for the OAuth 2.0 JWT Bearer grant (RFC 7523)."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

#: The connection type this provider registers, and the connection id its hooks and operators use by default.
CONN_TYPE = "jwt_bearer"
DEFAULT_CONN_ID = "jwt_bearer_default"

try:
    __version__ = version("airflow-jwt-provider")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"
