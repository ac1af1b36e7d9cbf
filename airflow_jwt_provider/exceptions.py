"""Exceptions raised by the provider.

Every error a user can cause is one of these, so a DAG author can catch
:class:`JwtBearerError` and know the message is safe to log: messages name the
connection field or claim at fault and what to do, and never contain key
material, passwords, client secrets, assertions or access tokens.
"""

from __future__ import annotations

from airflow.sdk.exceptions import AirflowException


class JwtBearerError(AirflowException):
    """Base class of every error raised by airflow-jwt-provider."""


class JwtBearerConfigError(JwtBearerError):
    """A connection setting is missing, unknown, of the wrong type, or contradicts another.

    :param field: the connection field (``login``, ``host``...) or extra key at fault, if any.
    """

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class KeystoreError(JwtBearerError):
    """The signing key cannot be read: wrong password, unknown alias, unsupported or damaged file."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class AssertionSourceError(JwtBearerError):
    """The platform's JWT cannot be had: a missing or unreadable token file, an expired token, an unreachable
    metadata server, a refused ``GetWebIdentityToken``…

    :param field: the setting that names the source (``assertion_file``, ``assertion_audience``…).
    """

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class TokenEndpointError(JwtBearerError):
    """The token endpoint refused the request or answered something that is not a token.

    Carries the RFC 6749 §5.2 fields so that callers can branch on ``error``
    (``invalid_grant``, ``invalid_client``...) rather than parse the message.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        error: str | None = None,
        error_description: str | None = None,
        error_uri: str | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.error_description = error_description
        self.error_uri = error_uri
        self.hint = hint


class ApiResponseError(JwtBearerError):
    """The API answered with an HTTP error status (after the one token refresh on 401).

    ``response`` is kept for callers that want the details; it is not part of the message.
    """

    def __init__(self, message: str, *, status: int, response: object | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.response = response
