"""The connection form and its Test button, in a real browser against a real Airflow api-server.

What the unit tests cannot show: that the Airflow 3.3 UI renders the provider's declarative
``conn-fields`` / ``ui-field-behaviour`` as intended, that what the form saves is what the
provider parses, and that the Test button reaches ``JwtBearerHook.test_connection()`` and shows
its message. An ``airflow api-server`` runs as a subprocess on the isolated ``AIRFLOW_HOME`` of
``tests/conftest.py``; headless Debian Chromium (``/usr/bin/chromium``, see
``scripts/install-system-deps``) is driven with Playwright; the connections point at the local
authorization server of ``devserver/``.

Facts of Airflow 3.3.2 these tests rely on (see also the shared notes):

* the Add/Edit dialog has three accordion sections ("Standard Fields", "Extra Fields",
  "Extra Fields JSON") of which one is open at a time; extra inputs are named ``element_<key>``;
* the only Test button is in the connection list; it posts the row's values with
  ``port: Number(port)``, i.e. ``0`` for an empty port, which the API refuses with 400 unless the
  stored connection has a port. The connections here store one (the provider accepts host+port).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from playwright.sync_api import Browser, BrowserContext, Locator, Page, expect, sync_playwright

from airflow_jwt_provider.connection.parser import parse_connection
from airflow_jwt_provider.get_provider_info import conn_fields, get_provider_info
from airflow_jwt_provider.signing.signers.local import LocalSignerSettings
from devserver.keystores import Keystore
from devserver.server import LocalAuthorizationServer
from tests.conftest import CLIENT_ID, STORE_PASSWORD, connection_extra, register

pytestmark = pytest.mark.browser

CONN_FIELDS = conn_fields()
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",  # we run as root in CI containers
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
HOOK_NAME = "JWT Bearer (OAuth 2.0 RFC 7523)"
API_SERVER_START_TIMEOUT_S = 60
UI_TIMEOUT_MS = 15_000
# The documentation shows these pictures (docs/connection.md): every run of the browser tests takes
# them again, so a change of the form shows up as a changed, committed picture. The docs build
# does not need them (a note stands in for a missing one).
#: Where each run leaves its screenshots (git-ignored: the port in them changes per run); the docs show these when
#: present, else the committed ones in docs/_static/screenshots/ (copy them there to update the pictures).
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "_generated" / "screenshots"
SCREENSHOT = SCREENSHOTS / "connection-form.png"
SCREENSHOT_STANDARD = SCREENSHOTS / "connection-form-standard.png"
SCREENSHOT_TEST_BUTTON = SCREENSHOTS / "test-button.png"
SECRET_KEYS = ("private_key", "keystore_password", "key_password")
WRONG_STORE_PASSWORD = "wrong-store-pass-789"
# one worker and no execution API: all the UI needs, and a faster start
API_SERVER_COMMAND = (
    sys.executable,
    "-m",
    "airflow",
    "api-server",
    "--host",
    "127.0.0.1",
    "--workers",
    "1",
    "--apps",
    "core",
)
FIELD_ROOT = 'div[data-part="root"][id^="field::"]'


def _connection_type() -> dict[str, Any]:
    (conn_type,) = get_provider_info()["connection-types"]
    return conn_type


# -- the api-server -----------------------------------------------------------------------------


@dataclass
class ApiServer:
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return "(no log)"

    def wait_ready(self, timeout: float = API_SERVER_START_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                pytest.fail(f"airflow api-server exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                if requests.get(f"{self.url}/api/v2/version", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"airflow api-server not ready after {timeout} s:\n{self.log_tail()}")
            time.sleep(0.2)  # polling a port: there is nothing to wait on

    def stop(self) -> None:
        """Stop the whole process group (uvicorn workers included); no leftovers."""
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=5)
            except ProcessLookupError:
                pass
        with contextlib.suppress(ProcessLookupError, PermissionError):  # children that outlived the leader
            os.killpg(self.process.pid, signal.SIGKILL)

    # REST helpers (SIMPLE_AUTH_MANAGER_ALL_ADMINS: no token needed)
    def get_connection(self, conn_id: str) -> dict[str, Any]:
        response = requests.get(f"{self.url}/api/v2/connections/{conn_id}", timeout=10)
        assert response.status_code == 200, response.text
        return response.json()

    def test_connection(self, body: dict[str, Any]) -> dict[str, Any]:
        fields = ("connection_id", "conn_type", "host", "port", "login", "password", "schema", "extra")
        response = requests.post(f"{self.url}/api/v2/connections/test", json={k: body[k] for k in fields}, timeout=30)
        assert response.status_code == 200, response.text
        return response.json()

    def create_connection(self, body: dict[str, Any]) -> None:
        response = requests.post(f"{self.url}/api/v2/connections", json=body, timeout=10)
        assert response.status_code == 201, response.text


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def _api_server_process(airflow_db: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    port = _free_port()
    log_path = tmp_path_factory.mktemp("api-server") / "api-server.log"
    env = os.environ.copy()
    env.update(
        AIRFLOW__CORE__TEST_CONNECTION="Enabled",
        AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS="True",
        PYTHONUNBUFFERED="1",
    )
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [*API_SERVER_COMMAND, "--port", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=log_path.parent,  # not the checkout: the server uses the installed provider
            start_new_session=True,  # own process group, killed as a whole
        )
    server = ApiServer(process, port, log_path)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def api_server(_api_server_process: ApiServer, keystores: dict[str, Keystore]) -> ApiServer:
    """The running api-server. ``keystores`` is listed so keytool runs while the server boots."""
    import airflow_jwt_provider.connection.settings  # noqa: F401 (imports Airflow: also done while it boots)

    _api_server_process.wait_ready()
    return _api_server_process


# -- the browser --------------------------------------------------------------------------------


@pytest.fixture(scope="session", autouse=True)
def _require_chromium() -> None:
    """Fail (never skip) without Chromium, before the slow fixtures (session scope sorts first)."""
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: the browser tests need Debian's Chromium. Install it with "
            "scripts/install-system-deps (apt-get install -y chromium); CI installs it.",
            pytrace=False,
        )


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="module")
def browser_context(browser: Browser) -> Iterator[BrowserContext]:
    """One context for the module, so the UI's JavaScript bundle is fetched once (HTTP cache)."""
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    context.set_default_timeout(UI_TIMEOUT_MS)
    try:
        yield context
    finally:
        context.close()


