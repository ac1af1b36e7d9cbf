"""Metrics and spans of the hook against the local server, through Airflow's own ``Stats`` and OpenTelemetry.

Metrics: Airflow's StatsD client (``[metrics] statsd_on``, InfluxDB-style tags so that they can be
read back) sends to a real UDP socket on loopback. Spans: Airflow's ``[traces] otel_on`` switch, a
tracer provider with OpenTelemetry's in-memory exporter, and a parent span opened the way the task
runner opens ``worker.<task_id>``. Each assertion names what it expects, so a missing event fails.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_jwt_provider.common.telemetry import API_SPAN, NO_SPAN, TELEMETRY, TOKEN_SPAN
from airflow_jwt_provider.exceptions import TokenEndpointError
from airflow_jwt_provider.hooks.jwt_bearer import JwtBearerHook
from airflow_jwt_provider.tokens.cache import TokenCache
from devserver import keystores as ks
from devserver.server import LocalAuthorizationServer
from tests.conftest import CLIENT_ID, KEY_PASSWORD, STORE_PASSWORD, connection_extra, register
from tests.telemetry_support import StatsdListener, span_dicts, total

CLIENT_SECRET = "tElEmEtRy-client-secret-5d1e"
JWT = re.compile(r"eyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}")


@pytest.fixture(params=["influxdb"])
def statsd(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[StatsdListener]:
    """Airflow's Stats pointed at a UDP listener (``[metrics]`` as environment variables), telemetry re-read.

    Tags in the lines (``statsd_influxdb_enabled``) unless the test asks for ``plain`` StatsD.
    """
    from airflow.sdk._shared.observability.metrics.base_stats_logger import NoStatsLogger
    from airflow.sdk.observability import stats
    from airflow.sdk.observability.metrics import stats_utils

    listener = StatsdListener()
    for option, value in {
        "STATSD_ON": "True",
        "STATSD_HOST": "127.0.0.1",
        "STATSD_PORT": str(listener.port),
        "STATSD_PREFIX": "airflow",
        "STATSD_INFLUXDB_ENABLED": str(request.param == "influxdb"),
    }.items():
        monkeypatch.setenv(f"AIRFLOW__METRICS__{option}", value)
    stats.initialize(factory=stats_utils.get_stats_factory(), export_legacy_names=False)
    TELEMETRY.reset()
    yield listener
    TELEMETRY.reset()
    stats.initialize(factory=NoStatsLogger, export_legacy_names=False)
    listener.close()


@pytest.fixture(scope="session")
def span_exporter() -> Any:
    """An in-memory exporter on the process's tracer provider (installed once: OpenTelemetry allows one)."""
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return exporter


