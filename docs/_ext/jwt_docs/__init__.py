"""Sphinx extension of the airflow-jwt-provider docs: the pages that must follow the code are made from it.

A page asks for generated content with a marker line, ``<!-- jwt-docs: NAME -->``, which this
extension replaces (Sphinx's ``source-read`` event) with MyST Markdown before the page is parsed, so
the generated headings get anchors and a table of contents like hand-written ones:

``connection-reference``  every extra key (``conn-fields`` of the provider info, the parser's keys)
``cli-reference``         every ``airflow jwt-bearer`` command and argument (the argparse definitions)
``config-reference``      the ``[jwt_bearer]`` section (the provider info's ``config``)
``presets``               the presets' tables, from the presets' rules (:mod:`jwt_docs.presets`)
``errors``                the error messages, produced by the code (:mod:`jwt_docs.errors`)
``check-example``         ``airflow jwt-bearer check``'s output on a connection made at build time
                          (:mod:`jwt_docs.cli_example`)
``bench-tokens``, ``bench-dpop``, ``bench-cluster``, ``bench-triggerer``
                          charts and tables of the recorded benchmark runs (:mod:`jwt_docs.plots`)
``dpop-costs``            the bound-tokens page's cost per DPoP key, from the recorded ``bench_dpop`` run
``screenshot:NAME``       a screenshot the browser tests took (``docs/_static/screenshots/NAME.png``)

An unknown marker name fails the build. Pages with markers are read again at every build, since
what they show depends on code Sphinx does not track.

The generators import nothing of Sphinx, so ``tests/docs`` can call them where only the ``[test]``
extra is installed.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the generators also serve tests/docs, where Sphinx may not be installed
    from sphinx.application import Sphinx


class ExtensionError(Exception):
    """A page asks for something the extension does not make (Sphinx reports it as a failed build)."""


MARKER = re.compile(r"^<!-- jwt-docs: (?P<name>[\w:-]+) -->$", re.MULTILINE)
SCREENSHOTS = "_static/screenshots"
#: Where the browser tests write the screenshots of their latest run (git-ignored).
FRESH_SCREENSHOTS = "_generated/screenshots"

#: What each screenshot shows, and which browser test takes it.
SCREENSHOT_CAPTIONS = {
    "connection-form": "The Add Connection form of the Airflow 3.3 UI with the jwt_bearer type chosen: the "
    "provider's extra fields, each with its label and description (taken by "
    "tests/ui/test_connection_form.py::test_add_form_shows_the_jwt_bearer_fields).",
    "connection-form-standard": "The form's standard fields, relabelled by the provider (API base URL, Client ID, "
    "Client secret) (taken by the same test).",
    "test-button": "The Test button's result for a working connection: the key that signed and the token's "
    "lifetime, never the token (taken by tests/ui/test_connection_form.py::test_test_button_shows_the_hook_result).",
}


def _quiet_airflow() -> None:
    """Airflow is imported by the generators: keep its files in a temporary home and its logs to errors."""
    os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="jwt-docs-airflow-"))
    os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "ERROR")
    logging.getLogger("airflow").setLevel(logging.WARNING)  # its start-up notes are no build output


def connection_reference() -> str:
    from airflow_jwt_provider.connection import fields
    from airflow_jwt_provider.connection._signer_group import allowed_keys
    from airflow_jwt_provider.connection.signer_settings import SIGNERS
    from airflow_jwt_provider.get_provider_info import get_provider_info

    from .reference import connection_reference as render

    signer_fields = {f.name: f for group in fields.BUILTIN_SIGNER_FIELDS.values() for f in group}
    groups = {
        "Endpoint, grant, source and signer": fields.ENDPOINT_FIELDS,
        "Assertion source settings": fields.ASSERTION_SOURCE_FIELDS,
        "Signer settings": {**signer_fields, **fields.SHARED_SIGNER_FIELDS},
        "Assertion, client authentication, binding and HTTP": fields.ASSERTION_AND_HTTP_FIELDS,
        "Token exchange (grant token_exchange)": fields.TOKEN_EXCHANGE_FIELDS,
    }
    signer_keys = {
        registration.name: {*(f.name for f in registration.fields), *registration.reads}
        for registration in SIGNERS.load_all()
    }
    return render(get_provider_info(), allowed_keys(), groups, signer_keys)


def cli_reference() -> str:
    from airflow_jwt_provider.cli.definition import get_cli_commands

    from .reference import cli_reference as render

    return render(get_cli_commands())


def config_reference() -> str:
    from airflow_jwt_provider.get_provider_info import get_provider_info

    from .reference import config_reference as render

    return render(get_provider_info()["config"])


def presets_page() -> str:
    from .presets import presets_markdown

    return presets_markdown()


def errors_page() -> str:
    from .errors import errors_markdown, produce_all

    return errors_markdown(produce_all())


def check_example() -> str:
    from .cli_example import check_example as run

    return run()


def screenshot(srcdir: Path, name: str) -> str:
    """The image if the browser tests have taken it, else a note saying how to take it (never a failure)."""
    caption = SCREENSHOT_CAPTIONS.get(name)
    if caption is None:
        raise ExtensionError(f"jwt-docs: no screenshot called {name!r}; known: {', '.join(SCREENSHOT_CAPTIONS)}")
    for folder in (FRESH_SCREENSHOTS, SCREENSHOTS):  # this checkout's browser run first, else the committed ones
        if (srcdir / folder / f"{name}.png").is_file():
            return f"```{{figure}} /{folder}/{name}.png\n:alt: {name}\n\n{caption}\n```\n"
    return (
        f"```{{note}}\nThe screenshot `{name}.png` is taken by the browser tests "
        "(`./scripts/test -m browser tests/ui`), which write it to `docs/_generated/screenshots/`; "
        f"this checkout has none yet. It shows: {caption}\n```\n"
    )


def generated(srcdir: Path, name: str) -> str:
    """The Markdown that replaces the marker ``name``."""
    if name.startswith("screenshot:"):
        return screenshot(srcdir, name.split(":", 1)[1])
    if name in ("bench-tokens", "bench-dpop", "bench-cluster", "bench-triggerer"):
        from .plots import benchmark_section

        return benchmark_section(srcdir, name)
    if name == "dpop-costs":
        from .plots import dpop_costs

        return dpop_costs(srcdir)
    makers = {
        "connection-reference": connection_reference,
        "cli-reference": cli_reference,
        "config-reference": config_reference,
        "presets": presets_page,
        "errors": errors_page,
        "check-example": check_example,
    }
    if name not in makers:
        raise ExtensionError(f"jwt-docs: unknown marker {name!r}")
    return makers[name]()


def _source_read(app: Sphinx, docname: str, source: list[str]) -> None:
    from sphinx.errors import ExtensionError as SphinxExtensionError

    def replace(match: re.Match[str]) -> str:
        try:
            return generated(Path(app.srcdir), match.group("name"))
        except Exception as exc:  # reported by Sphinx as a build error naming the page and the marker
            raise SphinxExtensionError(f"{docname}: <!-- jwt-docs: {match.group('name')} -->: {exc}") from exc

    source[0] = MARKER.sub(replace, source[0])


def _outdated(app: Sphinx, env: Any, added: set[str], changed: set[str], removed: set[str]) -> list[str]:
    """Pages with markers are read again every time: the code they show may have changed."""
    srcdir = Path(app.srcdir)
    pages = []
    for path in srcdir.rglob("*.md"):
        if "_build" in path.parts:
            continue
        if MARKER.search(path.read_text(encoding="utf-8")):
            pages.append(path.relative_to(srcdir).with_suffix("").as_posix())
    return pages


def setup(app: Sphinx) -> dict[str, Any]:
    _quiet_airflow()
    app.connect("source-read", _source_read)
    app.connect("env-get-outdated", _outdated)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
