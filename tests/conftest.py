"""Shared fixtures: an isolated Airflow home, keytool-made keystores, the local authorization server.

Airflow reads its configuration at import time, so the environment is set here, before any
test module imports Airflow. Every run gets its own ``AIRFLOW_HOME`` (SQLite) in a temporary
folder; nothing from the developer's own Airflow is touched.
"""

from __future__ import annotations

import base64
import concurrent.futures
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="jwt-provider-airflow-"))
DAGS_FOLDER = AIRFLOW_HOME / "dags"
DAGS_FOLDER.mkdir()

os.environ["AIRFLOW_HOME"] = str(AIRFLOW_HOME)
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(DAGS_FOLDER)
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__UNIT_TEST_MODE"] = "True"
os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{AIRFLOW_HOME / 'airflow.db'}"
# One Fernet key for every process of the run: the DAG runner subprocesses share this database, and a trigger's
# kwargs (an asset watcher's, stored when a DAG file is parsed) encrypted by one must decrypt in the next.
os.environ["AIRFLOW__CORE__FERNET_KEY"] = base64.urlsafe_b64encode(os.urandom(32)).decode("ascii")
os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "INFO")

from devserver import hsm, kms  # noqa: E402 (after the environment is set)
from devserver import keystores as ks  # noqa: E402
from devserver.platform import LocalPlatform  # noqa: E402
from devserver.server import LocalAuthorizationServer  # noqa: E402

if TYPE_CHECKING:
    from airflow_jwt_provider.tokens.credentials import JwtBearerCredentials
    from tests.redis_server import RedisServer

CLIENT_ID = "test-client"
CLIENT_SECRET = "s3cr3t-client-secret-value"
STORE_PASSWORD = "store-pass-123"
KEY_PASSWORD = "key-pass-456"


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    shutil.rmtree(AIRFLOW_HOME, ignore_errors=True)


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """A migrated SQLite metadata database (needed by ``dag.test()``)."""
    subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"],
        check=True,
        capture_output=True,
        env=os.environ.copy(),
        timeout=300,
    )
    return AIRFLOW_HOME


@pytest.fixture(scope="session")
def keystore_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("keystores")


@pytest.fixture(scope="session")
def keystores(keystore_dir: Path) -> dict[str, ks.Keystore]:
    """Keystores made by keytool at test time (certificates expire: nothing is committed)."""
    if not ks.have_keytool():
        pytest.fail("keytool is required by the tests: install a JRE (Debian: default-jre-headless)")
    d = keystore_dir
    makers: dict[str, Callable[[], ks.Keystore]] = {
        # keytool's default store type (PKCS#12 on Java 9+), in a file named .jks on purpose
        "default": lambda: ks.make_keystore(d, "default", store_password=STORE_PASSWORD, alias="Signing"),
        "jks": lambda: ks.make_keystore(
            d, "rsa-jks", store_type="jks", store_password=STORE_PASSWORD, key_password=KEY_PASSWORD
        ),
        "jceks": lambda: ks.make_keystore(
            d,
            "ec-jceks",
            store_type="jceks",
            key_algorithm="EC",
            curve="secp384r1",
            store_password=STORE_PASSWORD,
            key_password=KEY_PASSWORD,
        ),
        "pkcs12_multi": lambda: ks.make_keystore(
            d,
            "multi",
            store_type="pkcs12",
            store_password=STORE_PASSWORD,
            alias="Primary",
            extra_aliases=("secondary",),
        ),
        "ec256": lambda: ks.make_keystore(
            d, "ec256", store_type="pkcs12", key_algorithm="EC", curve="secp256r1", store_password=STORE_PASSWORD
        ),
        "ec521": lambda: ks.make_keystore(
            d, "ec521", store_type="pkcs12", key_algorithm="EC", curve="secp521r1", store_password=STORE_PASSWORD
        ),
        "ed25519": lambda: ks.make_keystore(
            d, "ed25519", store_type="pkcs12", key_algorithm="Ed25519", store_password=STORE_PASSWORD
        ),
        "pem_pkcs8": lambda: ks.make_pem_key(d, "pkcs8", key_algorithm="RSA"),
        "pem_pkcs1_encrypted": lambda: ks.make_pem_key(
            d, "pkcs1enc", key_algorithm="RSA", pkcs1=True, passphrase=STORE_PASSWORD
        ),
        "pem_ec_encrypted": lambda: ks.make_pem_key(
            d, "ecenc", key_algorithm="EC", curve="secp256r1", passphrase=STORE_PASSWORD
        ),
    }
    # Each keytool run is a JVM of its own (~1 s): one per core at a time.
    with concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        futures = {name: pool.submit(make) for name, make in makers.items()}
        return {name: future.result() for name, future in futures.items()}


