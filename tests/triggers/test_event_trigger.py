"""JwtBearerHttpEventTrigger against the real local server: one event per change of a resource a test changes.

The devserver's ``/api/exports/<name>`` (:mod:`devserver.exports`) is the watched resource: each
``server.exports.update(...)`` is a change, answered with a new ``ETag`` (or none), and
``If-None-Match`` with the current one is answered 304. The trigger runs as the triggerer runs it
(its ``run()`` iterated until cancelled); "re-created" means a new instance built from the first
one's serialized arguments, as the triggerer builds it; "triggerer restart" means that, after the
process's memory was forgotten too.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk.serde import deserialize, serialize

from airflow_jwt_provider.exceptions import JwtBearerConfigError
from airflow_jwt_provider.hooks.jwt_bearer import JwtBearerHook
from airflow_jwt_provider.tokens.fired_marks import forget_process_marks
from airflow_jwt_provider.triggers.event import CLASSPATH, JwtBearerHttpEventTrigger
from devserver.server import LocalAuthorizationServer
from tests.conftest import CLIENT_ID, CLIENT_SECRET, REDIS_CONN_ID, STORE_PASSWORD, connection_extra, register
from tests.redis_server import RedisServer

EXPORT = "daily"
PATH = f"/api/exports/{EXPORT}"
#: Long enough for the test to change the resource between two polls on a loaded machine.
INTERVAL = 0.25
NO_RETRY = {"max_attempts": 1}
READY = {"path": "status", "equals": "ready"}


@pytest.fixture(autouse=True)
def fresh_process_marks() -> Iterator[None]:
    forget_process_marks()
    yield
    forget_process_marks()


@pytest.fixture
def make_conn(
    auth_server: LocalAuthorizationServer, keystores: dict[str, Any], set_connection: Callable[..., str]
) -> Callable[..., str]:
    store = keystores["default"]
    register(auth_server, store, client_secret=CLIENT_SECRET)

    def make(conn_id: str = "jwt_events", **extra: Any) -> str:
        return set_connection(
            conn_id,
            host=auth_server.api_url,
            login=CLIENT_ID,
            password=CLIENT_SECRET,
            extra=connection_extra(store, auth_server, **extra),
        )

    return make


@pytest.fixture
def conn_id(make_conn: Callable[..., str]) -> str:
    return make_conn()


@pytest.fixture
def redis_conn_id(make_conn: Callable[..., str], redis_connection: RedisServer) -> str:
    return make_conn("jwt_events_redis", token_cache="redis", token_cache_conn_id=REDIS_CONN_ID)


@pytest.fixture
def trigger_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG)
    return caplog


def event_trigger(conn_id: str, **kwargs: Any) -> JwtBearerHttpEventTrigger:
    kwargs.setdefault("condition", READY)
    kwargs.setdefault("poll_interval", INTERVAL)
    kwargs.setdefault("jitter", 0)
    kwargs.setdefault("retry", NO_RETRY)
    trigger = JwtBearerHttpEventTrigger(conn_id, f"exports/{EXPORT}", **kwargs)
    trigger._log = logging.getLogger("tests.event_trigger")  # a stdlib logger, so that caplog sees its lines
    return trigger


def recreated(trigger: JwtBearerHttpEventTrigger) -> JwtBearerHttpEventTrigger:
    """The trigger as the triggerer builds it again: from its serialized kwargs, through Airflow's serde."""
    classpath, kwargs = trigger.serialize()
    assert classpath == CLASSPATH
    again = JwtBearerHttpEventTrigger(**deserialize(serialize(kwargs)))
    again._log = trigger._log
    return again


def export_requests(server: LocalAuthorizationServer) -> list[dict[str, Any]]:
    return [r for r in list(server.api_requests) if r["path"] == PATH]


