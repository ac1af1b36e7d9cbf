"""What the server records about token requests, and a read-only JSON view of its records.

A token request's record is started by the token endpoint (:func:`begin_token_request`), filled
in by the grants and client-authentication methods as they learn things
(:func:`note_token_request`), and appended to ``LocalAuthorizationServer.token_requests`` once
answered. Only names, decoded JOSE headers and claims, and outcomes are recorded: never a
secret, an assertion or an access token (the fields are listed on ``LocalAuthorizationServer``).

The view (:data:`blueprint`, under :data:`RECORDS_PREFIX`) is for a server running in another
process (``python -m devserver``), whose lists a test cannot read directly:

``GET /_devserver/token-requests``, ``GET /_devserver/api-requests``
    the record lists as JSON arrays, in request order.
``POST /_devserver/reset``
    :meth:`~devserver.server.LocalAuthorizationServer.reset` (records, knobs, injected
    failures, revocations; clients and tokens are kept).
``POST /_devserver/revoke``
    :meth:`~devserver.server.LocalAuthorizationServer.revoke_all_tokens`.
``POST /_devserver/exports/<name>``
    :meth:`devserver.exports.Exports.update` with the JSON body's fields (and ``etag``): a change of
    the export an event trigger watches.
``POST /_devserver/trust-issuer``
    :meth:`~devserver.server.LocalAuthorizationServer.trust_issuer` with the JSON body's ``issuer``,
    ``subject``, ``client_id`` and ``audiences`` (a workload platform the test started).

It answers requests from a loopback address only (403 otherwise): a server bound to
``0.0.0.0`` in a container does not show its records to the network.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from authlib.oauth2.rfc6749.util import extract_basic_authorization
from flask import Blueprint, Response, g, jsonify, request

from devserver.dpop import decode_unverified
from devserver.tls import describe, peer_certificate
from devserver.web import is_loopback, json_error, local_server

RECORDS_PREFIX = "/_devserver"

blueprint = Blueprint("records", __name__, url_prefix=RECORDS_PREFIX)


def dpop_record() -> dict[str, Any] | None:
    """The request's DPoP proof decoded (``header`` and ``claims``, never the JWT), or None without one."""
    values = request.headers.getlist("DPoP")
    if not values:
        return None
    decoded = decode_unverified(values[0].split(",")[0])
    if decoded is None:
        return {"header": None, "claims": None}
    header, claims = decoded
    return {"header": header, "claims": claims}


def client_certificate_record() -> dict[str, str] | None:
    """Subject, issuer and ``x5t#S256`` of the connection's TLS client certificate, or None."""
    certificate = peer_certificate(request.environ)
    return describe(certificate) if certificate is not None else None


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
        "path": request.path,
        "dpop": dpop_record(),
        "dpop_verified": False,
        "dpop_failure": None,
        "dpop_nonce_challenge": False,
        "client_certificate": client_certificate_record(),
        "token_type": None,
        "cnf": None,
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


def _is_loopback_client(address: str | None) -> bool:
    if not address:
        return False
    try:
        mapped = ipaddress.ip_address(address)
    except ValueError:
        return is_loopback(address)
    if isinstance(mapped, ipaddress.IPv6Address) and mapped.ipv4_mapped is not None:
        mapped = mapped.ipv4_mapped  # ::ffff:127.0.0.1 from a dual-stack socket
    return mapped.is_loopback


@blueprint.before_request
def _loopback_only() -> tuple[Response, int] | None:
    if _is_loopback_client(request.remote_addr):
        return None
    return json_error("forbidden", f"{RECORDS_PREFIX}/ answers loopback clients only", 403)


@blueprint.get("/token-requests")
def token_requests() -> Response:
    return jsonify(list(local_server().token_requests))


@blueprint.get("/api-requests")
def api_requests() -> Response:
    return jsonify(list(local_server().api_requests))


@blueprint.post("/reset")
def reset() -> Response:
    local_server().reset()
    return jsonify(reset=True)


@blueprint.post("/revoke")
def revoke() -> Response:
    local_server().revoke_all_tokens()
    return jsonify(revoked=True)


@blueprint.post("/trust-issuer")
def trust_issuer() -> Response | tuple[Response, int]:
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or not isinstance(body.get("issuer"), str):
        return json_error("invalid_request", "a JSON object with issuer (and subject, client_id, audiences)", 400)
    rule = local_server().trust_issuer(
        body["issuer"],
        subject=str(body.get("subject") or "*"),
        client_id=body.get("client_id"),
        audiences=tuple(body.get("audiences") or ()),
    )
    return jsonify(issuer=rule.issuer, subject=rule.subject, client_id=rule.client_id)


@blueprint.post("/exports/<name>")
def update_export(name: str) -> Response | tuple[Response, int]:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        return json_error("invalid_request", "a JSON object with the export's fields (and etag)", 400)
    etag = body.pop("etag", None)
    state = local_server().exports.update(name, etag=None if etag is None else bool(etag), **body)
    return jsonify(state.document(name))
