"""Redaction of per-call credentials: by shape, by value, and in the process's logging."""

from __future__ import annotations

import logging

import pytest

from airflow_jwt_provider.common.redaction import (
    LIVE_TOKENS,
    LiveTokens,
    RedactingFilter,
    install_log_redaction,
    redact_log_event,
    redact_text,
)

JWT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlLWJ5dGVz"
OPAQUE = "Qx7-opaque_token.value~with/chars+42=="


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"minted {JWT} for alice", "minted *** for alice"),
        (f"Authorization: Bearer {OPAQUE}", "Authorization: Bearer ***"),
        (f"authorization: bearer {OPAQUE}, other", "authorization: bearer ***, other"),
        ("Basic dXNlcjpwYXNzd29yZA==", "Basic ***"),
        (f'{{"access_token": "{OPAQUE}", "expires_in": 3600}}', '{"access_token": "***", "expires_in": 3600}'),
        (f"grant_type=x&assertion={JWT}&scope=a", "grant_type=x&assertion=***&scope=a"),
        (f"client_secret={OPAQUE}&client_id=c", "client_secret=***&client_id=c"),
        ("a plain sentence about bearer bonds", "a plain sentence about bearer bonds"),
        (
            "Token endpoint https://login.example.com/token answered",
            "Token endpoint https://login.example.com/token answered",
        ),
        ("basic authentication failed", "basic authentication failed"),
        ("the assertion: it expired", "the assertion: it expired"),
        ("Authorization: token ghp_16C7e42F292c6912E7710c838347Ae178B4a", "Authorization: token ***"),
        (
            "Token endpoint https://login/oauth2/token answered HTTP 503; retrying",
            "Token endpoint https://login/oauth2/token answered HTTP 503; retrying",
        ),
        ("GET https://api.example.com/v2/items?page=2", "GET https://api.example.com/v2/items?page=2"),
    ],
)
def test_credential_shapes_are_blanked(text: str, expected: str) -> None:
    assert redact_text(text) == expected


def test_known_values_are_blanked_anywhere() -> None:
    assert redact_text("echo: xx-the-secret-xx", ["the-secret"]) == "echo: xx-***-xx"
    assert redact_text("short ab", ["ab"]) == "short ab"  # too short to tell from ordinary text


def test_live_tokens_are_blanked_while_live_and_the_set_is_bounded() -> None:
    live = LiveTokens(max_entries=3)
    for i in range(10):
        live.add(f"opaque-token-number-{i:04d}")
    assert len(live) == 3
    assert "opaque-token-number-0009" in live
    assert "opaque-token-number-0000" not in live
    LIVE_TOKENS.add(OPAQUE)
    try:
        assert redact_text(f"user printed {OPAQUE} bare") == "user printed *** bare"
        assert redact_text(f"user printed {OPAQUE.rstrip('=')}") == "user printed ***"
    finally:
        LIVE_TOKENS.discard(OPAQUE)
    assert redact_text(f"user printed {OPAQUE} bare") == f"user printed {OPAQUE} bare"


def test_the_token_cache_feeds_and_drains_the_live_set() -> None:
    from airflow_jwt_provider.tokens.access_token import AccessToken
    from airflow_jwt_provider.tokens.cache import TokenCache

    cache = TokenCache(max_entries=2)
    values = [f"cache-token-value-{i:04d}" for i in range(3)]
    for i, value in enumerate(values):
        cache.get(f"k{i}", lambda value=value: AccessToken(value))
    assert values[0] not in LIVE_TOKENS  # evicted from the cache: no longer live
    assert values[1] in LIVE_TOKENS
    assert values[2] in LIVE_TOKENS
    cache.invalidate()
    assert not any(value in LIVE_TOKENS for value in values)


def test_installed_once_in_structlog_and_the_root_handlers() -> None:
    import structlog

    install_log_redaction()
    install_log_redaction()
    processors = structlog.get_config()["processors"]
    assert processors.count(redact_log_event) == 1
    assert processors[-2] is redact_log_event  # just before the renderer
    for handler in logging.getLogger().handlers:
        chain = getattr(handler.formatter, "foreign_pre_chain", None)
        if isinstance(chain, list):
            assert chain.count(redact_log_event) == 1
        else:
            assert sum(isinstance(f, RedactingFilter) for f in handler.filters) == 1


def test_structlog_and_stdlib_lines_come_out_redacted(capsys: pytest.CaptureFixture[str]) -> None:
    import structlog

    install_log_redaction()
    event = redact_log_event(None, "info", {"event": f"sent Bearer {OPAQUE}", "token": JWT, "n": 1})
    assert event == {"event": "sent Bearer ***", "token": "***", "n": 1}
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "header %s and %s", (f"Bearer {OPAQUE}", JWT), None)
    assert RedactingFilter().filter(record)
    assert record.getMessage() == "header Bearer *** and ***"
    structlog.get_logger("jwt-test").warning("leak attempt", header=f"Bearer {OPAQUE}", assertion=JWT)
    out = capsys.readouterr()
    text = out.out + out.err
    assert "leak attempt" in text
    assert OPAQUE not in text
    assert JWT not in text