@pytest.fixture
def page(browser_context: BrowserContext) -> Iterator[Page]:
    page = browser_context.new_page()
    try:
        yield page
    finally:
        page.close()


# -- page helpers -------------------------------------------------------------------------------


def field(dialog: Locator, label: str) -> Locator:
    """The form row (Chakra field root) whose label reads ``label``."""
    return dialog.locator(FIELD_ROOT).filter(has=dialog.page.locator("label").get_by_text(label, exact=True))


def open_section(dialog: Locator, name: str) -> None:
    dialog.get_by_role("button", name=name, exact=True).click()


def open_add_form(page: Page, api_server: ApiServer) -> Locator:
    page.goto(f"{api_server.url}/connections")
    page.get_by_role("button", name="Add Connection").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_role("combobox", name="Connection Type").fill("JWT")
    option = page.get_by_role("option", name=HOOK_NAME, exact=True)
    expect(option).to_be_visible()
    option.click()
    expect(field(dialog, "API base URL")).to_be_visible()  # our type's standard fields are shown
    return dialog


def choose(dialog: Locator, label: str, value: str) -> None:
    """Pick ``value`` in the react-select drop-down of the row labelled ``label``."""
    field(dialog, label).get_by_role("combobox").click()
    dialog.page.get_by_role("option", name=value, exact=True).click()


def connection_row(page: Page, conn_id: str) -> Locator:
    return page.get_by_role("row").filter(has=page.get_by_role("cell", name=conn_id, exact=True))


def page_texts(page: Page) -> str:
    return page.locator("body").inner_text() + "\n" + page.content()


# -- tests --------------------------------------------------------------------------------------


