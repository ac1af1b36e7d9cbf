"""The CLI page's ``check`` example is the command's real output, and still what the page says about it.

``docs/_ext/jwt_docs/cli_example.py`` runs the diagnosis of ``airflow jwt-bearer check`` on a connection
made at build time and prints it as the command does. The page's text describes which step passes,
warns or is skipped; these tests run the example the same way and fail when the output no longer
matches that description, when the page stops asking for it, or when a secret or the loopback server
shows in it. A connection that fails a step is fed to the same comparison, to show it would notice.
"""

from __future__ import annotations

from jwt_docs.cli_example import CONN_ID, EXPECTED, check_example, run_check, unexpected_steps
from jwt_docs.keys import STORE_PASSWORD

from tests.docs.conftest import DOCS


def test_the_page_asks_for_the_generated_example() -> None:
    page = (DOCS / "cli.md").read_text(encoding="utf-8")
    assert "<!-- jwt-docs: check-example -->" in page
    assert "[ OK ]" not in page  # no output typed by hand next to it


def test_the_example_is_what_the_page_describes() -> None:
    run = run_check()
    assert unexpected_steps(run) == []
    assert [name for name, _ in run.steps] == list(EXPECTED)
    text = "\n".join(run.lines)
    assert STORE_PASSWORD not in text
    assert "127.0.0.1" not in text  # the local server is shown as the example host
    assert "jwt-docs-check-" not in text  # and the temporary directory as /keys
    assert "token endpoint: https://login.example.com/oauth2/token" in text
    assert run.lines[-1] == f"Connection {CONN_ID!r}: ready"


def test_the_rendered_block_starts_with_the_command() -> None:
    block = check_example()
    assert block.startswith(f"```text\n$ airflow jwt-bearer check --conn-id {CONN_ID}\n[ OK ] settings: ")


def test_a_connection_that_fails_a_step_does_not_match_the_page() -> None:
    """A wrong password: the key step fails, the later ones are skipped, and the comparison says so."""
    run = run_check(keystore_password="not-the-store-password")
    wrong = unexpected_steps(run)
    assert "key: FAIL, not OK" in wrong
    assert any(line.startswith("the check ends with") for line in wrong)
