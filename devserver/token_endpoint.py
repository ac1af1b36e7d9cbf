"""The token endpoint (``POST /oauth2/token``) and the server's metadata (RFC 8414), as a blueprint.

The endpoint hands the request to Authlib (``LocalAuthorizationServer.authlib``, see
:mod:`devserver.grants`) and records it, refused or not, in ``token_requests``. It answers at
``/mtls/oauth2/token`` too: the ``mtls_endpoint_aliases`` entry of the metadata when TLS is on (RFC 8705
§5), the same endpoint under another path so that the records show which one a client called. A
``DPoP-Nonce`` header goes on the answers that hand out a nonce (RFC 9449 §8: a ``use_dpop_nonce``
error, or a 200 to a proof that did not carry the current nonce).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, g, jsonify, request

from devserver.dpop import NONCE_HEADER
from devserver.exchange import TOKEN_EXCHANGE_GRANT_TYPE
from devserver.grants import ALLOWED_ALGORITHMS, CLIENT_AUTH_METHODS, JWT_BEARER_GRANT_TYPE
from devserver.records import begin_token_request
from devserver.web import local_server

TOKEN_PATH = "/oauth2/token"
MTLS_TOKEN_PATH = "/mtls" + TOKEN_PATH

blueprint = Blueprint("token_endpoint", __name__)


@blueprint.post(TOKEN_PATH)
@blueprint.post(MTLS_TOKEN_PATH)
def token() -> Response:
    response = _token()
    nonce = g.get("dpop_nonce_header")
    if nonce:
        response.headers[NONCE_HEADER] = nonce
    return response


def _token() -> Response:
    server = local_server()
    record = begin_token_request(server.now())
    try:
        proxy_error = server.faults.take_html_error()
        if proxy_error is not None:
            record.update(status=502, error="injected_html_502")
            return proxy_error
        received = [
            request.form.get(name)
            for name in ("assertion", "client_assertion", "client_secret", "subject_token", "actor_token")
        ]
        if server.keep_credentials:
            server.received_credentials.extend(value for value in received if value)
        response: Response = server.authlib.create_token_response()
        record["status"] = response.status_code
        record["success"] = response.status_code == 200
        if not record["success"]:
            body = response.get_json(silent=True) or {}
            record["error"] = body.get("error")
            record["error_description"] = body.get("error_description")
            if server.careless:  # after recording: the records never hold a credential
                echoed = ", ".join(value for value in received if value)
                body["error_description"] = f"{body.get('error_description', '')} (received: {echoed})"
                response = jsonify(body)
                response.status_code = record["status"]
        return response
    finally:
        server.add_token_record(record)


@blueprint.get("/.well-known/oauth-authorization-server")
def metadata() -> Response:
    server = local_server()
    base = request.host_url.rstrip("/")
    body: dict[str, Any] = {
        "issuer": server.issuer,
        "token_endpoint": base + TOKEN_PATH,
        "grant_types_supported": [JWT_BEARER_GRANT_TYPE, "client_credentials", TOKEN_EXCHANGE_GRANT_TYPE],
        "token_endpoint_auth_methods_supported": CLIENT_AUTH_METHODS,
        "token_endpoint_auth_signing_alg_values_supported": list(ALLOWED_ALGORITHMS),
        "dpop_signing_alg_values_supported": list(server.dpop_algorithms),
    }
    if server.tls:
        body["tls_client_certificate_bound_access_tokens"] = True
        if server.mtls_endpoint_aliases:
            body["mtls_endpoint_aliases"] = {"token_endpoint": base + MTLS_TOKEN_PATH}
    return jsonify(body)
