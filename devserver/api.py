"""The protected API under ``/api``, as a blueprint, and its access-token check.

Deliberately simple: the server's access tokens are opaque random strings kept in memory
(``LocalAuthorizationServer.token_info``), checked on the server's clock, refused once revoked.
Refusals are RFC 6750 §3 errors (401, ``WWW-Authenticate: Bearer error="invalid_token"``); every
challenge also offers ``DPoP algs="..."`` (RFC 9449 §7.1: the server takes both schemes).

Bound tokens:

* a DPoP-bound token (``cnf.jkt``, RFC 9449 §7) must come as ``Authorization: DPoP <token>`` with a
  ``DPoP`` proof for this request (``htm``, ``htu``, ``ath``, ...; see :mod:`devserver.dpop`) signed
  by the key it is bound to. As ``Bearer`` it is refused (§7.2: ``invalid_token``); a missing or
  invalid proof gets ``WWW-Authenticate: DPoP error="invalid_dpop_proof"``, a proof by another key or
  an unbound token under the DPoP scheme ``DPoP error="invalid_token"``. With the ``dpop_api_nonce``
  knob, a proof without the API's nonce gets ``DPoP error="use_dpop_nonce"`` and ``DPoP-Nonce``;
* a certificate-bound token (``cnf.x5t#S256``, RFC 8705 §3) comes as ``Bearer`` over a TLS connection
  with the same client certificate; otherwise ``invalid_token``.

Every request under ``/api/`` -- refused, failed by an injected fault or unrouted too -- is
recorded in ``api_requests`` (see ``LocalAuthorizationServer``), with the Authorization
scheme only, never the credential, and with credential query parameters (``access_token``...)
redacted.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from typing import TYPE_CHECKING, Any

from flask import Blueprint, Response, g, jsonify, request

from devserver import dpop, tls
from devserver.records import client_certificate_record, dpop_record
from devserver.web import auth_scheme, json_error, local_server

if TYPE_CHECKING:
    from devserver.server import IssuedToken, LocalAuthorizationServer

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
            "if_none_match": request.headers.get("If-None-Match"),
            "dpop": dpop_record(),
            "dpop_verified": False,
            "dpop_failure": None,
            "nonce_challenge": False,
            "client_certificate": client_certificate_record(),
            "status": None,
        }


@blueprint.after_app_request
def _finish_api_record(response: Response) -> Response:
    record = g.get("api_record")
    if record is not None:
        record["status"] = response.status_code
        local_server().add_api_record(record)
    return response


# --------------------------------------------------------------------------- access tokens


@dataclass
class _Refusal:
    """Why the API refuses a request's credentials, and the challenge scheme that says so."""

    error: str
    description: str
    scheme: str = "Bearer"
    nonce: str | None = None


def _note(**fields: Any) -> None:
    record = g.get("api_record")
    if record is not None:
        record.update(fields)


def _token_state(server: LocalAuthorizationServer, token: str) -> tuple[IssuedToken | None, str]:
    issued, revoked = server.bearer_token_state(token)
    if issued is None:
        return None, "Unknown access token."
    if revoked:
        return None, "The access token has been revoked."
    if server.now() >= issued.expires_at:
        return None, "The access token expired."
    return issued, ""


def _authenticate() -> tuple[IssuedToken | None, _Refusal | None]:
    header = request.headers.get("Authorization")
    if not header:
        return None, _Refusal("invalid_token", "Missing bearer token.")
    scheme, _, value = header.partition(" ")
    token = value.strip()
    if scheme.lower() == "dpop":
        return _authenticate_dpop(token)
    if scheme.lower() != "bearer" or not token:
        return None, _Refusal("invalid_token", "The Authorization scheme must be Bearer (or DPoP).")
    server = local_server()
    issued, problem = _token_state(server, token)
    if issued is None:
        return None, _Refusal("invalid_token", problem)
    if issued.jkt:
        _note(dpop_failure="DPoP-bound token presented as Bearer")
        return None, _Refusal(
            "invalid_token", "The access token is DPoP-bound: present it with the DPoP scheme and a proof."
        )
    if issued.x5t_s256:
        certificate = tls.peer_certificate(request.environ)
        if certificate is None or tls.thumbprint(certificate) != issued.x5t_s256:
            what = "another" if certificate is not None else "no"
            return None, _Refusal(
                "invalid_token",
                f"The access token is bound to a client certificate; this connection presented {what} certificate.",
            )
    return issued, None


