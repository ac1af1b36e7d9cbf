"""Token client details that need no server: plain-http warning, Basic credentials encoding."""

from __future__ import annotations

import pytest

from airflow_jwt_provider.token_client import ClientAuthentication, TokenClient


def test_plain_http_to_a_remote_host_is_warned(caplog: pytest.LogCaptureFixture) -> None:
    TokenClient("http://login.example.com/token", ClientAuthentication())
    TokenClient("http://127.0.0.1:8080/token", ClientAuthentication())
    TokenClient("https://login.example.com/token", ClientAuthentication())
    warnings = [r.getMessage() for r in caplog.records if "plain http" in r.getMessage()]
    assert len(warnings) == 1
    assert "login.example.com" in warnings[0]


def test_basic_credentials_are_form_encoded_first() -> None:
    form: dict[str, str] = {}
    auth = ClientAuthentication("client_secret_basic", "id:with colon", "sec/ret").apply(form)
    assert form == {}
    assert auth is not None
    assert (auth.username, auth.password) == ("id%3Awith%20colon", "sec%2Fret")
