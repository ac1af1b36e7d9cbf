"""Judging an API answer the same way in every mode: status checks, the body, excerpts for logs.

An answer is data from the server, and a server may repeat what it was sent: every text built
here from a body (an error message, a logged excerpt) goes through
:func:`~airflow_jwt_provider.common.redaction.redact_text` with the credential the request carried.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import requests

from airflow_jwt_provider.common.redaction import REPLACEMENT, redact_text
from airflow_jwt_provider.exceptions import ApiResponseError

_BODY_EXCERPT = 300
_BODY_LOG_EXCERPT = 1000
_REDACTION_WINDOW = 65536


def _request_line(response: requests.Response) -> str:
    request = response.request
    url = (response.url or (request.url if request is not None else "") or "").split("?", 1)[0]
    return f"{request.method if request is not None else ''} {url}".strip()


def sent_credential(response: requests.Response) -> str | None:
    """The credential the request carried in its ``Authorization`` header, if any."""
    request = response.request
    header = request.headers.get("Authorization") if request is not None else None
    if isinstance(header, bytes):
        header = header.decode("latin-1")
    return (header.partition(" ")[2].strip() or None) if header else None


def safe_text(response: requests.Response, limit: int) -> str:
    """The start of the body, at most ``limit`` characters, without credentials or control characters."""
    # Redacted before it is cut (a cut through a secret would leave part of it), within a window
    # far longer than any credential.
    text = redact_text((response.text or "")[:_REDACTION_WINDOW], (sent_credential(response),))
    text = "".join(ch if ch.isprintable() or ch in "\n\t" else "?" for ch in text)
    return text if len(text) <= limit else text[:limit] + f"... ({len(response.text or '')} characters)"


def raise_for_status(response: requests.Response) -> None:
    """Raise :class:`ApiResponseError` naming the request and the status for 4xx/5xx answers."""
    if response.status_code < 400:
        return
    excerpt = safe_text(response, _BODY_EXCERPT).strip()
    hint = ""
    if response.status_code == 401:
        hint = " (a fresh token was refused too: check the client's permissions and subject)"
    elif response.status_code == 403:
        hint = " (the token lacks permission: check scope and the subject's rights)"
    message = f"{_request_line(response)} failed: HTTP {response.status_code} {response.reason}{hint}"
    if excerpt:
        message += f": {excerpt}"
    raise ApiResponseError(message, status=response.status_code, response=response)


def status_accepted(status: int, accepted: Collection[int] | None) -> bool:
    """``accepted`` if given, else every status below 400."""
    return status in accepted if accepted else status < 400


def check_status(response: requests.Response, accepted: Collection[int] | None) -> None:
    """Raise :class:`ApiResponseError` (naming method, URL and status) for an unaccepted answer."""
    if status_accepted(response.status_code, accepted):
        return
    raise_for_status(response)
    raise ApiResponseError(
        f"{_request_line(response)} answered HTTP {response.status_code} {response.reason}, "
        f"which is not one of the accepted statuses {sorted(accepted or ())}",
        status=response.status_code,
        response=response,
    )


def response_body(response: requests.Response) -> Any:
    """The answer's JSON if it is JSON, else its text; ``None`` when empty (204).

    This is what goes to XCom: an API that repeats the credential it was sent (some echo
    their request) must not put the token into the metadata database, so that exact value
    is replaced by ``***`` wherever it appears in the answer.
    """
    if not response.content:
        return None
    sent = sent_credential(response)
    try:
        body = response.json()
    except ValueError:
        return _without(response.text, sent)
    return _without(body, sent)


def _without(value: Any, secret: str | None) -> Any:
    """``value`` (JSON data) with every occurrence of ``secret`` in its strings replaced."""
    if not secret:
        return value
    if isinstance(value, str):
        return value.replace(secret, REPLACEMENT) if secret in value else value
    if isinstance(value, list):
        return [_without(item, secret) for item in value]
    if isinstance(value, dict):
        return {_without(k, secret): _without(v, secret) for k, v in value.items()}
    return value


def body_excerpt(response: requests.Response) -> str:
    """The start of the body, for ``log_response`` (credentials blanked)."""
    return safe_text(response, _BODY_LOG_EXCERPT)
