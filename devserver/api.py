"""The protected API under ``/api``, as a blueprint, and its bearer-token check.

Deliberately simple: the server's access tokens are opaque random strings kept in memory
(``LocalAuthorizationServer.token_info``), checked on the server's clock, refused once revoked.
Refusals are RFC 6750 §3 errors (401, ``WWW-Authenticate: Bearer error="invalid_token"``).

Every request under ``/api/`` -- refused, failed by an injected fault or unrouted too -- is
recorded in ``api_requests`` (see ``LocalAuthorizationServer``), with the Authorization
scheme only, never the credential, and with credential query parameters (``access_token``...)
redacted.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import TYPE_CHECKING, Any

from flask import Blueprint, Response, g, jsonify, request

from devserver.web import auth_scheme, json_error, local_server

if TYPE_CHECKING:
    from devserver.server import IssuedToken

API_PREFIX = "/api"
ITEM_COUNT = 23
DEFAULT_JOB_READY_AFTER = 3
#: Query parameters whose values are credentials (RFC 6750 §2.3 allows ``access_token`` in the
#: query; the others belong to the token endpoint). The API accepts none of them, but a client
#: that sends one is recorded with the name kept and the value replaced.
CREDENTIAL_PARAMETERS = frozenset({"access_token", "refresh_token", "client_secret", "assertion", "client_assertion"})
REDACTED = "<redacted>"

blueprint = Blueprint("api", __name__, url_prefix=API_PREFIX)


# --------------------------------------------------------------------------- records


@blueprint.before_app_request
def _begin_api_record() -> None:
    """App-wide, so unrouted paths and injected failures under /api/ are recorded as well.

    It must run before the fault-injection hook, whose answer ends the ``before_request`` chain:
    the server registers this blueprint first.
    """
    if request.path.startswith(API_PREFIX + "/"):
        g.api_record = {
            "method": request.method,
            "path": request.path,
            "query": {
                name: REDACTED if name in CREDENTIAL_PARAMETERS else value for name, value in request.args.items()
            },
            "subject": None,
            "client_id": None,
            "auth_scheme": auth_scheme(request.headers.get("Authorization")),
            "status": None,
        }


@blueprint.after_app_request
def _finish_api_record(response: Response) -> Response:
    record = g.get("api_record")
    if record is not None:
        record["status"] = response.status_code
        local_server().add_api_record(record)
    return response


# --------------------------------------------------------------------------- bearer tokens


def _authenticate_bearer(header: str | None) -> tuple[IssuedToken | None, str]:
    if not header:
        return None, "Missing bearer token."
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None, "The Authorization scheme must be Bearer."
    server = local_server()
    issued, revoked = server.bearer_token_state(value.strip())
    if issued is None:
        return None, "Unknown access token."
    if revoked:
        return None, "The access token has been revoked."
    if server.now() >= issued.expires_at:
        return None, "The access token expired."
    return issued, ""


def protected(view: Callable[..., Any]) -> Callable[..., Any]:
    """Bearer-token check for /api views (RFC 6750 §3 errors); passes the token to the view."""

    @wraps(view)
    def wrapper(**kwargs: Any) -> Any:
        issued, problem = _authenticate_bearer(request.headers.get("Authorization"))
        if issued is None:
            response = jsonify(error="invalid_token", error_description=problem)
            response.status_code = 401
            response.headers["WWW-Authenticate"] = f'Bearer error="invalid_token", error_description="{problem}"'
            return response
        record = g.get("api_record")
        if record is not None:
            record.update(subject=issued.sub, client_id=issued.client_id)
        return view(issued, **kwargs)

    return wrapper


# --------------------------------------------------------------------------- views


@blueprint.get("/whoami")
@protected
def whoami(issued: IssuedToken) -> Response:
    if issued.act is not None:  # a token exchanged with an actor token (RFC 8693 §4.1)
        return jsonify(sub=issued.sub, client_id=issued.client_id, scope=issued.scope, act=issued.act)
    return jsonify(sub=issued.sub, client_id=issued.client_id, scope=issued.scope)


@blueprint.get("/items")
@protected
def items(issued: IssuedToken) -> Response | tuple[Response, int]:
    try:
        page = int(request.args.get("page", "1"))
        per_page = int(request.args.get("per_page", "5"))
    except ValueError:
        return json_error("invalid_request", "page and per_page must be integers", 400)
    if page < 1 or not 1 <= per_page <= 100:
        return json_error("invalid_request", "page >= 1 and 1 <= per_page <= 100", 400)
    start = (page - 1) * per_page
    numbers = range(start + 1, min(start + per_page, ITEM_COUNT) + 1)
    return jsonify(
        items=[{"id": n, "name": f"item-{n}"} for n in numbers],
        page=page,
        next_page=page + 1 if start + per_page < ITEM_COUNT else None,
        total=ITEM_COUNT,
    )


@blueprint.post("/results")
@protected
def results(issued: IssuedToken) -> tuple[Response, int]:
    body = request.get_json(silent=True)
    if body is None:
        return json_error("invalid_request", "a JSON body is required", 400)
    local_server().add_result(body)
    return jsonify(received=body, sub=issued.sub), 201


@blueprint.get("/jobs/<job_id>")
@protected
def job(issued: IssuedToken, job_id: str) -> Response:
    server = local_server()
    polls = server.poll_job(job_id)
    state = "done" if polls >= server.job_ready_after else "running"
    return jsonify(job_id=job_id, state=state, polls=polls)


@blueprint.get("/echo-headers")
@protected
def echo_headers(issued: IssuedToken) -> Response:
    headers = {
        name: (auth_scheme(value) or "") if name.lower() == "authorization" else value
        for name, value in request.headers.items()
    }
    return jsonify(headers)


@blueprint.get("/echo-authorization")
@protected
def echo_authorization(issued: IssuedToken) -> Response | tuple[Response, int]:
    """A careless API that repeats the whole ``Authorization`` header (``careless`` knob only)."""
    server = local_server()
    if not server.careless:
        return jsonify(error="forbidden", error_description="careless answers are off"), 403
    status = int(request.args.get("status", "200"))
    header = request.headers.get("Authorization", "")
    return jsonify(error="echo" if status >= 400 else None, you_sent=header, again=f"Authorization: {header}"), status
