"""``airflow jwt-bearer check``: a connection diagnosed in the order a token request needs things.

Each step says OK, WARN (works, but act soon), FAIL (what to fix) or SKIP (an earlier step
failed, or it does not apply). The steps use the provider's own code paths (settings parser,
preset rules, key choice, assertion minter, token client), so what ``check`` finds is what a
task would meet. The token is fetched anew and never shown; the assertion is shown decoded.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import requests

from airflow_jwt_provider.cli.describe import certificate_lines, claim_lines, decode_jwt
from airflow_jwt_provider.credentials import JwtBearerCredentials
from airflow_jwt_provider.exceptions import JwtBearerError
from airflow_jwt_provider.settings import CLIENT_CREDENTIALS_GRANT, ConnectionLike, JwtBearerSettings
from airflow_jwt_provider.token_client import clock_offset
from airflow_jwt_provider.token_parameters import TokenParameters

#: A clock further off than this is worth a warning (servers allow some leeway, typically 60 s).
CLOCK_WARNING_SECONDS = 5.0


@dataclass
class Step:
    """One step of the diagnosis and what it found."""

    name: str
    status: str  # OK, WARN, FAIL, SKIP
    lines: list[str] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return self.status == "FAIL"


def diagnose(conn: ConnectionLike, subject: str | None = None, scope: str | None = None) -> Iterator[Step]:
    """The steps of the diagnosis of ``conn``, each yielded as soon as it is done."""
    try:
        settings = JwtBearerSettings.from_connection(conn, check_preset=False)
    except JwtBearerError as exc:
        yield Step("settings", "FAIL", [str(exc)])
        yield from _skipped("preset rules", "key", "certificate", "assertion", "token", "clock")
        return
    yield Step("settings", "OK", _settings_lines(settings))
    yield _preset_step(conn, settings)

    responses: list[requests.Response] = []
    session = requests.Session()
    session.hooks["response"].append(lambda response, *args, **kwargs: responses.append(response))
    try:
        credentials = JwtBearerCredentials.from_settings(settings, session=session)
    except JwtBearerError as exc:
        yield Step("key", "FAIL", [str(exc)])
        yield from _skipped("certificate", "assertion", "token", "clock")
        return
    choice = credentials.choice
    assert choice is not None  # from_settings records it
    key_lines = [choice.describe()]
    if len(settings.key_aliases) > 1:
        looked_at = {c.name for c in choice.passed_over} | {choice.key.name}
        later = [name for name in settings.key_aliases if name not in looked_at]
        if later:
            key_lines.append(f"not opened (an earlier key signs): {', '.join(repr(n) for n in later)}")
    yield Step("key", "OK", key_lines)
    certificate = choice.signer.certificate
    yield Step(
        "certificate",
        "WARN" if choice.warning else "OK",
        certificate_lines(certificate) + ([choice.warning] if choice.warning else []),
    )

    params = TokenParameters.of(subject=subject, scope=scope)
    try:
        assertion_lines = _assertion_lines(credentials, params)
    except JwtBearerError as exc:
        yield Step("assertion", "FAIL", [str(exc)])
        yield from _skipped("token", "clock")
        return
    yield Step("assertion", "OK", assertion_lines)

    try:
        token = credentials.get_token(params, force_refresh=True)
    except JwtBearerError as exc:
        yield Step("token", "FAIL", [str(exc)])
    else:
        lifetime = f"expires in {int(token.lifetime.total_seconds())} s" if token.expires_at else "no expires_in"
        token_lines = [f"{token.token_type} token from {credentials.token_url}, {lifetime}"]
        token_lines.append(f"scope: {token.scope!r}" if token.scope else "scope: (none given by the server)")
        yield Step("token", "OK", token_lines)
    yield _clock_step(responses, settings)


def _settings_lines(settings: JwtBearerSettings) -> list[str]:
    if settings.signer == "local":
        source = settings.key_source
        where = f"key_file {source.path!r}" if source and source.path else "the inline private_key"
        key = f"signer local, {where}"
    elif settings.signer == "pkcs11":
        key = f"signer pkcs11, module {settings.pkcs11_module!r}, token {settings.pkcs11_token_label!r}"
    else:
        key = f"signer aws_kms, aws connection {settings.aws_conn_id!r}"
    if settings.key_aliases:
        key += f", key_alias {', '.join(settings.key_aliases)}"
    return [
        key,
        f"token endpoint: {settings.auth_url or '(from the key file)'}",
        f"client id: {settings.client_id or '(none)'}; issuer: {settings.issuer or '(the client id)'}; "
        f"subject: {settings.subject or '(none)'}",
        f"grant: {settings.grant_type}; client_auth: {settings.client_auth}; assertion lifetime: {settings.lifetime} s",
    ]


def _preset_step(conn: ConnectionLike, settings: JwtBearerSettings) -> Step:
    preset = settings.preset
    if preset is None:
        return Step("preset rules", "SKIP", ["no preset"])
    try:
        JwtBearerSettings.from_connection(conn)  # the same parse, with the preset's rules
    except JwtBearerError as exc:
        return Step("preset rules", "FAIL", [str(exc)])
    return Step("preset rules", "OK", [f"{preset.name} ({preset.title}): every rule is met; see {preset.doc_url}"])


def _assertion_lines(credentials: JwtBearerCredentials, params: TokenParameters) -> list[str]:
    """The decoded assertion(s) the token request sends: the grant's and/or the client assertion."""
    minted: list[tuple[str, str]] = []
    if credentials.settings.grant_type != CLIENT_CREDENTIALS_GRANT:
        minted.append(("assertion (the grant)", credentials.mint_assertion(params)))
    if credentials.settings.client_auth == "private_key_jwt":
        minted.append(("client assertion (client authentication)", credentials.mint_client_assertion()))
    lines = []
    for what, compact in minted:
        header, claims = decode_jwt(compact)
        lines.append(f"{what}, signed, header {header}")
        lines.extend(f"  {line}" for line in claim_lines(claims))
    return lines


def _clock_step(responses: list[requests.Response], settings: JwtBearerSettings) -> Step:
    dated = [r for r in responses if r.headers.get("Date")]
    if not dated:
        reason = "no answer from the token endpoint" if not responses else "the answer had no Date header"
        return Step("clock", "SKIP", [reason])
    offset = clock_offset(dated[-1])
    if offset is None:
        return Step("clock", "SKIP", ["the Date header of the answer cannot be read"])
    direction = "behind" if offset > 0 else "ahead of"
    text = f"this machine's clock is {abs(offset):.0f} s {direction} the token endpoint's (from its Date header)"
    if abs(offset) >= settings.lifetime:
        return Step(
            "clock",
            "FAIL",
            [f"{text}: more than the assertion lifetime ({settings.lifetime} s); synchronise the clock (NTP)"],
        )
    if abs(offset) >= CLOCK_WARNING_SECONDS:
        return Step("clock", "WARN", [f"{text}; synchronise the clock (NTP) before it exceeds the server's leeway"])
    return Step("clock", "OK", [f"this machine and the token endpoint agree within {abs(offset):.0f} s"])


def _skipped(*names: str) -> Iterator[Step]:
    for name in names:
        yield Step(name, "SKIP", ["an earlier step failed"])