async def watch(
    trigger: JwtBearerHttpEventTrigger,
    server: LocalAuthorizationServer,
    polls: int,
    changes: dict[int, Callable[[], Any]] | None = None,
    timeout: float = 30,
) -> list[dict[str, Any]]:
    """Run the trigger for ``polls`` polls; ``changes[n]`` runs once poll ``n`` was answered. Its events."""
    events: list[dict[str, Any]] = []
    before = len(export_requests(server))
    pending = dict(changes or {})

    async def consume() -> None:
        async for event in trigger.run():
            events.append(event.payload)

    task = asyncio.create_task(consume())
    deadline = time.monotonic() + timeout
    try:
        # one poll more than asked: poll ``polls`` is then handled in full (its event yielded)
        while (done := len(export_requests(server)) - before) <= polls:
            if task.done():
                task.result()  # raises what the trigger raised
                raise AssertionError("the trigger returned: a watcher must keep watching")
            for poll in sorted(p for p in pending if p <= done):
                pending.pop(poll)()
            assert time.monotonic() < deadline, f"only {done} polls in {timeout} s"
            await asyncio.sleep(0.01)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    return events


def identities(events: list[dict[str, Any]]) -> list[str]:
    return [event["identity"] for event in events if event["status"] == "changed"]


# -------------------------------------------------------------------------- once per change


async def test_a_ready_export_fires_once_and_unchanged_polls_get_304(
    conn_id: str, auth_server: LocalAuthorizationServer
) -> None:
    auth_server.exports.update(EXPORT, status="ready", url="https://files.example/daily.csv")
    events = await watch(event_trigger(conn_id), auth_server, polls=4)

    assert len(events) == 1, events
    (event,) = events
    assert event["status"] == "changed"
    assert (event["identity"], event["identity_source"]) == ('"v1"', "etag")
    assert event["body"] == {
        "export_id": EXPORT,
        "version": 1,
        "status": "ready",
        "url": "https://files.example/daily.csv",
    }
    requests = export_requests(auth_server)
    assert requests[0]["if_none_match"] is None
    assert all(r["if_none_match"] == '"v1"' for r in requests[1:])
    assert [r["status"] for r in requests[:4]] == [200, 304, 304, 304]
    assert {(r["auth_scheme"], r["subject"]) for r in requests} == {("Bearer", "alice")}


async def test_each_change_fires_one_event_with_a_new_identity(
    conn_id: str, auth_server: LocalAuthorizationServer
) -> None:
    auth_server.exports.update(EXPORT, status="ready", day="2026-12-01")
    changes = {
        2: lambda: auth_server.exports.update(EXPORT, day="2026-12-02"),
        4: lambda: auth_server.exports.update(EXPORT, day="2026-12-03"),
    }
    events = await watch(event_trigger(conn_id), auth_server, polls=6, changes=changes)

    assert identities(events) == ['"v1"', '"v2"', '"v3"']
    assert [event["body"]["day"] for event in events] == ["2026-12-01", "2026-12-02", "2026-12-03"]
    assert [r["status"] for r in export_requests(auth_server)].count(200) == 3


async def test_nothing_fires_until_the_condition_holds(conn_id: str, auth_server: LocalAuthorizationServer) -> None:
    """404 is "not there yet", a state that does not satisfy the condition is "not ready": neither fires nor fails."""
    changes = {
        1: lambda: auth_server.exports.update(EXPORT, status="running"),
        3: lambda: auth_server.exports.update(EXPORT, status="ready"),
    }
    events = await watch(event_trigger(conn_id), auth_server, polls=5, changes=changes)

    assert identities(events) == ['"v2"']
    assert [r["status"] for r in export_requests(auth_server)][:1] == [404]


async def test_a_presence_condition(conn_id: str, auth_server: LocalAuthorizationServer) -> None:
    changes = {2: lambda: auth_server.exports.update(EXPORT, url="https://files.example/x.csv")}
    auth_server.exports.update(EXPORT, status="running")
    trigger = event_trigger(conn_id, condition={"path": "url", "present": True})
    events = await watch(trigger, auth_server, polls=4, changes=changes)
    assert identities(events) == ['"v2"']


