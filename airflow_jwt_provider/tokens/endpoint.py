"""POST token requests (RFC 7523 §2.1/§2.2, RFC 6749 §4.4) and parse the answers (RFC 6749 §5).

The client takes an *assertion factory*, not an assertion: a retried request after a
network error or a 503 is signed anew, so no ``jti`` is ever sent twice. Whether and when
to retry is :mod:`airflow_jwt_provider.common.retry`'s decision, as for API calls.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import requests
from requests.auth import HTTPBasicAuth

from airflow_jwt_provider.common.redaction import redact_text
from airflow_jwt_provider.common.retry import TOKEN_REQUEST_RETRY, RetryPolicy, parse_http_date
from airflow_jwt_provider.common.seconds import finite_seconds
from airflow_jwt_provider.common.telemetry import TELEMETRY, RequestTarget, RetryCause, TokenResult
from airflow_jwt_provider.connection.kinds import ClientAuthMethod, GrantType
from airflow_jwt_provider.connection.settings import HttpSettings
from airflow_jwt_provider.connection.trusted_hosts import Origin, is_loopback
from airflow_jwt_provider.exceptions import TokenEndpointError
from airflow_jwt_provider.signing.dpop import DPoPKey
from airflow_jwt_provider.tokens.access_token import ASSUMED_LIFETIME, AccessToken
from airflow_jwt_provider.tokens.client_auth import ClientAuthentication
from airflow_jwt_provider.tokens.dpop import NONCES, nonce_challenge
from airflow_jwt_provider.tokens.dpop import proof as dpop_proof

log = logging.getLogger(__name__)

#: Fields of a token answer that are read here; the others are kept in ``AccessToken.extra``.
_TOKEN_FIELDS = frozenset(
    {"access_token", "token_type", "expires_in", "scope", "refresh_token", "id_token", "issued_token_type"}
)
#: RFC 8693 §2.2.1: the token_type of an issued token that is not an access token.
NOT_APPLICABLE = "N_A"
#: RFC 9449 §5: the token_type of a token bound to a DPoP key.
DPOP = "DPoP"
#: How much of a server's text is looked at (redacted, then shortened for the message).
_REDACTION_WINDOW = 65536
#: The longest ``expires_in`` taken at its word (a year); beyond it the answer is not plausible.
MAX_EXPIRES_IN = 366 * 86400
_TIME_WORDS = ("exp", "iat", "nbf", "expired", "not yet valid", "clock", "time", "future", "lifetime")


#: A token request's form: repeated parameters (RFC 8693's ``audience``, ``resource``) as lists.
Form = dict[str, "str | list[str]"]


def _no_credentials() -> Form:
    return {}


@dataclass(frozen=True)
class TokenRequest:
    """One token request, as the grant describes it.

    :param credentials: the JWT-carrying fields (``assertion``, ``subject_token``, ``actor_token``…),
        made anew for every attempt (a retry never repeats a ``jti``).
    :param params: the other fields (``auth_params``, token exchange's types, audiences, resources).
    :param requested_token_type: RFC 8693: the answer's ``issued_token_type`` must be this type.
    :param exchange: the answer follows RFC 8693 §2.2.1 (``issued_token_type`` required, ``token_type``
        ``N_A`` for a token that is not an access token).
    :param platform_jwt: what made the JWT when the platform did (``None``: the connection's key), so
        that a refusal points at the federation, not at a key and a certificate the connection has not.
    :param dpop: the key to bind the token to (RFC 9449): a proof on every attempt, ``token_type`` DPoP expected.
    :param dpop_allow_bearer: take a ``Bearer`` answer to a DPoP request (the server chose not to bind, §5).
    """

    grant_type: GrantType
    credentials: Callable[[], Form] = _no_credentials
    scope: str | None = None
    params: Mapping[str, str | list[str]] = field(default_factory=dict)
    requested_token_type: str | None = None
    exchange: bool = False
    platform_jwt: str | None = None
    dpop: DPoPKey | None = field(default=None, repr=False)
    dpop_allow_bearer: bool = False


class _TransientError(TokenEndpointError):
    """The request did not get an answer (timeout, refused connection): worth another attempt."""


class TokenClient:
    """Talks to one token endpoint.

    Every field of an answer is checked where it enters: a token type other than bearer, an
    ``expires_in`` that is not a finite number in range, a body that is not a JSON object
    are refused or set aside with a clear message, never passed on to crash later. Texts built
    from an answer (``error_description``...) never repeat a secret the client sent.

    :param retry: when to retry connection errors, 429 and 5xx answers; each attempt is
        signed anew. A ``Retry-After`` beyond the policy's ``max_wait`` is not waited for.
    :param default_token_lifetime: how long a token is used when the answer has no ``expires_in``.
    :param conn_id: the connection the requests are for (a tag of the metrics; ``None`` outside a connection).
    """

    def __init__(
        self,
        token_url: str,
        client_auth: ClientAuthentication,
        http: HttpSettings | None = None,
        *,
        session: requests.Session | None = None,
        retry: RetryPolicy = TOKEN_REQUEST_RETRY,
        default_token_lifetime: timedelta = ASSUMED_LIFETIME,
        conn_id: str | None = None,
    ) -> None:
        self.token_url = token_url
        self.conn_id = conn_id
        self.default_token_lifetime = default_token_lifetime
        if _is_plain_http_to_remote(token_url):
            log.warning(
                "auth_url %s is plain http: assertions and client secrets cross the network unencrypted; "
                "use https (http is only for loopback test servers)",
                token_url,
            )
        self.client_auth = client_auth
        self.http = http or HttpSettings()
        self.session = session or requests.Session()
        self.retry = retry
        self.requests_made = 0

    def fetch(self, request: TokenRequest) -> AccessToken:
        """Request a token; raise :class:`TokenEndpointError` with what went wrong and what to do.

        A DPoP request the server answers ``use_dpop_nonce`` (RFC 9449 §8) is sent once more with its nonce,
        a new proof and new client authentication (a client assertion is accepted once).
        """
        started, attempts = time.perf_counter(), [0]  # this request's sends (the client may serve threads)
        result, status = TokenResult.ERROR, None
        try:
            token = self._fetch(request, attempts)
            result, status = TokenResult.SUCCESS, 200
            return token
        except TokenEndpointError as exc:
            status = exc.status
            result = TokenResult.REFUSED if status is not None and status < 500 else TokenResult.ERROR
            raise
        finally:  # every request, whatever ended it: metrics and the token span's attributes
            retries = max(attempts[0] - 1, 0)
            seconds = time.perf_counter() - started
            TELEMETRY.token_request(
                self.conn_id, request.grant_type.value, result, status=status, retries=retries, seconds=seconds
            )

    def _fetch(self, request: TokenRequest, attempts: list[int]) -> AccessToken:
        sent: dict[str, str] = {}

        def attempt() -> requests.Response:
            attempts[0] += 1
            form: Form = {"grant_type": request.grant_type.value}
            form.update(request.credentials())  # new ones for every attempt: never the same jti twice
            if request.scope:
                form["scope"] = request.scope
            form.update(request.params)
            http_auth = self.client_auth.apply(form)
            sent.clear()
            sent.update({k: v for k, v in form.items() if isinstance(v, str)})
            headers = {"Accept": "application/json"}
            if request.dpop is not None:
                headers["DPoP"] = dpop_proof(request.dpop, "POST", self.token_url)
            response = self._post(form, http_auth, headers)
            if request.dpop is not None:
                NONCES.remember(self.token_url, response.headers)
            return response

        def call() -> requests.Response:
            return self.retry.call(
                attempt,
                what=f"Token endpoint {self.token_url}",
                method="POST",
                log=log,
                transient=(_TransientError,),
                conn_id=self.conn_id,
                target=RequestTarget.TOKEN_ENDPOINT,
            )

        response = call()
        if request.dpop is not None and nonce_challenge(
            response.status_code, response.headers, _json_or_none(response)
        ):
            TELEMETRY.retried(self.conn_id, RequestTarget.TOKEN_ENDPOINT, RetryCause.USE_DPOP_NONCE)
            response = call()  # once: a second challenge is an answer like any other
        return self._parse(response, sent=sent, request=request)

    def _post(self, form: Form, http_auth: HTTPBasicAuth | None, headers: dict[str, str]) -> requests.Response:
        self.requests_made += 1
        try:
            return self.session.post(
                self.token_url,
                data=form,
                auth=http_auth,
                headers=headers,
                timeout=self.http.timeout,
                verify=self.http.verify,
                proxies=dict(self.http.proxies) if self.http.proxies else None,
                allow_redirects=False,
            )
        except requests.exceptions.SSLError:
            raise TokenEndpointError(
                f"TLS verification failed for auth_url {self.token_url}; if the server uses a private "
                "CA, set the connection's verify extra to the path of its CA bundle"
            ) from None
        except requests.exceptions.Timeout:
            raise _TransientError(
                f"The token endpoint {self.token_url} did not answer within {self.http.timeout} s; "
                "check auth_url and the network, or raise the timeout extra"
            ) from None
        except requests.exceptions.RequestException as exc:
            raise _TransientError(
                f"Cannot reach the token endpoint {self.token_url} ({type(exc).__name__}); "
                "check auth_url, DNS, proxies and firewalls"
            ) from None

    def _parse(self, response: requests.Response, sent: Mapping[str, str], request: TokenRequest) -> AccessToken:
        content_type = response.headers.get("Content-Type", "")
        try:
            body = response.json()
        except ValueError:  # includes bodies with NaN/Infinity that json refuses later, and bad UTF-8
            body = None
        if not isinstance(body, dict):
            status = response.status_code
            if 300 <= status < 400:
                location = Origin.of(response.headers.get("Location", "")) or "?"
                problem = f"redirected to {location}; auth_url is probably wrong"
            elif status in (401, 403, 404, 405):
                problem = (
                    "auth_url is probably wrong (not the token endpoint, or a path the server does not know); "
                    "otherwise a proxy or load balancer answered instead of the authorization server"
                )
            else:
                problem = "a proxy or load balancer may have answered instead of the authorization server"
            raise TokenEndpointError(
                f"The token endpoint {self.token_url} answered HTTP {status} with "
                f"{_printable(content_type) or 'no content type'}, not a JSON token response: {problem}",
                status=status,
            )
        if response.status_code != 200 or "error" in body:
            raise self._error(response, body, sent, request)
        return self._token(response, body, request)

    def _token(self, response: requests.Response, body: dict[str, Any], request: TokenRequest) -> AccessToken:
        access_token = body.get("access_token")
        if not isinstance(access_token, str) or not access_token.strip():
            raise TokenEndpointError(
                f"The token endpoint {self.token_url} answered HTTP 200 without an access_token "
                f"(fields: {', '.join(sorted(_printable(str(k))[:40] for k in body)[:20]) or 'none'})",
                status=response.status_code,
            )
        token_type = body.get("token_type")
        if token_type is None:
            token_type = "Bearer"  # RFC 6749 requires it; some servers still omit it
        issued_token_type = self._issued_token_type(response, body, request)
        token_type = self._token_type(response, token_type, request)
        issued_at = datetime.now(timezone.utc)
        lifetime = self._expires_in(body.get("expires_in"))
        return AccessToken(
            access_token=access_token,
            token_type=token_type,
            issued_token_type=issued_token_type,
            dpop_key=request.dpop if token_type == DPOP else None,
            expires_at=issued_at + lifetime if lifetime is not None else None,
            scope=_scope(body.get("scope")),
            issued_at=issued_at,
            extra={k: v for k, v in body.items() if k not in _TOKEN_FIELDS},
            assumed_lifetime=self.default_token_lifetime,
        )

    def _token_type(self, response: requests.Response, answered: object, request: TokenRequest) -> str:
        """``Bearer``, ``DPoP`` (when asked for) or ``N_A`` (an exchanged non-access token); anything else refused."""
        kind = answered.strip().lower() if isinstance(answered, str) else None
        if request.exchange and answered == NOT_APPLICABLE:
            return NOT_APPLICABLE  # RFC 8693: a token that is not an access token (kept, not sent to APIs)
        if kind == "dpop" and request.dpop is not None:
            return DPOP
        if kind == "bearer" and request.dpop is not None:
            if not request.dpop_allow_bearer:
                raise TokenEndpointError(
                    f"The token endpoint {self.token_url} answered the DPoP request with a Bearer token: the server "
                    "did not bind it to the key (RFC 9449 §5 allows that), so whoever copies it can use it. Enable "
                    "DPoP for the client on the server, or set dpop_allow_bearer to accept unbound tokens",
                    status=response.status_code,
                    error="unsupported_token_type",
                )
            log.warning(
                "Token endpoint %s answered the DPoP request with a Bearer token (not bound to the key); "
                "using it as dpop_allow_bearer says",
                self.token_url,
            )
            return "Bearer"
        if kind == "bearer":
            return "Bearer"
        shown = _printable(str(answered))[:40]
        advice = (
            "set dpop to true on the connection to use DPoP-bound tokens"
            if kind == "dpop"
            else "ask for a bearer token (dpop for a DPoP-bound one)"
        )
        raise TokenEndpointError(
            f"The token endpoint {self.token_url} issued a token of type {shown!r}, which this provider does not "
            f"use: RFC 6749 §7.1 forbids using a token whose type the client does not understand; {advice}",
            status=response.status_code,
            error="unsupported_token_type",
        )

    def _issued_token_type(
        self, response: requests.Response, body: Mapping[str, Any], request: TokenRequest
    ) -> str | None:
        """RFC 8693 §2.2.1: ``issued_token_type`` is required in an exchange's answer, and must be what was asked."""
        issued = body.get("issued_token_type")
        if not request.exchange:
            return issued if isinstance(issued, str) else None
        if not isinstance(issued, str) or not issued:
            raise TokenEndpointError(
                f"The token endpoint {self.token_url} answered a token exchange without issued_token_type, which "
                "RFC 8693 §2.2.1 requires; is auth_url a token exchange endpoint?",
                status=response.status_code,
            )
        if request.requested_token_type and issued != request.requested_token_type:
            raise TokenEndpointError(
                f"The token endpoint {self.token_url} issued a token of type {_printable(issued)[:100]!r}, not the "
                f"requested_token_type {request.requested_token_type!r}",
                status=response.status_code,
                error="unexpected_token_type",
            )
        return issued

    def _expires_in(self, value: object) -> timedelta | None:
        """``expires_in`` as a lifetime: a finite number of seconds in (0, a year]; else set aside."""
        if value is None:
            return None
        seconds = finite_seconds(value)
        if seconds is None or not 0 < seconds <= MAX_EXPIRES_IN:
            log.warning(
                "Token endpoint %s: ignoring expires_in %s (not a number of seconds between 0 and %d); "
                "the token is used for default_token_lifetime (%d s) instead",
                self.token_url,
                _printable(repr(value))[:40],
                MAX_EXPIRES_IN,
                self.default_token_lifetime.total_seconds(),
            )
            return None
        return timedelta(seconds=seconds)

    def _error(
        self, response: requests.Response, body: dict[str, Any], sent: Mapping[str, str], request: TokenRequest
    ) -> TokenEndpointError:
        # What the server says is data: it may repeat what it was sent (a secret, the assertion).
        known = (
            sent.get("assertion"),
            sent.get("client_assertion"),
            sent.get("subject_token"),
            sent.get("actor_token"),
            sent.get("client_secret"),
            self.client_auth.client_secret,
        )

        def field(name: str, limit: int) -> str | None:
            value = body.get(name)
            if value is None or value == "":
                return None
            # Redacted before it is cut: a cut through a secret would leave part of it.
            return _printable(redact_text(str(value)[:_REDACTION_WINDOW], known))[:limit] or None

        error = field("error", 100) or "unknown_error"
        description = field("error_description", 500)
        error_uri = field("error_uri", 300)
        hint = self._hint(error, description, response, request)
        message = f"The token endpoint {self.token_url} refused the request: HTTP {response.status_code} {error}"
        if description:
            message += f": {description.rstrip('.')}"
        if hint:
            message += f". {hint}"
        return TokenEndpointError(
            message,
            status=response.status_code,
            error=error,
            error_description=description,
            error_uri=error_uri,
            hint=hint,
        )

    def _hint(
        self, error: str, description: str | None, response: requests.Response, request: TokenRequest
    ) -> str | None:
        text = (description or "").lower()
        platform = request.platform_jwt
        federated_client = platform is not None and request.grant_type is GrantType.CLIENT_CREDENTIALS
        if error == "invalid_client" and federated_client:
            return (
                f"The client assertion is the JWT of {platform}: check the client id (Login) and that the app's "
                "federated credential names that JWT's issuer, subject and audience (airflow jwt-bearer check shows "
                "them); a server that accepts each client assertion once refuses a platform's JWT sent again"
            )
        if error in ("invalid_grant", "invalid_request") and platform is not None and not federated_client:
            what = "subject_token" if request.exchange else "assertion"
            return (
                f"The {what} is the JWT of {platform}: check that the server trusts its issuer and subject, and "
                "that it was made for the audience the server expects (airflow jwt-bearer check shows its iss, sub "
                "and aud)"
            )
        if error == "invalid_target":
            return "Check exchange_audience and exchange_resource: the server knows no such target"
        if error == "invalid_client":
            return _invalid_client_hint(self.client_auth.method)
        if error == "invalid_dpop_proof":
            return (
                "The server refused the DPoP proof (RFC 9449 §7.1): check that it accepts the proof's algorithm "
                "(dpop_algorithm, or the signer's algorithm with dpop_key signer; its metadata lists "
                "dpop_signing_alg_values_supported) and this machine's clock"
            )
        if error == "invalid_grant" and any(word in text for word in _TIME_WORDS):
            offset = clock_offset(response)
            if offset is not None and abs(offset) >= 5:
                direction = "ahead of" if offset < 0 else "behind"
                return (
                    f"This machine's clock is {abs(offset):.0f} s {direction} the server's (from its "
                    "Date header): synchronise it with NTP, or shorten/lengthen lifetime accordingly"
                )
            if offset is not None:
                return (
                    f"The clocks agree within {abs(offset):.0f} s, so check lifetime against the "
                    "server's maximum assertion lifetime"
                )
            return "Check this machine's clock (NTP) and the lifetime setting"
        if error == "invalid_grant":
            return "Check issuer, subject, audience and that the certificate registered with the server matches the key"
        if error == "invalid_scope":
            return "Check the scope setting against what the client is allowed"
        if error == "unauthorized_client":
            return "The client is not allowed this grant type; enable the JWT bearer flow for it on the server"
        return None


def _json_or_none(response: requests.Response) -> object:
    try:
        return response.json()
    except ValueError:
        return None


def clock_offset(response: requests.Response) -> float | None:
    """Server time minus local time, in seconds, from the response's ``Date`` header."""
    server_now = parse_http_date(response.headers.get("Date"))
    if server_now is None:
        return None
    return (server_now - datetime.now(timezone.utc)).total_seconds()


def _is_plain_http_to_remote(url: str) -> bool:
    origin = Origin.of(url)
    return origin is not None and origin.scheme == "http" and not is_loopback(origin.host)


def _printable(text: str) -> str:
    """``text`` with control characters replaced: a server's answer must not forge log lines."""
    return "".join(ch if ch.isprintable() else "?" for ch in text)


def _scope(value: object) -> str | None:
    """The granted scope: a string, or a list of strings (some servers send one), else none."""
    if isinstance(value, str):
        return value or None
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return " ".join(value) or None
    return None


def _invalid_client_hint(method: ClientAuthMethod) -> str:
    """What to check when the server does not recognise the client: it depends on how the client authenticated."""
    if method.uses_tls_certificate:
        return (
            f"The client authenticates with its TLS certificate ({method.value}): check the client id (Login), that "
            "the certificate in key_file is the one registered for it (its subject or SANs for tls_client_auth, the "
            "certificate itself for self_signed_tls_client_auth) and that the request reached the server's mTLS "
            "endpoint (auth_issuer finds it in the metadata)"
        )
    if method is ClientAuthMethod.PRIVATE_KEY_JWT:
        return (
            "The client authenticates with a signed client assertion (private_key_jwt): check the client id (Login), "
            "that the server holds the public key of key_file (or its kid) for that client, and its algorithm"
        )
    if method is ClientAuthMethod.NONE:
        return (
            "No client authentication is sent (client_auth 'none'): check the client id (Login) and whether the "
            "server requires the client to authenticate"
        )
    return f"Check the client id (Login) and the client secret (Password), and client_auth: {method.value!r} is in use"
