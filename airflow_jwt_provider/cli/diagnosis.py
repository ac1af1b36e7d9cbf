"""``airflow jwt-bearer check``: a connection diagnosed in the order a token request needs things.

Each step says OK, WARN (works, but act soon), FAIL (what to fix) or SKIP (an earlier step
failed, or it does not apply). The steps use the provider's own code paths (settings parser,
preset rules, key choice, assertion minter, token client), so what ``check`` finds is what a
task would meet. The token is fetched anew and never shown; the assertion is shown decoded.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import Enum

import requests

from airflow_jwt_provider.cli.describe import certificate_lines, claim_lines, decode_jwt
from airflow_jwt_provider.connection.kinds import ClientAuthMethod, GrantType
from airflow_jwt_provider.connection.parser import parse_connection
from airflow_jwt_provider.connection.settings import ConnectionLike, JwtBearerSettings
from airflow_jwt_provider.connection.token_parameters import DEFAULT_TOKEN, TokenParameters
from airflow_jwt_provider.exceptions import JwtBearerError
from airflow_jwt_provider.signing.rotation import SigningChoice
from airflow_jwt_provider.tokens.access_token import AccessToken
from airflow_jwt_provider.tokens.credentials import JwtBearerCredentials
from airflow_jwt_provider.tokens.dpop import NONCES
from airflow_jwt_provider.tokens.endpoint import clock_offset
from airflow_jwt_provider.tokens.mtls import certificate_binding

#: A clock further off than this is worth a warning (servers allow some leeway, typically 60 s).
CLOCK_WARNING_SECONDS = 5.0
#: Width of the status column of the printed diagnosis (``[WARN]``).
STATUS_WIDTH = 4


class Status(Enum):
    """What one step found."""

    OK = "OK"
    #: Works, but act soon (a certificate close to expiry, a clock drifting).
    WARN = "WARN"
    #: What to fix before a task can get a token.
    FAIL = "FAIL"
    #: An earlier step failed, or the step does not apply.
    SKIP = "SKIP"


@dataclass
class Step:
    """One step of the diagnosis and what it found."""

    name: str
    status: Status
    lines: list[str] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return self.status is Status.FAIL


def step_lines(step: Step) -> list[str]:
    """A step as ``check`` prints it: status and name before its first line, the others indented below.

    One function for the command and for the documentation's example of its output, so that the
    example shows what the command prints.
    """
    first, *more = step.lines or [""]
    indent = " " * (STATUS_WIDTH + 3)
    return [f"[{step.status.value:^{STATUS_WIDTH}}] {step.name}: {first}", *(indent + line for line in more)]


def verdict(conn_id: str, failed: bool) -> str:
    """The last line of the printed diagnosis."""
    if failed:
        return f"Connection {conn_id!r}: a step FAILED; fix what it says and run the check again"
    return f"Connection {conn_id!r}: ready"


def diagnose(conn: ConnectionLike, subject: str | None = None, scope: str | None = None) -> Iterator[Step]:
    """The steps of the diagnosis of ``conn``, each yielded as soon as it is done."""
    try:
        settings = parse_connection(conn, check_preset=False)
    except JwtBearerError as exc:
        yield Step("settings", Status.FAIL, [str(exc)])
        yield from _skipped("preset rules", "key", "certificate", "assertion", "token", "binding", "clock")
        return
    yield Step("settings", Status.OK, _settings_lines(settings))
    yield _preset_step(conn, settings)

    responses: list[requests.Response] = []
    session = requests.Session()
    session.hooks["response"].append(lambda response, *args, **kwargs: responses.append(response))
    try:
        credentials = JwtBearerCredentials.from_settings(settings, session=session)
    except JwtBearerError as exc:
        yield Step("key", Status.FAIL, [str(exc)])
        yield from _skipped("certificate", "assertion", "token", "binding", "clock")
        return
    choice = credentials.choice
    if choice is None:  # keyless: the JWT comes from the platform
        yield Step("key", Status.SKIP, [credentials.describe_key()])
        yield Step("certificate", Status.SKIP, ["no key, no certificate"])
    else:
        yield Step("key", Status.OK, _key_lines(settings, choice))
        certificate = choice.signer.certificate
        yield Step(
            "certificate",
            Status.WARN if choice.warning else Status.OK,
            certificate_lines(certificate) + ([choice.warning] if choice.warning else []),
        )

    params = TokenParameters.of(subject=subject, scope=scope)
    try:
        assertion_lines = _assertion_lines(credentials, params)
    except JwtBearerError as exc:
        yield Step("assertion", Status.FAIL, [str(exc)])
        yield from _skipped("token", "binding", "clock")
        return
    yield Step("assertion", Status.OK, assertion_lines)

    try:
        token = credentials.get_token(params, force_refresh=True)
    except JwtBearerError as exc:
        yield Step("token", Status.FAIL, [str(exc)])
        yield from _skipped("binding")
    else:
        lifetime = f"expires in {int(token.lifetime.total_seconds())} s" if token.expires_at else "no expires_in"
        token_lines = [f"{token.token_type} token from {credentials.token_url}, {lifetime}"]
        if token.issued_token_type:
            token_lines.append(f"issued_token_type: {token.issued_token_type}")
        token_lines.append(f"scope: {token.scope!r}" if token.scope else "scope: (none given by the server)")
        yield Step("token", Status.OK, token_lines)
        yield _binding_step(credentials, token)
    yield _clock_step(responses, settings)


def _key_lines(settings: JwtBearerSettings, choice: SigningChoice) -> list[str]:
    lines = [choice.describe()]
    if len(settings.key_aliases) > 1:
        looked_at = {c.name for c in choice.passed_over} | {choice.key.name}
        later = [name for name in settings.key_aliases if name not in looked_at]
        if later:
            lines.append(f"not opened (an earlier key signs): {', '.join(repr(n) for n in later)}")
    return lines


def _settings_lines(settings: JwtBearerSettings) -> list[str]:
    if settings.signer is None:
        key = f"no key: the JWT comes from {settings.source.describe()}"
    else:
        key = settings.signer.describe()
        if settings.key_aliases:
            key += f", key_alias {', '.join(settings.key_aliases)}"
    return [
        key,
        f"token endpoint: {settings.auth_url or '(from the key file)'}",
        f"client id: {settings.client_id or '(none)'}; issuer: {settings.issuer or '(the client id)'}; "
        f"subject: {settings.subject or '(none)'}",
        f"grant: {settings.grant_type.value}; client_auth: {settings.client_auth.value}; "
        f"assertion lifetime: {settings.lifetime} s",
    ]


def _preset_step(conn: ConnectionLike, settings: JwtBearerSettings) -> Step:
    preset = settings.preset
    if preset is None:
        return Step("preset rules", Status.SKIP, ["no preset"])
    try:
        checked = parse_connection(conn)  # the same parse, with the preset's rules
    except JwtBearerError as exc:
        return Step("preset rules", Status.FAIL, [str(exc)])
    if checked.preset_warnings:
        return Step("preset rules", Status.WARN, list(checked.preset_warnings))
    return Step("preset rules", Status.OK, [f"{preset.name} ({preset.title}): every rule is met; see {preset.doc_url}"])


def _assertion_lines(credentials: JwtBearerCredentials, params: TokenParameters) -> list[str]:
    """The decoded JWT(s) the token request sends: the grant's, the actor token, the client assertion.

    Shown decoded (header and claims, never the signature), whoever made them: a platform's JWT is
    what the authorization server will judge, so its ``iss``, ``sub``, ``aud`` and ``exp`` are what to read.
    """
    settings = credentials.settings
    grant = settings.grant_type
    made_by = "from " + credentials.source.describe() if settings.keyless else "signed"
    jwts: list[tuple[str, str]] = []
    if grant is GrantType.JWT_BEARER:
        jwts.append((f"assertion (the grant), {made_by}", credentials.source.assertion(params)))
    elif grant is GrantType.TOKEN_EXCHANGE:
        jwts.append((f"subject_token (token exchange), {made_by}", credentials.source.assertion(params)))
        if credentials.actor is not None:
            actor_made_by = "signed" if credentials.actor.current() is None else f"from {credentials.actor.describe()}"
            jwts.append((f"actor_token, {actor_made_by}", credentials.actor.assertion(DEFAULT_TOKEN)))
    if settings.client_auth is ClientAuthMethod.PRIVATE_KEY_JWT:
        if grant is GrantType.CLIENT_CREDENTIALS and settings.keyless:
            jwts.append((f"client assertion (federated), {made_by}", credentials.source.assertion(params)))
        else:
            jwts.append(("client assertion (client authentication), signed", credentials.mint_client_assertion()))
    lines = []
    for what, compact in jwts:
        header, claims = decode_jwt(compact)
        lines.append(f"{what}, header {header}")
        lines.extend(f"  {line}" for line in claim_lines(claims))
    return lines


def _binding_step(credentials: JwtBearerCredentials, token: AccessToken) -> Step:
    """What the token is bound to: a DPoP key (RFC 9449), the TLS client certificate (RFC 8705), or nothing."""
    settings = credentials.settings
    if settings.dpop is not None:
        if token.dpop_key is None:
            return Step("binding", Status.WARN, ["DPoP asked for, but the server answered a Bearer token (unbound)"])
        lines = [
            f"DPoP-bound (token_type {token.token_type}) to the {settings.dpop.key.value} key "
            f"{token.dpop_key.algorithm}, jkt {token.dpop_key.jkt}: the token endpoint accepted the proof"
        ]
        nonce = NONCES.get(credentials.token_url)
        lines.append(
            "server nonce: the token endpoint gave one (the round trip worked)" if nonce else "server nonce: none asked"
        )
        return Step("binding", Status.OK, lines)
    if credentials.tls_context is not None:
        certificate = credentials.signer.certificate if credentials.signer else None
        binding = certificate_binding(certificate) if certificate is not None else "?"
        return Step("binding", Status.OK, [f"mutual TLS with the certificate x5t#S256 {binding}"])
    return Step("binding", Status.SKIP, ["a bearer token (dpop and mtls are off)"])


def _clock_step(responses: list[requests.Response], settings: JwtBearerSettings) -> Step:
    dated = [r for r in responses if r.headers.get("Date")]
    if not dated:
        reason = "no answer from the token endpoint" if not responses else "the answer had no Date header"
        return Step("clock", Status.SKIP, [reason])
    offset = clock_offset(dated[-1])
    if offset is None:
        return Step("clock", Status.SKIP, ["the Date header of the answer cannot be read"])
    direction = "behind" if offset > 0 else "ahead of"
    text = f"this machine's clock is {abs(offset):.0f} s {direction} the token endpoint's (from its Date header)"
    if abs(offset) >= settings.lifetime:
        return Step(
            "clock",
            Status.FAIL,
            [f"{text}: more than the assertion lifetime ({settings.lifetime} s); synchronise the clock (NTP)"],
        )
    if abs(offset) >= CLOCK_WARNING_SECONDS:
        return Step(
            "clock", Status.WARN, [f"{text}; synchronise the clock (NTP) before it exceeds the server's leeway"]
        )
    return Step("clock", Status.OK, [f"this machine and the token endpoint agree within {abs(offset):.0f} s"])


def _skipped(*names: str) -> Iterator[Step]:
    for name in names:
        yield Step(name, Status.SKIP, ["an earlier step failed"])