def test_add_form_shows_the_jwt_bearer_fields(page: Page, api_server: ApiServer) -> None:
    page.set_viewport_size({"width": 1280, "height": 3600})  # the whole form in one screenshot
    dialog = open_add_form(page, api_server)  # offers and selects the type by its hook name
    expect(dialog).to_contain_text(HOOK_NAME)

    # Standard fields: relabelled, with the provider's placeholders; Schema hidden.
    behaviour = _connection_type()["ui-field-behaviour"]
    relabeled = {"host": "API base URL", "login": "Client ID", "password": "Client secret"}
    assert behaviour["relabeling"] == relabeled
    for name, label in relabeled.items():
        box = field(dialog, label).locator(f'input[name="{name}"]')
        expect(box).to_be_visible()
        expect(box).to_have_attribute("placeholder", behaviour["placeholders"][name])
    expect(dialog.locator('input[name="password"]')).to_have_attribute("type", "password")
    expect(dialog.locator('input[name="port"]')).to_be_visible()
    expect(dialog.locator('input[name="schema"]')).to_have_count(0)
    for default_label in ("Host", "Login", "Password", "Schema"):
        expect(field(dialog, default_label)).to_have_count(0)
    dialog.screenshot(path=str(SCREENSHOT_STANDARD), animations="disabled")

    # Extra fields: every declared field, with its label and description, secrets as password boxes.
    open_section(dialog, "Extra Fields")
    for label in ("Vendor preset", "Signer", "Token endpoint URL", "Key file path", "Keystore password / PIN"):
        expect(field(dialog, label)).to_be_visible()
    for key, spec in CONN_FIELDS.items():
        row = field(dialog, spec["label"])
        expect(row, f"{key}: no row labelled {spec['label']!r}").to_have_count(1)
        expect(row).to_be_visible()
        expect(row).to_contain_text(spec["description"])
    declared_secret = {key for key, spec in CONN_FIELDS.items() if spec["schema"].get("format") == "password"}
    assert set(SECRET_KEYS) <= declared_secret
    for key in CONN_FIELDS:
        box = dialog.locator(f'[name="element_{key}"]')
        if key in declared_secret:
            expect(box, f"{key} must be a password box").to_have_attribute("type", "password")
        elif box.count() == 1 and box.get_attribute("type") not in ("hidden", "checkbox"):
            assert box.get_attribute("type") != "password", f"{key} is not a secret but is masked"
    for key in ("auth_url", "key_file", "subject", "key_alias"):
        assert dialog.locator(f'input[name="element_{key}"]').get_attribute("type") in (None, "text")
    # enum fields are drop-downs offering the declared values
    choose(dialog, "Vendor preset", "box")
    expect(dialog.locator('input[name="element_preset"]')).to_have_value("box")
    dialog.screenshot(path=str(SCREENSHOT), animations="disabled")


def test_optional_drop_downs_do_not_show_null(page: Page, api_server: ApiServer) -> None:
    dialog = open_add_form(page, api_server)
    open_section(dialog, "Extra Fields")
    enums = [spec["label"] for spec in CONN_FIELDS.values() if "enum" in spec["schema"]]
    assert enums
    for label in enums:
        row = field(dialog, label)
        expect(row.get_by_role("combobox")).to_be_visible()
        shown = [line.strip() for line in row.inner_text().splitlines()]
        assert "null" not in shown, f"{label!r} displays the value 'null'"
        row.get_by_role("combobox").click()
        expect(page.get_by_role("option").first).to_be_visible()
        assert "null" not in page.get_by_role("option").all_inner_texts(), f"{label!r} offers 'null'"
        row.get_by_role("combobox").press("Tab")  # blur closes the menu (Escape would close the dialog)
        expect(page.get_by_role("option")).to_have_count(0)


def test_saved_form_stores_the_extras_the_provider_expects(
    page: Page, api_server: ApiServer, keystores: dict[str, Keystore], auth_server: LocalAuthorizationServer
) -> None:
    from airflow.sdk import Connection

    store = keystores["default"]
    conn_id = "ui_saved"
    dialog = open_add_form(page, api_server)
    dialog.locator('input[name="connection_id"]').fill(conn_id)
    dialog.locator('input[name="host"]').fill("http://127.0.0.1")
    dialog.locator('input[name="port"]').fill(str(auth_server.port))
    dialog.locator('input[name="login"]').fill(CLIENT_ID)
    open_section(dialog, "Extra Fields")
    dialog.locator('input[name="element_auth_url"]').fill(auth_server.token_url)
    dialog.locator('input[name="element_key_file"]').fill(str(store.path))
    dialog.locator('input[name="element_keystore_password"]').fill(STORE_PASSWORD)
    dialog.locator('input[name="element_subject"]').fill("alice")
    dialog.locator('input[name="element_lifetime"]').fill("120")
    choose(dialog, "Signing algorithm", "RS256")
    with page.expect_response(lambda r: r.url.endswith("/api/v2/connections") and r.request.method == "POST") as post:
        dialog.get_by_role("button", name="Save").click()
    assert post.value.status == 201, post.value.text()
    expect(dialog).to_be_hidden()
    expect(connection_row(page, conn_id)).to_be_visible()
    assert STORE_PASSWORD not in page_texts(page)

    stored = api_server.get_connection(conn_id)
    assert stored["conn_type"] == "jwt_bearer"
    assert (stored["host"], stored["port"], stored["login"]) == ("http://127.0.0.1", auth_server.port, CLIENT_ID)
    assert stored["password"] is None
    extra = json.loads(stored["extra"])
    assert set(extra) == set(CONN_FIELDS), "the form stores every declared field, under its bare name"
    assert extra["keystore_password"] == "***", "the REST answer must mask the keystore password"
    assert STORE_PASSWORD not in json.dumps(stored)
    filled = {
        "auth_url": auth_server.token_url,
        "key_file": str(store.path),
        "keystore_password": "***",
        "subject": "alice",
        "lifetime": 120,
        "algorithm": "RS256",
    }
    assert {k: extra[k] for k in filled} == filled
    assert isinstance(extra["lifetime"], int)
    assert {k: v for k, v in extra.items() if k not in filled} == dict.fromkeys(set(CONN_FIELDS) - set(filled))

    # The provider accepts what the form stored (bare key names, nulls, numbers) ...
    conn = Connection(
        conn_id=conn_id,
        conn_type=stored["conn_type"],
        host=stored["host"],
        port=stored["port"],
        login=stored["login"],
        extra=json.dumps({**extra, "keystore_password": STORE_PASSWORD}),
    )
    settings = parse_connection(conn)
    local = settings.signer
    assert isinstance(local, LocalSignerSettings)
    assert settings.api_base_url == auth_server.url
    assert (settings.auth_url, local.source.path) == (auth_server.token_url, str(store.path))
    assert (settings.lifetime, settings.algorithm, settings.client_auth) == (120, "RS256", "none")
    assert settings.preset is None
    assert local.key_password is None
    # ... and the api-server has the real keystore password behind the mask: testing the stored
    # connection (masked values are replaced by the stored ones) obtains a token.
    register(auth_server, store)
    result = api_server.test_connection(stored)
    assert result["status"] is True, result["message"]
    assert [r["success"] for r in auth_server.token_requests] == [True]