@pytest.fixture(scope="session")
def auth_server_session(keystores: dict[str, ks.Keystore]) -> Iterator[LocalAuthorizationServer]:
    server = LocalAuthorizationServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def auth_server(auth_server_session: LocalAuthorizationServer) -> Iterator[LocalAuthorizationServer]:
    """The running server with fresh records and knobs, and an empty token cache."""
    from airflow_jwt_provider.tokens.cache import TOKEN_CACHE

    auth_server_session.reset()
    TOKEN_CACHE.invalidate()
    yield auth_server_session
    auth_server_session.reset()
    auth_server_session.federation.clear()  # trust is per test: a rule left behind would admit the next test's JWT
    auth_server_session.impersonation.clear()
    TOKEN_CACHE.invalidate()


@pytest.fixture(scope="session")
def platform_session() -> Iterator[LocalPlatform]:
    with LocalPlatform() as platform:
        yield platform


@pytest.fixture
def platform(platform_session: LocalPlatform) -> Iterator[LocalPlatform]:
    """A workload platform on loopback (OIDC issuer, token files, GitHub, GCP metadata, AWS STS), records cleared."""
    platform_session.reset()
    yield platform_session
    platform_session.reset()


def register(server: LocalAuthorizationServer, store: ks.Keystore, client_id: str = CLIENT_ID, **kwargs: Any) -> None:
    """Register ``store``'s certificate with ``server`` for ``client_id``."""
    server.register_client(client_id, certificate_pem=store.certificate_pem, **kwargs)


def connection_extra(store: ks.Keystore, server: LocalAuthorizationServer, **extra: Any) -> dict[str, Any]:
    """The extras of a connection that signs with ``store`` against ``server``."""
    values: dict[str, Any] = {"auth_url": server.token_url, "key_file": str(store.path), "subject": "alice"}
    if store.store_password is not None:
        values["keystore_password"] = store.store_password
    if store.key_password is not None:
        values["key_password"] = store.key_password
    values.update(extra)
    return {k: v for k, v in values.items() if v is not None}


def pkcs11_extra(
    token: Any, server: LocalAuthorizationServer, label: str = "rsa-signing", **extra: Any
) -> dict[str, Any]:
    """The extras of a connection that signs with key ``label`` of the SoftHSM2 ``token`` against ``server``."""
    values: dict[str, Any] = {
        "auth_url": server.token_url,
        "subject": "alice",
        "signer": "pkcs11",
        "pkcs11_module": token.module_path,
        "pkcs11_token_label": token.token_label,
        "keystore_password": token.user_pin,
        "key_alias": label,
    }
    values.update(extra)
    return {k: v for k, v in values.items() if v is not None}


