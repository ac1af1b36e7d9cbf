"""The telemetry module's own rules: hits counted exactly without a lock, tag values and names kept safe, off is off."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from airflow_jwt_provider.common.telemetry import (
    NO_SPAN,
    CacheTier,
    Degradation,
    LockWait,
    Metric,
    RequestTarget,
    RetryCause,
    Telemetry,
    TokenResult,
    grant_name,
)


class _Recorder:
    """Stands in for Airflow's ``Stats`` (the same call signatures) and keeps every call."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, Any, dict[str, str]]] = []

    def incr(self, stat: str, count: int = 1, rate: float | None = None, *, tags: dict[str, str]) -> None:
        self.calls.append(("incr", stat, count, tags))

    def timing(self, stat: str, dt: float, *, tags: dict[str, str]) -> None:
        self.calls.append(("timing", stat, dt, tags))


@pytest.fixture
def recorded() -> tuple[Telemetry, _Recorder]:
    telemetry = Telemetry()
    recorder = _Recorder()
    telemetry.metrics = True
    telemetry._stats = recorder
    telemetry._flush_at_exit = True  # a test instance registers nothing at exit
    return telemetry, recorder


def test_hits_from_many_threads_are_all_counted(recorded: tuple[Telemetry, _Recorder]) -> None:
    telemetry, recorder = recorded

    def hit() -> None:
        for _ in range(5000):
            telemetry.cache_hit("api")

    threads = [threading.Thread(target=hit) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    telemetry.flush()
    telemetry.flush()  # nothing new: nothing sent
    sent = [c for c in recorder.calls if c[1] == CacheTier.PROCESS.metric]
    assert sum(c[2] for c in sent) == 40000
    assert {c[3]["conn_id"] for c in sent} == {"api"}


def test_tag_values_and_names_hold_only_safe_characters(recorded: tuple[Telemetry, _Recorder]) -> None:
    telemetry, recorder = recorded
    telemetry.token_request(
        "my conn:1",
        "urn:ietf:params:oauth:grant-type:jwt-bearer",
        TokenResult.SUCCESS,
        status=200,
        retries=0,
        seconds=0.01,
    )
    telemetry.signed("vault.transit", None, 0.002)
    telemetry.retried(None, RequestTarget.TOKEN_ENDPOINT, RetryCause.HTTP_429)
    telemetry.shared_cache_degraded("c", "redis", Degradation.UNAVAILABLE)
    names = [c[1] for c in recorder.calls]
    assert names == [
        "jwt_bearer.token_request.success",
        "jwt_bearer.token_request.duration",
        "jwt_bearer.sign.vault_transit",
        "jwt_bearer.assertion.minted",
        "jwt_bearer.retry.http_429",
        "jwt_bearer.shared_cache.unavailable",
    ]
    assert recorder.calls[0][3] == {"conn_id": "my_conn_1", "grant": "jwt-bearer"}
    assert recorder.calls[1][2] == pytest.approx(10.0)  # milliseconds
    assert recorder.calls[2][3] == {"conn_id": "none", "signer": "vault.transit"}
    assert grant_name("client_credentials") == "client_credentials"
    assert all(member.value.startswith("jwt_bearer.") for member in Metric)


def test_off_nothing_is_called_and_spans_are_the_shared_no_op() -> None:
    telemetry = Telemetry()  # off, as Airflow's defaults leave it
    telemetry.cache_hit("c")
    telemetry.token_request("c", "g", TokenResult.ERROR, status=None, retries=0, seconds=1.0)
    telemetry.signed("local", "c", 0.1)
    telemetry.refreshed_after_401("c")
    telemetry.retried("c", RequestTarget.API, RetryCause.CONNECTION_ERROR)
    telemetry.flush()
    assert telemetry._hit_counters == {}
    with telemetry.api_span("c", "GET", "https://api.example/x?secret=1") as span:
        assert span is NO_SPAN
        telemetry.api_answered(span, 200)
    assert telemetry.token_span("c", "g", "sign") is NO_SPAN


def test_every_metric_name_passes_airflow_s_opentelemetry_name_check() -> None:
    """``[metrics] otel_on`` sends through Airflow's OTel logger, which refuses names OpenTelemetry does not allow."""
    from airflow.sdk._shared.observability.metrics.validators import stat_name_otel_handler

    parts = {
        Metric.TOKEN_REQUEST: [r.value for r in TokenResult],
        Metric.CACHE: [CacheTier.PROCESS.metric.rsplit(".", 1)[1], "hit_shared", "miss"],
        Metric.SIGN_DURATION: ["local", "pkcs11", "aws_kms"],
        Metric.SHARED_CACHE: [d.value for d in Degradation],
        Metric.LOCK_WAIT: [w.value for w in LockWait],
        Metric.RETRY: [c.value for c in RetryCause],
    }
    names = [m.named(p) for m in Metric for p in parts.get(m, [""])]
    assert len(names) == 22
    assert [stat_name_otel_handler("airflow", n) for n in names] == [f"airflow.{n}" for n in names]