def test_test_button_shows_the_hook_result(
    page: Page, api_server: ApiServer, keystores: dict[str, Keystore], auth_server: LocalAuthorizationServer
) -> None:
    store = keystores["default"]
    register(auth_server, store)
    conn_id = "ui_test_button"
    # Stored with a port: the 3.3.2 list posts port 0 for an empty port and gets a 400.
    api_server.create_connection(
        {
            "connection_id": conn_id,
            "conn_type": "jwt_bearer",
            "host": "http://127.0.0.1",
            "port": auth_server.port,
            "login": CLIENT_ID,
            "extra": json.dumps(connection_extra(store, auth_server)),
        }
    )
    page.goto(f"{api_server.url}/connections")
    row = connection_row(page, conn_id)
    expect(row).to_be_visible()

    def click_test() -> dict[str, Any]:
        with page.expect_response(lambda r: r.url.endswith("/api/v2/connections/test")) as answer:
            row.get_by_role("button", name="Test Connection").click()
        assert answer.value.status == 200, f"HTTP {answer.value.status}: {answer.value.text()}"
        return answer.value.json()

    # Success: the hook fetched a token from the local server and said so.
    result = click_test()
    assert result["status"] is True, result["message"]
    print(f"\nTest button (success): {result['message']}")
    success = re.compile(rf"Token obtained from {re.escape(auth_server.token_url)} .*expires in 3600 s")
    expect(page.get_by_text(success)).to_be_visible()
    page.screenshot(path=str(SCREENSHOT_TEST_BUTTON), animations="disabled")  # the toast in place
    text = page_texts(page)  # while the toast is up
    assert "Test Connection Successful" in text
    assert result["message"] in text
    granted = [r for r in auth_server.token_requests if r["success"]]
    assert len(granted) == 1, auth_server.token_requests
    assert granted[0]["client_id"] == CLIENT_ID
    assert granted[0]["grant_type"] == "urn:ietf:params:oauth:grant-type:jwt-bearer"
    assert granted[0]["issued_sub"] == "alice"
    tokens = list(auth_server._tokens)
    assert tokens
    for secret in (STORE_PASSWORD, *tokens):
        assert secret not in text

    # Failure: a wrong keystore password, entered in the edit form and saved.
    row.get_by_role("button", name="Edit Connection").click()
    dialog = page.get_by_role("dialog")
    open_section(dialog, "Extra Fields")
    password_box = dialog.locator('input[name="element_keystore_password"]')
    expect(password_box).to_have_value("***")  # the edit form never shows the stored secret
    password_box.fill(WRONG_STORE_PASSWORD)
    with page.expect_response(
        lambda r: f"/api/v2/connections/{conn_id}" in r.url and r.request.method == "PATCH"
    ) as patch:
        dialog.get_by_role("button", name="Save").click()
    assert patch.value.status == 200, patch.value.text()
    expect(dialog).to_be_hidden()
    requests_before = len(auth_server.token_requests)

    result = click_test()
    assert result["status"] is False
    print(f"\nTest button (failure): {result['message']}")
    assert "keystore_password is wrong" in result["message"]
    error = f"key_file {str(store.path)!r}: cannot be opened: the keystore_password is wrong"
    expect(page.get_by_text(error)).to_be_visible()
    text = page_texts(page)  # while the toast is up
    assert "Test Connection Failed" in text
    assert len(auth_server.token_requests) == requests_before, "no token request without a usable key"
    for secret in (STORE_PASSWORD, WRONG_STORE_PASSWORD, *tokens):
        assert secret not in text
