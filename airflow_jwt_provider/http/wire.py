"""An API answer carried from the triggerer to the worker, as the JSON a trigger event holds.

The trigger sends the request with aiohttp; the worker judges the answer with the same code
as in synchronous mode. So the answer crosses the metadata database as a JSON-able dict and is
rebuilt on the worker as a ``requests.Response``: ``response_check`` and friends see the same
object type in every mode. The request's headers (the token) are never part of it.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any, Literal, TypedDict

import requests
from requests.structures import CaseInsensitiveDict

from airflow_jwt_provider.common.redaction import REPLACEMENT
from airflow_jwt_provider.exceptions import (
    AssertionSourceError,
    JwtBearerConfigError,
    JwtBearerError,
    KeystoreError,
    TokenEndpointError,
)
from airflow_jwt_provider.http.response import sent_credential

#: Provider errors a trigger event can name, raised again as themselves on the worker.
_EVENT_ERRORS: dict[str, type[JwtBearerError]] = {
    cls.__name__: cls for cls in (JwtBearerConfigError, KeystoreError, TokenEndpointError, AssertionSourceError)
}


class WireResponse(TypedDict):
    """An answer as a trigger event holds it (:func:`response_to_wire`)."""

    status: int
    reason: str
    headers: dict[str, str]
    url: str
    method: str
    body: str  # base64 of the body bytes
    encoding: str | None


class SuccessEvent(TypedDict):
    """The trigger got an answer (whatever its status): the worker judges it."""

    status: Literal["success"]
    response: WireResponse


class ErrorEvent(TypedDict):
    """The trigger got no answer to judge (token refused, key unreadable, network error...)."""

    status: Literal["error"]
    error_type: str
    message: str


def build_response(
    *,
    status: int,
    reason: str | None,
    headers: Mapping[str, str],
    url: str,
    method: str,
    body: bytes,
    encoding: str | None,
    authorization: str | None = None,
) -> requests.Response:
    """A ``requests.Response`` (with a ``request`` naming method and URL) from an answer's parts.

    The async hook answers with this too, so that code judging an answer never needs to know
    which HTTP client fetched it.
    """
    response = requests.Response()
    response.status_code = int(status)
    response.reason = reason or ""
    response.headers = CaseInsensitiveDict(headers)
    response.url = url
    response._content = body
    response._content_consumed = True  # read in full: close() has no connection to release
    response.encoding = encoding
    request_headers = {"Authorization": authorization} if authorization else None
    response.request = requests.Request(method or "GET", url or "http://unknown/", headers=request_headers).prepare()
    return response


def response_to_wire(response: requests.Response) -> WireResponse:
    """A JSON-able answer for a trigger event; the request's headers (the token) are not in it.

    The event is stored in the metadata database: an API that repeated the credential it was
    sent would put the token there, so that exact value is replaced by ``***`` in the body.
    """
    request = response.request
    body = response.content or b""
    sent = sent_credential(response)
    if sent:
        body = body.replace(sent.encode("utf-8"), REPLACEMENT.encode("ascii"))
    return {
        "status": response.status_code,
        "reason": response.reason or "",
        "headers": dict(response.headers),
        "url": response.url or "",
        "method": (request.method if request is not None else None) or "GET",
        "body": base64.b64encode(body).decode("ascii"),
        "encoding": response.encoding,
    }


def response_from_wire(wire: Mapping[str, Any]) -> requests.Response:
    """The ``requests.Response`` a wire answer describes."""
    return build_response(
        status=int(wire["status"]),
        reason=wire.get("reason"),
        headers=wire.get("headers") or {},
        url=wire.get("url") or "",
        method=wire.get("method") or "GET",
        body=base64.b64decode(wire.get("body") or ""),
        encoding=wire.get("encoding"),
    )


def success_event(wire: WireResponse) -> SuccessEvent:
    return {"status": "success", "response": wire.copy()}


def error_event(exc: BaseException) -> ErrorEvent:
    """A trigger failure as an event; the message is redacted (provider errors carry no secret anyway)."""
    from airflow.sdk.log import redact

    return {"status": "error", "error_type": type(exc).__name__, "message": str(redact(str(exc)))}


def response_from_event(event: Mapping[str, Any]) -> requests.Response:
    """The answer a trigger event carries, or the trigger's error raised again on the worker."""
    if event.get("status") == "success":
        return response_from_wire(event["response"])
    error_type = event.get("error_type") or "Error"
    error_class = _EVENT_ERRORS.get(error_type, JwtBearerError)
    message = event.get("message") or "no message"
    if error_class is JwtBearerError:
        message = f"{error_type}: {message}"
    raise error_class(f"The trigger failed: {message}")
