"""The canary scan: no secret of any kind leaves the provider, wherever one could end up.

Distinctive values serve as store password, key password, client secret and inline key
(a JKS keystore, base64, in ``private_key``). The authorization server is careless: it
repeats the client secret and the assertion in its error answers, and its API repeats the
``Authorization`` header. A DAG exercises the hook, the session, the operator (sync and
deferrable), the sensor (both modes), ``test_connection`` and the main error paths, at DEBUG
level, in a fresh process. Then every place a secret could end up is searched — the process
output (the task logs), XCom, rendered fields, the trigger's serialized form, exception texts
and reprs with their chained causes — for each canary, for every assertion and client secret
the server received and for every access token it issued. Zero hits.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import traceback
from pathlib import Path
from typing import Any

import pytest

from airflow_jwt_provider.exceptions import JwtBearerError
from airflow_jwt_provider.hooks.jwt_bearer import JwtBearerHook
from devserver import keystores as ks
from tests.conftest import CLIENT_ID, REPO_ROOT

pytestmark = pytest.mark.slow

STORE_PASSWORD = "cAnArY-store-pass-91f2"
KEY_PASSWORD = "cAnArY-key-pass-4c7d"
CLIENT_SECRET = "cAnArY-client-secret-8e3b"
WRONG_SECRET = "cAnArY-wrong-secret-2a6f"
WRONG_PASSWORD = "cAnArY-wrong-store-5b1c"
CANARIES = [STORE_PASSWORD, KEY_PASSWORD, CLIENT_SECRET, WRONG_SECRET, WRONG_PASSWORD]

EXPECTED_STATES = {
    "hook_calls": "success",
    **{f"echo_{m}": "success" for m in ("sync", "deferred")},
    **{f"sensor_{m}": "success" for m in ("sync", "deferred")},
    **{f"echo_error_{m}": "failed" for m in ("sync", "deferred")},
    **{f"refused_token_{m}": "failed" for m in ("sync", "deferred")},
    **{f"wrong_store_password_{m}": "failed" for m in ("sync", "deferred")},
}


def _connections(server: Any, inline_key: str) -> dict[str, str]:
    def conn(**changes: Any) -> str:
        extra = {
            "auth_url": server.token_url,
            "private_key": inline_key,
            "keystore_password": STORE_PASSWORD,
            "key_password": KEY_PASSWORD,
            "subject": "alice",
        }
        extra.update(changes.pop("extra", {}))
        fields = {
            "conn_type": "jwt_bearer",
            "host": server.api_url,
            "login": CLIENT_ID,
            "password": CLIENT_SECRET,
            "extra": extra,
        }
        fields.update(changes)
        return json.dumps(fields)

    return {
        "AIRFLOW_CONN_JWT_BEARER_DEFAULT": conn(),
        "AIRFLOW_CONN_JWT_CANARY_WRONG_SECRET": conn(password=WRONG_SECRET),
        "AIRFLOW_CONN_JWT_CANARY_WRONG_PASSWORD": conn(extra={"keystore_password": WRONG_PASSWORD}),
    }


@pytest.fixture
def canary_world(auth_server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, str, dict[str, str]]:
    store = ks.make_keystore(
        tmp_path, "canary", store_type="jks", store_password=STORE_PASSWORD, key_password=KEY_PASSWORD
    )
    auth_server.register_client(CLIENT_ID, certificate_pem=store.certificate_pem, client_secret=CLIENT_SECRET)
    auth_server.careless = True
    auth_server.keep_credentials = True
    auth_server.job_ready_after = 2
    inline_key = base64.b64encode(store.path.read_bytes()).decode("ascii")
    connections = _connections(auth_server, inline_key)
    for name, value in connections.items():
        monkeypatch.setenv(name, value)
    return auth_server, inline_key, connections


def _secrets(server: Any, inline_key: str) -> list[str]:
    chunks = [inline_key[i : i + 40] for i in range(0, len(inline_key) - 40, 40)]
    received = list(server.received_credentials)
    issued = server.issued_tokens()
    assert received, "the server received no credential: the run did not reach it"
    assert issued, "the server issued no token"
    return [*CANARIES, inline_key, *chunks, *received, *issued]


def _hits(text: str, secrets: list[str]) -> list[str]:
    return [
        f"{secret[:6]}… at {text.index(secret)}: {text[max(0, text.index(secret) - 80) : text.index(secret)]!r}"
        for secret in secrets
        if secret in text
    ]


def _provider_lines(output: str) -> str:
    """The output without Airflow's own DEBUG lines about secrets it is told to mask.

    At DEBUG level the in-process supervisor of ``dag.test()`` logs the content of each
    mask-secret message it passes on (a deployed worker does not); those lines are Airflow's,
    not the provider's, and hold the stable secrets the provider registered on purpose.
    """
    return "\n".join(line for line in output.splitlines() if "MaskSecret" not in line)


def test_no_secret_anywhere_after_a_run_at_debug_level(
    canary_world: Any, airflow_db: Path, dags_folder: Path, tmp_path: Path
) -> None:
    server, inline_key, connections = canary_world
    out = tmp_path / "result.json"
    env = {**os.environ, **connections, "AIRFLOW__LOGGING__LOGGING_LEVEL": "DEBUG"}
    run = subprocess.run(
        [sys.executable, "-m", "tests.e2e.dag_runner", "jwt_e2e_canary", str(out)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    output = run.stdout + run.stderr
    Path(os.environ.get("JWT_CANARY_OUTPUT", "/dev/null")).write_text(output)
    assert run.returncode == 0, output[-4000:]
    result = json.loads(out.read_text())
    assert result["states"] == EXPECTED_STATES, output[-4000:]

    secrets = _secrets(server, inline_key)
    assert not _hits(_provider_lines(output), secrets)
    assert not _hits(json.dumps(result["xcoms"]), secrets)
    assert not _hits(json.dumps(result["rendered"]), secrets)

    # the paths really ran, and said what went wrong
    user_line = next(line for line in output.splitlines() if "user code logs the token" in line)
    assert "user code logs the token *** and an assertion " in user_line  # the assertion: eyJ*** or ***
    assert "Authorization: Bearer ***" in output
    assert "refused the request: HTTP 401 invalid_client" in output
    assert "received: ***" in output  # the server's echo of the secret, blanked
    assert "keystore_password is wrong" in output
    assert f"GET {server.api_url}/echo-authorization failed: HTTP 400" in output
    assert f"{server.api_url}/echo-authorization answered HTTP 200" in output  # log_response
    hook_result = dict((tuple(k), v) for k, v in result["xcoms"])[("hook_calls", -1)]
    assert hook_result["test"][0] is True
    assert hook_result["token"].startswith("AccessToken(token_type='Bearer'")
    echoed = dict((tuple(k), v) for k, v in result["xcoms"])[("echo_sync", -1)]
    assert echoed["you_sent"] == "Bearer ***"  # the API repeated the token; XCom holds no token


def test_no_secret_in_errors_reprs_or_the_serialized_trigger(canary_world: Any) -> None:
    from airflow.sdk.exceptions import TaskDeferred

    from airflow_jwt_provider.operators.http import JwtBearerHttpOperator
    from airflow_jwt_provider.sensors.http import JwtBearerHttpSensor

    server, inline_key, _ = canary_world
    texts: list[str] = []
    hook = JwtBearerHook()
    token = hook.get_token(subject="dave", claims={"roles": ["x"]})
    session = hook.get_conn()
    texts += [repr(o) for o in (hook.settings, hook.settings.http, hook.credentials, hook.signer, token, session.auth)]
    texts.append(str(token))
    texts.append(repr(hook.get_conn()))
    ok, message = hook.test_connection()
    assert ok
    texts.append(message)
    for conn_id in ("jwt_canary_wrong_secret", "jwt_canary_wrong_password"):
        with pytest.raises(JwtBearerError) as info:
            JwtBearerHook(conn_id).get_token()
        texts.append("".join(traceback.format_exception(info.value)))  # with chained causes and contexts
        texts.append(repr(info.value))
        ok, message = JwtBearerHook(conn_id).test_connection()
        assert not ok
        texts.append(message)
    with pytest.raises(JwtBearerError) as info:
        hook.run("echo-authorization", params={"status": 500})
    texts.append("".join(traceback.format_exception(info.value)))
    for operator in (
        JwtBearerHttpOperator(task_id="t", endpoint="items", subject="erin", deferrable=True),
        JwtBearerHttpSensor(task_id="s", endpoint="jobs/x", expected_json={"state": "done"}, deferrable=True),
    ):
        with pytest.raises(TaskDeferred) as deferred:
            operator.execute({})  # type: ignore[arg-type]
        texts.append(json.dumps(deferred.value.trigger.serialize()))

    secrets = _secrets(server, inline_key)
    everything = "\n".join(texts)
    assert "The token endpoint" in everything  # the errors were captured
    assert not _hits(everything, secrets)
