"""Provider registration: discovery by Airflow, the connection type, and its declarative form."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from airflow_jwt_provider.connection._signer_group import allowed_keys
from airflow_jwt_provider.get_provider_info import conn_fields, get_provider_info

pytestmark = pytest.mark.slow


def airflow_cli(*args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "airflow", *args], capture_output=True, text=True, env=os.environ.copy(), timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def test_airflow_lists_the_provider_and_its_hook() -> None:
    assert "airflow-jwt-provider" in airflow_cli("providers", "list")
    hooks = airflow_cli("providers", "hooks")
    line = next(line for line in hooks.splitlines() if line.startswith("jwt_bearer"))
    assert "airflow_jwt_provider.hooks.jwt_bearer.JwtBearerHook" in line
    assert "jwt_bearer_conn_id" in line


def test_providers_manager_reads_the_form() -> None:
    from airflow.providers_manager import ProvidersManager

    manager = ProvidersManager()
    info = manager.providers["airflow-jwt-provider"]
    assert info.data["package-name"] == "airflow-jwt-provider"
    widgets = manager.connection_form_widgets
    for secret in ("private_key", "keystore_password", "key_password"):
        assert widgets[f"extra__jwt_bearer__{secret}"].is_sensitive, secret
    assert not widgets["extra__jwt_bearer__auth_url"].is_sensitive
    behaviour = manager.field_behaviours["jwt_bearer"]
    assert behaviour["relabeling"]["login"] == "Client ID"
    assert "schema" in behaviour["hidden_fields"]


def test_providers_manager_lists_both_triggers() -> None:
    """The deferrable trigger and the event trigger of asset watchers, each naming a module that imports."""
    import importlib

    from airflow.providers_manager import ProvidersManager

    triggers = ProvidersManager().trigger
    ours = {info.trigger_class_name for info in triggers if info.package_name == "airflow-jwt-provider"}
    assert ours == {"airflow_jwt_provider.triggers.http", "airflow_jwt_provider.triggers.event"}
    event_module = importlib.import_module("airflow_jwt_provider.triggers.event")
    assert event_module.CLASSPATH == "airflow_jwt_provider.triggers.event.JwtBearerHttpEventTrigger"


def test_form_fields_are_exactly_the_connection_contract() -> None:
    form = conn_fields()
    assert set(form) == set(allowed_keys())  # what the form stores is what the parser accepts, and no more
    for name, field in form.items():
        assert field["label"], name
        assert field["description"], name
    connection_type = get_provider_info()["connection-types"][0]
    assert connection_type["connection-type"] == "jwt_bearer"
    assert connection_type["hook-class-name"] == "airflow_jwt_provider.hooks.jwt_bearer.JwtBearerHook"


def test_connections_cli_knows_the_type(set_connection) -> None:
    set_connection("cli_conn", login="c", extra={"auth_url": "https://x/token", "key_file": "/k"})
    out = airflow_cli("connections", "get", "cli_conn", "-o", "json")
    assert '"conn_type": "jwt_bearer"' in out


def test_airflow_config_shows_the_jwt_bearer_section() -> None:
    """The [jwt_bearer] section declared in the provider info, as the real ``airflow config`` command shows it."""
    listed = airflow_cli("config", "list", "--section", "jwt_bearer", "--include-descriptions", "--show-values")
    assert "[jwt_bearer]" in listed
    for option, default in [
        ("token_cache", "memory"),
        ("token_cache_conn_id", "redis_default"),
        ("token_cache_wait", "10"),
        ("token_cache_io_timeout", "0.5"),
    ]:
        assert f"{option} = {default}" in listed, listed
    assert "token_cache_dir =" in listed
    assert "Celery broker's Redis" in listed  # the descriptions come along
    env = {**os.environ, "AIRFLOW__JWT_BEARER__TOKEN_CACHE": "redis"}
    result = subprocess.run(
        [sys.executable, "-m", "airflow", "config", "get-value", "jwt_bearer", "token_cache"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "redis"