async def test_a_condition_function_is_imported_once_per_trigger(
    conn_id: str, auth_server: LocalAuthorizationServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    import airflow_jwt_provider.triggers.event as event_module
    from tests.triggers import conditions

    imports: list[str] = []
    real_import = event_module.import_callable

    def counting_import(path: str) -> Any:
        imports.append(path)
        return real_import(path)

    monkeypatch.setattr(event_module, "import_callable", counting_import)
    auth_server.exports.update(EXPORT, status="ready", rows=10, etag=False)  # no 304: the check runs on every poll
    changes = {
        2: lambda: auth_server.exports.update(EXPORT, rows=0),
        3: lambda: auth_server.exports.update(EXPORT, rows=5),
    }
    trigger = event_trigger(conn_id, condition=conditions.has_rows, identity_path="version")
    events = await watch(trigger, auth_server, polls=5, changes=changes)

    assert trigger.serialize()[1]["condition"] == "tests.triggers.conditions.has_rows"
    assert imports == ["tests.triggers.conditions.has_rows"]
    assert [(e["identity"], e["body"]["rows"]) for e in events] == [("1", 10), ("3", 5)]


# -------------------------------------------------------------------------- identities


async def test_the_identity_from_a_json_path_ignores_other_changes(
    conn_id: str, auth_server: LocalAuthorizationServer
) -> None:
    auth_server.exports.update(EXPORT, status="ready", cursor="c-1", checked_at="10:00", etag=False)
    changes = {
        2: lambda: auth_server.exports.update(EXPORT, checked_at="10:05"),  # a new body, the same cursor
        4: lambda: auth_server.exports.update(EXPORT, cursor="c-2"),
    }
    events = await watch(event_trigger(conn_id, identity_path="cursor"), auth_server, polls=6, changes=changes)

    assert [(e["identity"], e["identity_source"]) for e in events] == [("c-1", "json_path"), ("c-2", "json_path")]
    assert all(r["if_none_match"] is None for r in export_requests(auth_server))  # no ETag, nothing to send


async def test_a_list_of_item_ids_is_an_identity(conn_id: str, auth_server: LocalAuthorizationServer) -> None:
    auth_server.exports.update(EXPORT, status="ready", items=[{"id": 1}, {"id": 2}], etag=False)
    changes = {2: lambda: auth_server.exports.update(EXPORT, items=[{"id": 1}, {"id": 2}, {"id": 3}])}
    events = await watch(event_trigger(conn_id, identity_path="items.*.id"), auth_server, polls=4, changes=changes)
    assert identities(events) == ["[1,2]", "[1,2,3]"]


async def test_without_etag_or_identity_path_the_identity_is_the_body_digest(
    conn_id: str, auth_server: LocalAuthorizationServer
) -> None:
    auth_server.exports.update(EXPORT, status="ready", etag=False)
    changes = {2: lambda: auth_server.exports.update(EXPORT, note="second")}
    events = await watch(event_trigger(conn_id), auth_server, polls=4, changes=changes)

    assert [e["identity_source"] for e in events] == ["digest", "digest"]
    first, second = identities(events)
    assert first != second
    body = json.dumps(events[0]["body"], separators=(",", ":")) + "\n"  # Flask's compact JSON, unsorted
    assert first == "sha256:" + hashlib.sha256(body.encode()).hexdigest()


async def test_an_identity_path_the_answer_lacks_falls_back_to_the_digest_with_one_warning(
    conn_id: str, auth_server: LocalAuthorizationServer, trigger_log: pytest.LogCaptureFixture
) -> None:
    auth_server.exports.update(EXPORT, status="ready", etag=False)
    changes = {2: lambda: auth_server.exports.update(EXPORT, note="second")}
    events = await watch(event_trigger(conn_id, identity_path="cursor"), auth_server, polls=4, changes=changes)

    assert [e["identity_source"] for e in events] == ["digest", "digest"]
    warnings = [r.getMessage() for r in trigger_log.records if "nothing at identity_path 'cursor'" in r.getMessage()]
    assert len(warnings) == 1, warnings


# -------------------------------------------------------------------------- re-created, restarted


@pytest.mark.parametrize("etag", [True, False], ids=["etag-304", "identity-marks"])
async def test_a_recreated_trigger_does_not_fire_again_for_the_same_state(
    conn_id: str, auth_server: LocalAuthorizationServer, trigger_log: pytest.LogCaptureFixture, etag: bool
) -> None:
    """With an ETag, the re-created trigger's requests are conditional (304); without, its identity marks say no."""
    auth_server.exports.update(EXPORT, status="ready", etag=etag)
    first = event_trigger(conn_id, identity_path="version")
    version = '"v1"' if etag else "1"
    assert identities(await watch(first, auth_server, polls=2)) == [version]

    again = recreated(first)
    assert again.watch_key == first.watch_key
    assert await watch(again, auth_server, polls=3) == []
    # It starts from what the first one saw: with an ETag, its very first request is conditional already.
    assert export_requests(auth_server)[3]["if_none_match"] == ('"v1"' if etag else None)
    assert export_requests(auth_server)[3]["status"] == (304 if etag else 200)

    changes = {1: lambda: auth_server.exports.update(EXPORT, status="ready", day="next")}
    events = await watch(recreated(first), auth_server, polls=3, changes=changes)
    assert identities(events) == ['"v2"' if etag else "2"]
    # token_cache memory: said once, as a warning, that a restart may fire once more
    warnings = [r.getMessage() for r in trigger_log.records if r.levelno == logging.WARNING]
    assert len([w for w in warnings if "triggerer restart may fire once more" in w]) == 1, warnings


async def test_without_a_shared_store_a_restarted_triggerer_fires_once_more(
    conn_id: str, auth_server: LocalAuthorizationServer
) -> None:
    """The documented limit of token_cache memory: the marks were in the process that restarted."""
    auth_server.exports.update(EXPORT, status="ready")
    first = event_trigger(conn_id)
    assert identities(await watch(first, auth_server, polls=2)) == ['"v1"']
    forget_process_marks()  # the triggerer process restarted
    assert identities(await watch(recreated(first), auth_server, polls=2)) == ['"v1"']


@pytest.mark.parametrize("etag", [True, False], ids=["etag-304", "identity-marks"])
async def test_with_redis_a_restarted_triggerer_does_not_fire_again(
    redis_conn_id: str, auth_server: LocalAuthorizationServer, redis_connection: RedisServer, etag: bool
) -> None:
    auth_server.exports.update(EXPORT, status="ready", etag=etag)
    first = event_trigger(redis_conn_id, identity_path="version")
    assert identities(await watch(first, auth_server, polls=2)) == (['"v1"'] if etag else ["1"])
    forget_process_marks()  # the triggerer process restarted: only Redis remembers
    changes = {2: lambda: auth_server.exports.update(EXPORT, day="next")}
    events = await watch(recreated(first), auth_server, polls=4, changes=changes)
    assert identities(events) == (['"v2"'] if etag else ["2"])

    client = redis_connection.client()
    marks = sorted(key.decode() for key in client.keys("jwt_bearer:*:mark"))
    assert len(marks) == (3 if etag else 2)  # the two fired identities (and the last ETag)
    for key in marks:
        assert 0 < client.pttl(key) <= 7 * 86400 * 1000
        assert EXPORT.encode() not in key.encode()
    assert len(auth_server.token_requests) == 1  # one token for both triggers: the shared cache


async def test_with_a_file_store_a_restarted_triggerer_does_not_fire_again(
    make_conn: Callable[..., str], auth_server: LocalAuthorizationServer, tmp_path: Path
) -> None:
    from airflow_jwt_provider.tokens.stores.base import forget_token_stores

    forget_token_stores()
    cache_dir = tmp_path / "cache"
    conn_id = make_conn("jwt_events_file", token_cache="file", token_cache_dir=str(cache_dir))
    auth_server.exports.update(EXPORT, status="ready")
    first = event_trigger(conn_id, state_ttl=3600)
    assert identities(await watch(first, auth_server, polls=2)) == ['"v1"']
    forget_process_marks()
    assert await watch(recreated(first), auth_server, polls=2) == []
    assert len(list(cache_dir.glob("*.mark"))) == 2  # the fired identity and the ETag
    forget_token_stores()


# -------------------------------------------------------------------------- failures


async def test_failures_are_bounded_reported_once_and_watching_goes_on(
    conn_id: str, auth_server: LocalAuthorizationServer, trigger_log: pytest.LogCaptureFixture
) -> None:
    auth_server.exports.update(EXPORT, status="ready")
    auth_server.fail_next(f"exports/{EXPORT}", 503, count=5)
    events = await watch(event_trigger(conn_id, max_consecutive_failures=3), auth_server, polls=6)

    assert [e["status"] for e in events] == ["error", "changed"]
    error = events[0]
    assert error["consecutive_failures"] == 3
    assert error["error_type"] == "WatchPollError"
    assert "HTTP 503" in error["message"]
    failures = [r.getMessage() for r in trigger_log.records if "poll failed" in r.getMessage()]
    assert len(failures) == 5
    assert "(1 in a row, max_consecutive_failures 3): WatchPollError: HTTP 503" in failures[0]


async def test_a_refused_token_request_is_a_failure_named_in_the_log(
    conn_id: str, auth_server: LocalAuthorizationServer, trigger_log: pytest.LogCaptureFixture
) -> None:
    auth_server.exports.update(EXPORT, status="ready")
    auth_server.fail_next("/oauth2/token", 400, count=1000)
    trigger = event_trigger(conn_id, max_consecutive_failures=2)
    event = await asyncio.wait_for(anext(trigger.run()), 30)  # the second failed poll: the error event

    assert event.payload["status"] == "error"
    assert event.payload["error_type"] == "TokenEndpointError"
    assert export_requests(auth_server) == []  # no token, no API call
    failures = [r.getMessage() for r in trigger_log.records if "poll failed" in r.getMessage()]
    assert len(failures) == 2
    assert all("TokenEndpointError" in line and "HTTP 400" in line for line in failures), failures


async def test_an_unimportable_condition_is_a_failure_naming_the_argument(
    conn_id: str, auth_server: LocalAuthorizationServer, trigger_log: pytest.LogCaptureFixture
) -> None:
    auth_server.exports.update(EXPORT, status="ready")
    trigger = event_trigger(conn_id, condition="tests.triggers.conditions.no_such_function", max_consecutive_failures=1)
    event = await asyncio.wait_for(anext(trigger.run()), 30)
    assert event.payload["status"] == "error"
    assert event.payload["error_type"] == "JwtBearerConfigError"
    assert "condition 'tests.triggers.conditions.no_such_function' cannot be imported" in event.payload["message"]
    assert export_requests(auth_server) == []  # nothing polled with a condition that cannot be evaluated


@pytest.mark.parametrize(
    ("kwargs", "field", "message"),
    [
        ({"condition": "not a path"}, "condition", "condition 'not a path' is not a dotted import path"),
        ({"condition": {"path": "status"}}, "condition", "give exactly one of equals and present"),
        ({"condition": {"path": "status", "equal": "ready"}}, "condition", "unknown key(s) equal"),
        ({"condition": {"path": "x", "present": "yes"}}, "condition", "present must be true or false"),
        ({"condition": 42}, "condition", "condition must be a function"),
        ({"condition": lambda response: True}, "condition", "condition '<lambda>' cannot run in the triggerer"),
        ({"poll_interval": 0}, "poll_interval", "poll_interval must be a number more than 0"),
        ({"jitter": 1.5}, "jitter", "jitter must be a number at least 0 and less than 1"),
        ({"max_consecutive_failures": 0}, "max_consecutive_failures", "max_consecutive_failures must be at least 1"),
        ({"state_ttl": 1, "poll_interval": 60}, "state_ttl", "state_ttl must be a number more than 60"),
    ],
)
def test_bad_arguments_are_refused_naming_the_argument(kwargs: dict[str, Any], field: str, message: str) -> None:
    with pytest.raises(JwtBearerConfigError) as raised:
        JwtBearerHttpEventTrigger("c", "exports/x", **kwargs)
    assert message in str(raised.value)
    assert raised.value.field == field


# -------------------------------------------------------------------------- secrets


async def test_nothing_secret_in_the_serialized_trigger_the_events_or_the_log(
    conn_id: str, auth_server: LocalAuthorizationServer, trigger_log: pytest.LogCaptureFixture
) -> None:
    auth_server.careless = True
    auth_server.keep_credentials = True
    auth_server.exports.update(EXPORT, status="ready")
    auth_server.fail_next(f"exports/{EXPORT}", 500, count=2)
    trigger = event_trigger(conn_id, max_consecutive_failures=1, subject="bob", claims={"tenant": "t1"})
    events = await watch(trigger, auth_server, polls=4)
    assert [e["status"] for e in events] == ["error", "changed"]

    token = JwtBearerHook(conn_id).get_token(subject="bob", claims={"tenant": "t1"}).access_token
    secrets = [token, CLIENT_SECRET, STORE_PASSWORD, *auth_server.received_credentials]
    assert len(secrets) >= 4
    texts = {
        "serialized": repr(trigger.serialize()) + repr(serialize(trigger.serialize()[1])),
        "events": json.dumps(events),
        "log": trigger_log.text,
    }
    for where, text in texts.items():
        for secret in secrets:
            assert secret not in text, f"a secret in the {where}"
        assert "eyJ" not in text, f"a JWT in the {where}"
    assert set(trigger.serialize()[1]) == {
        "jwt_bearer_conn_id", "endpoint", "condition", "identity_path", "query", "headers", "subject", "scope",
        "claims", "waiting_statuses", "poll_interval", "jitter", "max_consecutive_failures", "retry", "state_ttl",
    }  # fmt: skip


def test_the_trigger_is_an_event_trigger_an_asset_watcher_takes() -> None:
    from airflow.sdk import Asset, AssetWatcher

    trigger = JwtBearerHttpEventTrigger("c", "exports/x", condition=READY)
    asset = Asset("vendor_export", watchers=[AssetWatcher(name="vendor_export_watcher", trigger=trigger)])
    assert asset.watchers[0].trigger is trigger
    assert JwtBearerHttpEventTrigger.hash(*trigger.serialize()) == JwtBearerHttpEventTrigger.hash(
        *recreated(trigger).serialize()
    )


def test_the_watch_key_covers_what_is_watched_not_how_often() -> None:
    """Tuning the polling in the DAG file keeps the marks; watching something else does not share them."""
    base = JwtBearerHttpEventTrigger("c", "exports/x", condition=READY)
    tuned = JwtBearerHttpEventTrigger(
        "c", "exports/x", condition=READY, poll_interval=5, jitter=0.3, max_consecutive_failures=9, retry=False
    )
    assert tuned.watch_key == base.watch_key
    for other in (
        JwtBearerHttpEventTrigger("c", "exports/y", condition=READY),
        JwtBearerHttpEventTrigger("other", "exports/x", condition=READY),
        JwtBearerHttpEventTrigger("c", "exports/x", condition={"path": "status", "equals": "done"}),
        JwtBearerHttpEventTrigger("c", "exports/x", condition=READY, subject="bob"),
        JwtBearerHttpEventTrigger("c", "exports/x", condition=READY, identity_path="cursor"),
    ):
        assert other.watch_key != base.watch_key, other.serialize()
