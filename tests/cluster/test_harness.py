"""The harness's mapping of docker-compose.yaml to this machine (no process is started here)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.cluster.harness import CONN_VAR, CONTAINER_PORTS, REPO_ROOT, Cluster, ClusterError
from tests.compose import environment

AIRFLOW_SERVICES = ["airflow-init", "airflow-apiserver", "airflow-scheduler", "airflow-dag-processor"]
AIRFLOW_SERVICES += ["airflow-triggerer", "airflow-worker"]


@pytest.fixture
def cluster(tmp_path: Path) -> Cluster:
    return Cluster(
        tmp_path,
        connection_extra={"token_cache_url": "redis://redis:6379/1"},
        extra_connections={"jwt_bearer_memory": {"token_cache": "memory"}},
    )


@pytest.mark.parametrize("service", AIRFLOW_SERVICES)
def test_no_container_host_or_path_is_left(cluster: Cluster, service: str) -> None:
    env = cluster.service_env(service)
    compose_hosts = re.compile(rf"(//|@)({'|'.join(map(re.escape, CONTAINER_PORTS))})\b")
    for name in environment(cluster.services[service]):
        value = env[name]
        assert not compose_hosts.search(value), f"{name} still names a compose service: {value}"
        assert not re.search(r"(?<![\w./-])/opt/", value), f"{name} still names a path of the image: {value}"
    assert env["AIRFLOW_HOME"] == str(cluster.image_root / "opt" / "airflow")


def test_urls_point_at_the_chosen_ports(cluster: Cluster) -> None:
    env = cluster.service_env("airflow-worker")
    assert env["AIRFLOW__CELERY__BROKER_URL"] == f"redis://:@127.0.0.1:{cluster.ports['redis']}/0"
    assert f"@127.0.0.1:{cluster.ports['postgres']}/airflow" in env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    api = cluster.ports["airflow-apiserver"]
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == f"http://127.0.0.1:{api}/execution/"
    extra = json.loads(env[CONN_VAR])["extra"]
    assert extra["auth_url"] == f"http://127.0.0.1:{cluster.ports['authserver']}/oauth2/token"
    assert extra["key_file"] == str(cluster.image_root / "opt/airflow/keys/demo.p12")
    assert extra["token_cache_url"] == f"redis://127.0.0.1:{cluster.ports['redis']}/1"  # added extras are mapped too
    assert env["AIRFLOW_CONN_JWT_TOKEN_CACHE"] == f"redis://127.0.0.1:{cluster.ports['redis']}"  # the token cache


def test_extra_connections_copy_the_compose_connection(cluster: Cluster) -> None:
    for service in ("airflow-worker", "airflow-triggerer", "airflow-apiserver"):
        env = cluster.service_env(service)
        default, memory = json.loads(env[CONN_VAR]), json.loads(env["AIRFLOW_CONN_JWT_BEARER_MEMORY"])
        compose_extra = {k: v for k, v in default["extra"].items() if k != "token_cache_url"}  # the fixture's own
        assert memory["extra"] == {**compose_extra, "token_cache": "memory"}
        assert {k: v for k, v in memory.items() if k != "extra"} == {k: v for k, v in default.items() if k != "extra"}


def test_commands_run_from_the_repository(cluster: Cluster) -> None:
    assert cluster.service_argv("airflow-init")[1] == str(REPO_ROOT / "docker" / "airflow-init.sh")
    assert cluster.service_argv("airflow-worker")[1:] == ["celery", "worker"]
    assert cluster.compose_env("authserver")["PYTHONPATH"] == str(REPO_ROOT)


def test_an_unknown_host_or_port_is_refused(cluster: Cluster) -> None:
    with pytest.raises(ClusterError, match=r"'elsewhere'.*not a service"):
        cluster.localize("http://elsewhere:8080/api", "X")
    with pytest.raises(ClusterError, match="redis listens on 6379, not 6380"):
        cluster.localize("redis://redis:6380/0", "X")
    assert cluster.localize("http://localhost:8080/health", "X") == "http://localhost:8080/health"
