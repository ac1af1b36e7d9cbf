"""Apache Airflow provider for the OAuth 2.0 JWT Bearer grant (RFC 7523)."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("airflow-jwt-provider")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"
