"""What the server records about token requests.

A token request's record is started by the token endpoint (:func:`begin_token_request`), filled
in by the grants and client-authentication methods as they learn things
(:func:`note_token_request`), and appended to ``LocalAuthorizationServer.token_requests`` once
answered. Only names, decoded JOSE headers and claims, and outcomes are recorded: never a
secret, an assertion or an access token (the fields are listed on ``LocalAuthorizationServer``).
"""

from __future__ import annotations

from typing import Any

from authlib.oauth2.rfc6749.util import extract_basic_authorization
from flask import g, request


def new_token_record(now: float) -> dict[str, Any]:
    """The record of the token request being handled, before anything is checked."""
    form = request.form
    basic_id, basic_secret = extract_basic_authorization(request.headers)
    via = [name for name, sent in (("basic", bool(basic_secret)), ("post", "client_secret" in form)) if sent]
    return {
        "time": now,
        "grant_type": form.get("grant_type"),
        "client_id": form.get("client_id") or basic_id,
        "form_fields": sorted(form.keys()),
        "content_type": request.mimetype,
        "scope": form.get("scope"),
        "requested_token_use": form.get("requested_token_use"),
        "client_assertion_type": form.get("client_assertion_type"),
        "client_secret_sent": bool(via),
        "client_secret_via": "+".join(via) or None,
        "client_auth": None,
        "assertion_header": None,
        "assertion_claims": None,
        "assertion_scope": None,
        "assertion_verified": False,
        "client_assertion_header": None,
        "client_assertion_claims": None,
        "client_assertion_verified": False,
        "issued_sub": None,
        "issued_scope": None,
        "success": False,
        "status": None,
        "error": None,
        "error_description": None,
    }


def begin_token_request(now: float) -> dict[str, Any]:
    """:func:`new_token_record`, made the one :func:`note_token_request` fills in."""
    g.token_record = record = new_token_record(now)
    return record


def note_token_request(**fields: Any) -> None:
    """Add fields to the record of the token request being handled (if any)."""
    record = g.get("token_record")
    if record is not None:
        record.update(fields)
