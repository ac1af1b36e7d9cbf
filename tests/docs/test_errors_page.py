"""The errors page's examples are the provider's real messages, and each still says what the page says.

Why a test and a build-time generation together: the page (``docs/errors.md``) shows what
``docs/_ext/jwt_docs/errors/`` produces by running each case through the real parser and hook at
every docs build, so a reworded message appears there by itself. What cannot update itself is the
page's claim about each message: which exception class it is, and which setting it names (the
"what to do" next to it relies on that). This test runs every case and fails when a case stops
raising, raises another class than the page shows, stops naming the setting, or lets one of the
case's secrets into the message. The cases that need a device, a cloud API or a particular server
run against their stand-ins (SoftHSM2, moto, the devserver) exactly as the build runs them.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from jwt_docs.errors import CASES, CLASS_ORDER, Produced, errors_markdown, mismatch, produce
from jwt_docs.errors.case import CLIENT_SECRET, WRONG_PASSWORD, Case
from jwt_docs.errors.server import ACCESS_TOKEN, serve
from jwt_docs.errors.service_cases import WRONG_PIN
from jwt_docs.keys import STORE_PASSWORD

import airflow_jwt_provider.exceptions as exceptions
from tests.docs.conftest import DOCS

SECRETS = (STORE_PASSWORD, WRONG_PASSWORD, CLIENT_SECRET, WRONG_PIN, ACCESS_TOKEN, "4321-user", "EXAMPLEKEY")


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    with serve() as url:
        yield url


@pytest.mark.parametrize("case", CASES, ids=[c.title for c in CASES])
def test_each_case_raises_what_the_page_says(case: Case, server: str) -> None:
    produced = produce(case, server)
    assert produced.exception == case.exception, produced.message
    assert isinstance(getattr(exceptions, case.exception), type)
    assert case.names in produced.message, produced.message
    for secret in SECRETS:
        assert secret not in produced.message
    assert "127.0.0.1" not in produced.message  # the loopback servers are shown as the example hosts
    assert "jwt-docs-errors-" not in produced.message  # and the temporary directory as /keys
    assert mismatch(produced) is None


def test_every_case_has_its_own_title_and_a_class_the_page_orders() -> None:
    assert len({case.title for case in CASES}) == len(CASES)
    assert {case.exception for case in CASES} <= set(CLASS_ORDER)


def test_a_case_that_raises_another_error_is_a_mismatch(server: str) -> None:
    """What the build refuses to show: e.g. a connection error where the page promises invalid_client."""
    shown = CASES[0]
    assert mismatch(Produced(shown, "TokenEndpointError", "Cannot reach the token endpoint")) is not None
    assert mismatch(Produced(shown, shown.exception, "a message naming nothing")) is not None
    assert mismatch(produce(shown, server)) is None


def test_a_message_showing_a_loopback_address_is_a_mismatch() -> None:
    """A server a case started without telling the workspace would show its address: the build refuses it."""
    shown = CASES[0]
    message = f"{shown.names} at https://127.0.0.1:4711/oauth2/token"
    assert "loopback" in str(mismatch(Produced(shown, shown.exception, message)))


def test_a_case_that_raises_nothing_fails(server: str) -> None:
    quiet = Case("nothing wrong", "JwtBearerConfigError", "x", "nothing", lambda ws: None)
    with pytest.raises(AssertionError, match="raised nothing"):
        produce(quiet, server)


def test_a_case_in_its_own_process_is_one_the_child_knows() -> None:
    """The child process runs a case by its place in CASES: a case from elsewhere cannot be sent there."""
    stray = Case("stray", "KeystoreError", "x", "nothing", lambda ws: None, own_process=True)
    with pytest.raises(ValueError, match="its own process"):
        produce(stray)


def test_the_page_shows_each_case_by_exception_class() -> None:
    config, keystore = (next(c for c in CASES if c.exception == name) for name in CLASS_ORDER[:2])
    page = errors_markdown(
        [
            Produced(keystore, "KeystoreError", "Connection 'x': a keystore message"),
            Produced(config, "JwtBearerConfigError", "Connection 'x': a message"),
        ]
    )
    assert page.index(f"### {config.title}") < page.index(f"### {keystore.title}")
    assert "`JwtBearerConfigError`" in page
    assert "<!-- jwt-docs: errors -->" in (DOCS / "errors.md").read_text(encoding="utf-8")


def test_a_stand_in_is_named_on_the_page() -> None:
    played = next(c for c in CASES if c.stand_in)
    page = errors_markdown([Produced(played, played.exception, "a message")])
    assert f"Produced here with {played.stand_in}." in page