@pytest.fixture
def spans(span_exporter: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("AIRFLOW__TRACES__OTEL_ON", "True")
    TELEMETRY.reset()
    span_exporter.clear()
    yield span_exporter
    TELEMETRY.reset()


@pytest.fixture
def hook(
    auth_server: LocalAuthorizationServer, keystores: dict[str, ks.Keystore], set_connection: Callable[..., str]
) -> JwtBearerHook:
    store = keystores["default"]
    register(auth_server, store, client_secret=CLIENT_SECRET)
    conn_id = set_connection(
        "jwt_telemetry",
        login=CLIENT_ID,
        password=CLIENT_SECRET,
        host=auth_server.api_url,
        extra=connection_extra(store, auth_server),
    )
    return JwtBearerHook(conn_id)


def test_off_by_default_nothing_is_set_up(hook: JwtBearerHook) -> None:
    TELEMETRY.reset()
    hook.get_token()
    hook.run("whoami")
    assert (TELEMETRY.metrics, TELEMETRY.traces) == (False, False)  # Airflow's defaults: statsd_on, otel_on off
    assert TELEMETRY._stats is None
    assert TELEMETRY._otel is None
    assert TELEMETRY.token_span("c", "g", "s") is NO_SPAN
    assert TELEMETRY.api_span("c", "GET", "https://x/y") is NO_SPAN


def test_metrics_of_tokens_caches_retries_and_refreshes_reach_statsd(
    hook: JwtBearerHook,
    statsd: StatsdListener,
    auth_server: LocalAuthorizationServer,
    keystores: dict[str, ks.Keystore],
    set_connection: Callable[..., str],
) -> None:
    auth_server.fail_next("/oauth2/token", 503, retry_after=0)
    hook.get_token()  # a miss: one token request, retried once after the 503
    for _ in range(5):
        hook.get_token()  # five hits in the process cache
    TELEMETRY.flush()
    auth_server.fail_next("whoami", 401)
    hook.run("whoami")  # the API refuses the token: one refresh, a second token request
    auth_server.fail_next("whoami", 429, retry_after=0)
    hook.run("whoami", retry=True)
    TELEMETRY.flush()
    refused_conn = set_connection(  # a key the server does not know for the client: refused
        "jwt_telemetry_refused",
        login=CLIENT_ID,
        password=CLIENT_SECRET,
        host=auth_server.api_url,
        extra=connection_extra(keystores["ec256"], auth_server),
    )
    with pytest.raises(TokenEndpointError):
        JwtBearerHook(refused_conn).get_token()

    got = statsd.drain()
    conn = {"conn_id": "jwt_telemetry"}
    grant = {**conn, "grant": "jwt-bearer"}
    assert total(got, "airflow.jwt_bearer.token_request.success", **grant) == 2
    assert total(got, "airflow.jwt_bearer.token_request.refused", conn_id="jwt_telemetry_refused") == 1
    assert total(got, "airflow.jwt_bearer.token_request.error") == 0
    durations = [d for d in got if d.name == "airflow.jwt_bearer.token_request.duration" and d.tags == grant]
    assert len(durations) == 2
    assert all(d.type == "ms" and d.value > 0 for d in durations)
    assert total(got, "airflow.jwt_bearer.cache.miss", **conn) == 2  # the first token and the refresh
    assert total(got, "airflow.jwt_bearer.cache.hit_process", **conn) >= 6  # five, and the API calls' lookups
    assert total(got, "airflow.jwt_bearer.retry.http_5xx", **conn, target="token_endpoint") == 1
    assert total(got, "airflow.jwt_bearer.retry.http_429", **conn, target="api") == 1
    assert total(got, "airflow.jwt_bearer.refresh_after_401", **conn) == 1
    # one assertion per token request sent (two attempts for the first token, one for the refresh)
    assert total(got, "airflow.jwt_bearer.assertion.minted", **conn, signer="local") == 3
    signing = [d for d in got if d.name == "airflow.jwt_bearer.sign.local"]
    assert len(signing) >= 3
    assert all(d.type == "ms" for d in signing)


def test_spans_hang_under_the_task_span_with_their_attributes(
    hook: JwtBearerHook, spans: Any, auth_server: LocalAuthorizationServer
) -> None:
    from opentelemetry import trace

    with trace.get_tracer("airflow.sdk.execution_time.task_runner").start_as_current_span("worker.call_api"):
        hook.run("whoami", params={"q": "not-in-any-span"})  # a token request inside the API call
        hook.run("whoami")  # the token from the process cache: no token span
        auth_server.fail_next("whoami", 401)
        hook.run("whoami")  # refused, refreshed, re-sent

    found = span_dicts(spans.get_finished_spans())
    by_name: dict[str, list[dict[str, Any]]] = {}
    for span in found:
        by_name.setdefault(span["name"], []).append(span)
    (task,) = by_name["worker.call_api"]
    calls = by_name[API_SPAN]
    tokens = by_name[TOKEN_SPAN]
    assert len(calls) == 3
    assert len(tokens) == 2
    assert all(c["parent_id"] == task["span_id"] and c["trace_id"] == task["trace_id"] for c in calls)
    assert tokens[0]["parent_id"] == calls[0]["span_id"]  # the first token was fetched inside the first call
    assert tokens[1]["parent_id"] == calls[2]["span_id"]  # the refresh, inside the third
    host, port = auth_server.api_url.split("//")[1].split("/")[0].split(":")
    assert calls[0]["attributes"] == {
        "jwt_bearer.conn_id": "jwt_telemetry",
        "http.request.method": "GET",
        "url.scheme": "http",
        "server.address": host,
        "server.port": int(port),
        "http.response.status_code": 200,
    }
    assert calls[2]["attributes"]["http.request.resend_count"] == 1
    assert tokens[0]["attributes"] == {
        "jwt_bearer.conn_id": "jwt_telemetry",
        "jwt_bearer.grant": "jwt-bearer",
        "jwt_bearer.assertion_source": "sign",
        "jwt_bearer.cache": "endpoint",
        "jwt_bearer.token_request": "success",
        "jwt_bearer.retries": 0,
        "http.response.status_code": 200,
    }
    assert "not-in-any-span" not in json.dumps(found)


def test_a_refused_token_request_marks_its_span_failed_by_type_only(
    spans: Any, auth_server: LocalAuthorizationServer, keystores: dict[str, ks.Keystore], set_connection: Any
) -> None:
    register(auth_server, keystores["default"], client_secret=CLIENT_SECRET)
    conn_id = set_connection(
        "jwt_telemetry_refused",
        login=CLIENT_ID,
        password="wrong-" + CLIENT_SECRET,
        host=auth_server.api_url,
        extra=connection_extra(keystores["default"], auth_server),
    )
    with pytest.raises(TokenEndpointError):
        JwtBearerHook(conn_id).get_token()
    (span,) = span_dicts(spans.get_finished_spans())
    assert span["status"] == "ERROR"
    assert span["events"] == []
    assert span["attributes"]["error.type"] == "TokenEndpointError"
    assert span["attributes"]["jwt_bearer.token_request"] == "refused"
    assert span["attributes"]["http.response.status_code"] == 401


def test_no_secret_in_any_metric_or_span(
    statsd: StatsdListener,
    spans: Any,
    auth_server: LocalAuthorizationServer,
    keystores: dict[str, ks.Keystore],
    set_connection: Callable[..., str],
) -> None:
    store = keystores["jks"]
    register(auth_server, store, client_secret=CLIENT_SECRET)
    auth_server.keep_credentials = True
    extra = connection_extra(store, auth_server)
    for conn_id, more in (("jwt_canary_bearer", {}), ("jwt_canary_dpop", {"dpop": True})):
        set_connection(
            conn_id, login=CLIENT_ID, password=CLIENT_SECRET, host=auth_server.api_url, extra={**extra, **more}
        )
        hook = JwtBearerHook(conn_id)
        hook.run("whoami", params={"token": "q-" + CLIENT_SECRET})
        auth_server.fail_next("whoami", 401)
        hook.run("whoami")
        hook.get_token(force_refresh=True)
    auth_server.careless = True  # its errors now quote the client secret and the assertion
    wrong = "wrong-" + CLIENT_SECRET
    set_connection("jwt_canary_refused", login=CLIENT_ID, password=wrong, host=auth_server.api_url, extra=extra)
    with pytest.raises(TokenEndpointError) as refused:
        JwtBearerHook("jwt_canary_refused").run("whoami")
    assert "invalid_client" in str(refused.value)
    TELEMETRY.flush()

    statsd.drain()
    text = "\n".join(statsd.lines) + json.dumps(span_dicts(spans.get_finished_spans()))
    assert "jwt_bearer.token_request.success" in text
    assert TOKEN_SPAN in text
    assert "jwt_bearer.token_request.refused" in text
    assert '"error.type": "TokenEndpointError"' in text
    secrets = [CLIENT_SECRET, wrong, STORE_PASSWORD, KEY_PASSWORD, *auth_server.received_credentials]
    secrets += auth_server.issued_tokens()
    assert auth_server.received_credentials
    assert auth_server.issued_tokens()
    for secret in secrets:
        assert secret not in text, f"a secret ({secret[:6]}…) is in a metric or a span"
    assert JWT.search(text) is None  # no assertion, DPoP proof or JWT-shaped token


def test_metrics_of_the_shared_store_dpop_nonces_and_an_unreachable_endpoint(
    statsd: StatsdListener,
    auth_server: LocalAuthorizationServer,
    keystores: dict[str, ks.Keystore],
    set_connection: Callable[..., str],
    tmp_path: Path,
) -> None:
    from airflow_jwt_provider.tokens.dpop import NONCES
    from airflow_jwt_provider.tokens.shared_cache import reset_store_health

    store = keystores["default"]
    register(auth_server, store, client_secret=CLIENT_SECRET)

    def conn(conn_id: str, **extra: Any) -> str:
        return set_connection(
            conn_id,
            login=CLIENT_ID,
            password=CLIENT_SECRET,
            host=auth_server.api_url,
            extra=connection_extra(store, auth_server, **extra),
        )

    shared = conn("jwt_shared", token_cache="file", token_cache_dir=str(tmp_path / "tokens"))
    JwtBearerHook(shared, token_cache=TokenCache()).get_token()  # a miss, stored in the directory
    JwtBearerHook(shared, token_cache=TokenCache()).get_token()  # another process's view: found there
    not_a_directory = tmp_path / "file"
    not_a_directory.write_text("")
    broken = conn("jwt_broken_store", token_cache="file", token_cache_dir=str(not_a_directory), subject="erin")
    try:
        JwtBearerHook(broken, token_cache=TokenCache()).get_token()  # the store fails: a token all the same
    finally:
        reset_store_health()
    auth_server.dpop_nonce = True
    auth_server.dpop_api_nonce = True
    NONCES.clear()
    try:
        JwtBearerHook(conn("jwt_dpop", dpop=True, subject="dave")).run("whoami")
    finally:
        NONCES.clear()
    unreachable = conn("jwt_unreachable", auth_url="http://127.0.0.1:9/token", subject="frank")
    with pytest.raises(TokenEndpointError):
        JwtBearerHook(unreachable).get_token()

    got = statsd.drain()
    assert total(got, "airflow.jwt_bearer.cache.miss", conn_id="jwt_shared") == 1
    assert total(got, "airflow.jwt_bearer.cache.hit_shared", conn_id="jwt_shared") == 1
    assert total(got, "airflow.jwt_bearer.shared_cache.unavailable", conn_id="jwt_broken_store", store="file") >= 1
    assert total(got, "airflow.jwt_bearer.token_request.success", conn_id="jwt_broken_store") == 1
    nonce = "airflow.jwt_bearer.retry.use_dpop_nonce"
    assert total(got, nonce, conn_id="jwt_dpop", target="token_endpoint") == 1
    assert total(got, nonce, conn_id="jwt_dpop", target="api") == 1
    assert total(got, "airflow.jwt_bearer.token_request.error", conn_id="jwt_unreachable") == 1
    assert total(got, "airflow.jwt_bearer.retry.connection_error", conn_id="jwt_unreachable") == 2


@pytest.mark.parametrize("statsd", ["plain"], indirect=True)
def test_plain_statsd_gets_the_names_without_tags(hook: JwtBearerHook, statsd: StatsdListener) -> None:
    hook.get_token()
    hook.get_token()
    TELEMETRY.flush()
    statsd.drain()
    lines = {line for line in statsd.lines if "jwt_bearer" in line}
    assert "airflow.jwt_bearer.token_request.success:1|c" in lines
    assert "airflow.jwt_bearer.cache.miss:1|c" in lines
    assert "airflow.jwt_bearer.cache.hit_process:1|c" in lines
    assert "airflow.jwt_bearer.assertion.minted:1|c" in lines
    assert all("," not in line and "jwt_telemetry" not in line for line in lines)  # the backend dropped the tags
