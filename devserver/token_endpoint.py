"""The token endpoint (``POST /oauth2/token``) and the server's metadata (RFC 8414), as a blueprint.

The endpoint hands the request to Authlib (``LocalAuthorizationServer.authlib``, see
:mod:`devserver.grants`) and records it, refused or not, in ``token_requests``.
"""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request

from devserver.exchange import TOKEN_EXCHANGE_GRANT_TYPE
from devserver.grants import ALLOWED_ALGORITHMS, CLIENT_AUTH_METHODS, JWT_BEARER_GRANT_TYPE
from devserver.records import begin_token_request
from devserver.web import local_server

TOKEN_PATH = "/oauth2/token"

blueprint = Blueprint("token_endpoint", __name__)


@blueprint.post(TOKEN_PATH)
def token() -> Response:
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
    return jsonify(
        issuer=local_server().issuer,
        token_endpoint=request.host_url.rstrip("/") + TOKEN_PATH,
        grant_types_supported=[JWT_BEARER_GRANT_TYPE, "client_credentials", TOKEN_EXCHANGE_GRANT_TYPE],
        token_endpoint_auth_methods_supported=CLIENT_AUTH_METHODS,
        token_endpoint_auth_signing_alg_values_supported=list(ALLOWED_ALGORITHMS),
    )
