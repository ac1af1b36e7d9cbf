"""The errors page's examples are the provider's real messages, and each still says what the page says.

Why a test and a build-time generation together: the page (``docs/errors.md``) shows what
``docs/_ext/jwt_docs/errors.py`` produces by running each case through the real parser and hook at
every docs build, so a reworded message appears there by itself. What cannot update itself is the
page's claim about each message: which exception class it is, and which setting it names (the
"what to do" next to it relies on that). This test runs every case and fails when a case stops
raising, raises another class than the page shows, stops naming the setting, or lets one of the
case's secrets into the message.
"""

from __future__ import annotations

import jwt_docs.errors as errors
import pytest
from jwt_docs.errors import CASES, Case, Produced, produce

import airflow_jwt_provider.exceptions as exceptions
from tests.docs.conftest import DOCS

SECRETS = (errors.STORE_PASSWORD, errors.WRONG_PASSWORD, errors.CLIENT_SECRET, "docs-access-token-ok")


@pytest.fixture(scope="module")
def server() -> object:
    with errors._server() as url:
        yield url


@pytest.mark.parametrize("case", CASES, ids=[c.title for c in CASES])
def test_each_case_raises_what_the_page_says(case: Case, server: str) -> None:
    produced = produce(case, server)
    assert produced.exception == case.exception, produced.message
    assert isinstance(getattr(exceptions, case.exception), type)
    assert case.names in produced.message, produced.message
    for secret in SECRETS:
        assert secret not in produced.message
    assert "127.0.0.1" not in produced.message  # the loopback server is shown as the example host
    assert "jwt-docs-errors-" not in produced.message  # and the temporary directory as /keys


def test_a_case_that_raises_another_error_is_a_mismatch(server: str) -> None:
    """What the build refuses to show: e.g. a connection error where the page promises invalid_client."""
    from jwt_docs.errors import mismatch

    shown = CASES[0]
    assert mismatch(Produced(shown, "TokenEndpointError", "Cannot reach the token endpoint")) is not None
    assert mismatch(Produced(shown, shown.exception, "a message naming nothing")) is not None
    assert mismatch(produce(shown, server)) is None


def test_a_case_that_raises_nothing_fails(server: str) -> None:
    quiet = Case("nothing wrong", "JwtBearerConfigError", "x", "nothing", lambda ws: None)
    with pytest.raises(AssertionError, match="raised nothing"):
        produce(quiet, server)


def test_the_page_shows_each_case(server: str) -> None:
    from jwt_docs.errors import errors_markdown

    page = errors_markdown([Produced(CASES[0], "JwtBearerConfigError", "Connection 'x': a message")])
    assert f"### {CASES[0].title}" in page
    assert "`JwtBearerConfigError`" in page
    assert "<!-- jwt-docs: errors -->" in (DOCS / "errors.md").read_text(encoding="utf-8")