def kms_extra(kms_key: str, aws_conn_id: str, server: LocalAuthorizationServer, **extra: Any) -> dict[str, Any]:
    """The extras of a connection that signs with KMS key ``kms_key`` (through ``aws_conn_id``) against ``server``."""
    values: dict[str, Any] = {
        "auth_url": server.token_url,
        "subject": "alice",
        "signer": "aws_kms",
        "aws_conn_id": aws_conn_id,
        "key_alias": kms_key,
    }
    values.update(extra)
    return {k: v for k, v in values.items() if v is not None}


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A real redis-server on a free loopback port, for the whole run."""
    from tests.redis_server import RedisServer

    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


#: The Airflow ``redis`` connection the shared token cache tests point ``token_cache_conn_id`` at.
REDIS_CONN_ID = "jwt_token_cache"


@pytest.fixture
def redis_connection(redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[RedisServer]:
    """``redis_server`` emptied, as the Airflow ``redis`` connection :data:`REDIS_CONN_ID`; stores forgotten."""
    from airflow_jwt_provider.tokens.shared_cache import reset_store_health
    from airflow_jwt_provider.tokens.stores.base import forget_token_stores

    redis_server.client().flushall()
    monkeypatch.setenv(f"AIRFLOW_CONN_{REDIS_CONN_ID.upper()}", f"{redis_server.url}?db=0")
    forget_token_stores()
    reset_store_health()
    yield redis_server
    forget_token_stores()
    reset_store_health()


@pytest.fixture
def set_connection(monkeypatch: pytest.MonkeyPatch) -> Callable[..., str]:
    """Define a connection as an ``AIRFLOW_CONN_…`` JSON environment variable; returns its id."""

    def define(conn_id: str = "jwt_test", *, uri: str | None = None, **fields: Any) -> str:
        fields.setdefault("conn_type", "jwt_bearer")
        value = uri if uri is not None else json.dumps(fields)
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", value)
        return conn_id

    return define


class RecordingServer:
    """A plain HTTP server on another loopback address, standing for a host the token must not reach.

    It answers every request with a small JSON document (shaped like the local API's pages and
    jobs, so callers get as far as they would with a real answer) and records each request's
    method, path and headers, so a test can say whether it saw the request, and the token.
    """

    def __init__(self, host: str = "127.0.0.2") -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.requests: list[dict[str, Any]] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                recorder.requests.append({"method": self.command, "path": self.path, "headers": dict(self.headers)})
                body = json.dumps({"items": [], "next_page": None, "state": "done", "sub": "untrusted"}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PUT = do_DELETE = _answer

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._httpd = ThreadingHTTPServer((host, 0), Handler)
        self._httpd.daemon_threads = True
        self.url = f"http://{host}:{self._httpd.server_port}"
        self.host_port = f"{host}:{self._httpd.server_port}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        self._thread.start()

    def authorizations(self) -> list[str | None]:
        return [r["headers"].get("Authorization") for r in self.requests]

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


@pytest.fixture
def untrusted_server() -> Iterator[RecordingServer]:
    """A recording server on 127.0.0.2: another host than the API (127.0.0.1)."""
    server = RecordingServer()
    yield server
    server.stop()


#: An audience the server accepts besides its token URL for clients registered by ``credentials_for``.
OTHER_AUDIENCE = "https://api.example.com/"
CredentialsFactory = Callable[..., "JwtBearerCredentials"]


@pytest.fixture
def credentials_for(auth_server: LocalAuthorizationServer, keystores: dict[str, ks.Keystore]) -> CredentialsFactory:
    """Credentials of a connection signing with ``keystores[name]`` (registered with the server).

    Each test gets a fresh token cache, shared by every credentials object it builds (as
    hooks of one process share theirs), so that what is reused is decided by the cache key.
    """
    from airflow.sdk import Connection

    from airflow_jwt_provider.connection.parser import parse_connection
    from airflow_jwt_provider.tokens.cache import TokenCache
    from airflow_jwt_provider.tokens.credentials import JwtBearerCredentials

    cache = TokenCache()

    def make(
        name: str = "default",
        *,
        host: str | None = "api",
        login: str = CLIENT_ID,
        register_key: bool = True,
        **extra: Any,
    ) -> JwtBearerCredentials:
        store = keystores[name]
        if register_key:
            register(auth_server, store, extra_audiences=(OTHER_AUDIENCE,))
        conn = Connection(
            conn_id="jwt_credentials",
            conn_type="jwt_bearer",
            login=login,
            host=auth_server.api_url if host == "api" else host,
            extra=json.dumps(connection_extra(store, auth_server, **extra)),
        )
        return JwtBearerCredentials.from_settings(parse_connection(conn), cache=cache)

    return make


# --- device signers: a real SoftHSM2 token and a moto KMS server, made per run ----------------------


@pytest.fixture(scope="session")
def softhsm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[hsm.SoftHsm]:
    """A SoftHSM2 token with RSA-2048, EC P-256/P-384 keys generated inside it (non-extractable).

    ``SOFTHSM2_CONF`` is set for the whole test process: SoftHSM2 reads it once, when the
    library is first initialised, so every test in the process shares this one token.
    """
    if not hsm.have_softhsm():
        pytest.fail("SoftHSM2 is required by the PKCS#11 tests: run scripts/install-system-deps (Debian: softhsm2)")
    token = hsm.create_softhsm(tmp_path_factory.mktemp("softhsm"))
    yield token
    from airflow_jwt_provider.signing.signers.pkcs11._sessions import close_sessions

    close_sessions()


@pytest.fixture(scope="session")
def kms_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[kms.KmsEmulator]:
    """moto's KMS server as a separate process on a free 127.0.0.1 port, for the whole session."""
    # boto3 must never look for instance credentials (169.254.169.254) from a test run.
    os.environ["AWS_EC2_METADATA_DISABLED"] = "true"
    emulator = kms.start_kms_emulator(tmp_path_factory.mktemp("kms"))
    yield emulator
    emulator.stop()


@pytest.fixture(scope="session")
def kms_keys(kms_emulator: kms.KmsEmulator) -> dict[str, dict[str, Any]]:
    """SIGN_VERIFY keys created with boto3 (public keys read back independently of the signer)."""
    client = kms_emulator.client()
    return {
        "rsa": kms.create_signing_key(client, "RSA_2048", alias="alias/jwt-signing-rsa"),
        "ec": kms.create_signing_key(client, "ECC_NIST_P256", alias="alias/jwt-signing-ec"),
        "ec384": kms.create_signing_key(client, "ECC_NIST_P384"),
    }


@pytest.fixture
def aws_conn_id(kms_emulator: kms.KmsEmulator, monkeypatch: pytest.MonkeyPatch) -> str:
    """An Airflow ``aws`` connection (``AIRFLOW_CONN_…``) with the emulator's endpoint_url and dummy keys."""
    monkeypatch.setenv("AIRFLOW_CONN_KMS_TEST", kms_emulator.connection())
    return "kms_test"