def _authenticate_dpop(token: str) -> tuple[IssuedToken | None, _Refusal | None]:
    """RFC 9449 §7.1: the proof first (it covers the token by ``ath``), then the token and its binding."""
    server = local_server()
    if not token:
        return None, _Refusal("invalid_token", "Missing access token after DPoP.", "DPoP")
    nonces = server.dpop_nonces(api=True) if server.dpop_api_nonce else None
    try:
        proof = dpop.verify_proof(
            request.headers.getlist("DPoP"),
            method=request.method,
            url=request.base_url,
            algorithms=server.dpop_algorithms,
            now=server.now(),
            iat_window=server.dpop_iat_window,
            leeway=server.leeway,
            used=server.used_dpop_proofs,
            nonces=nonces,
            access_token=token,
        )
    except dpop.ProofError as exc:
        _note(dpop_failure=exc.description)
        if exc.error == dpop.USE_DPOP_NONCE and nonces is not None:
            _note(nonce_challenge=True)
            return None, _Refusal(exc.error, exc.description, "DPoP", nonces.current)
        return None, _Refusal(exc.error, exc.description, "DPoP")
    if proof.new_nonce is not None:
        g.dpop_nonce_header = proof.new_nonce
    issued, problem = _token_state(server, token)
    if issued is None:
        return None, _Refusal("invalid_token", problem, "DPoP")
    if not issued.jkt:
        _note(dpop_failure="token not DPoP-bound")
        return None, _Refusal("invalid_token", "The access token is not DPoP-bound: present it as Bearer.", "DPoP")
    if proof.jkt != issued.jkt:
        _note(dpop_failure="proof key is not the token's key")
        return None, _Refusal("invalid_token", "The DPoP proof key is not the key the token is bound to.", "DPoP")
    _note(dpop_verified=True)
    return issued, None


def _refuse(refusal: _Refusal) -> Response:
    algs = " ".join(local_server().dpop_algorithms)
    parameters = f'error="{refusal.error}", error_description="{_quotable(refusal.description)}"'
    if refusal.scheme == "DPoP":
        challenge = f'DPoP {parameters}, algs="{algs}"'
    else:
        challenge = f'Bearer {parameters}, DPoP algs="{algs}"'
    response = jsonify(error=refusal.error, error_description=refusal.description)
    response.status_code = 401
    response.headers["WWW-Authenticate"] = challenge
    if refusal.nonce:
        response.headers[dpop.NONCE_HEADER] = refusal.nonce
    return response


def _quotable(text: str) -> str:
    return text.replace("\\", "/").replace('"', "'")


def protected(view: Callable[..., Any]) -> Callable[..., Any]:
    """Access-token check for /api views (see the module docstring); passes the token to the view."""

    @wraps(view)
    def wrapper(**kwargs: Any) -> Any:
        issued, refusal = _authenticate()
        if refusal is not None or issued is None:
            return _refuse(refusal or _Refusal("invalid_token", "Unknown access token."))
        _note(subject=issued.sub, client_id=issued.client_id)
        return view(issued, **kwargs)

    return wrapper


@blueprint.after_request
def _hand_out_nonce(response: Response) -> Response:
    """RFC 9449 §8.2 at the API: a new nonce on any answer to a proof that did not carry the current one."""
    nonce = g.get("dpop_nonce_header")
    if nonce and dpop.NONCE_HEADER not in response.headers:
        response.headers[dpop.NONCE_HEADER] = nonce
    return response


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


@blueprint.get("/exports/<name>")
@protected
def export(issued: IssuedToken, name: str) -> Response | tuple[Response, int]:
    """A resource a test changes (:mod:`devserver.exports`): ETag and ``If-None-Match`` (304) as HTTP says."""
    state = local_server().exports.get(name)
    if state is None:
        return json_error("not_found", f"no export {name!r} yet", 404)
    etag = state.etag_value
    if etag is not None and etag in {value.strip() for value in request.headers.get("If-None-Match", "").split(",")}:
        return Response(status=304, headers={"ETag": etag})
    response = jsonify(state.document(name))
    if etag is not None:
        response.headers["ETag"] = etag
    return response
