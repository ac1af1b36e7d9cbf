"""The errors page's examples, produced by the provider's own code at documentation build time.

Why generated and not typed: a message typed into a page drifts as soon as someone rewords it in
the code. Each :class:`~jwt_docs.errors.case.Case` sets up a connection that is wrong in one documented
way and calls the public API (``parse_connection``, ``JwtBearerHook.mint_assertion`` / ``get_token`` /
``run``) the way a task does; the exception it raises is what the page shows. Keys and keystores are
made in a temporary directory (:mod:`.local_cases`); the token endpoint and API are a small HTTP
server on 127.0.0.1 answering the way real servers fail (:mod:`.server`, :mod:`.answer_cases`); what
needs a device, a cloud API or a particular server is played by a stand-in on this machine
(SoftHSM2, moto, the devserver: :mod:`.service_cases`). Nothing leaves the machine. The temporary
paths and the loopback addresses are replaced by example values (``/keys/…``,
``https://login.example.com``) so the page reads like a deployment's, and stays the same from one
build to the next.

``tests/docs/test_errors_page.py`` runs every case too: a case that stops raising, raises another
exception class than the page says, or whose message no longer names the setting at fault fails the
tests (and the build: :func:`produce_all`), and so does a message that contains one of the secrets the
case put in the connection.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import textwrap
from dataclasses import dataclass
from pathlib import Path

from jwt_docs.keys import EXAMPLE_API, EXAMPLE_ISSUER, EXAMPLE_TOKEN_URL, as_example

from . import answer_cases, local_cases, service_cases
from .case import Case, Workspace
from .server import serve

#: Every case; the page lists them by exception class (:data:`CLASS_ORDER`), in this order within one.
CASES: tuple[Case, ...] = (*local_cases.CASES, *service_cases.CASES, *answer_cases.CASES)
#: The order of the exceptions table of docs/errors.md.
CLASS_ORDER = (
    "JwtBearerConfigError",
    "KeystoreError",
    "AssertionSourceError",
    "TokenEndpointError",
    "ApiResponseError",
)
#: Where ``python -m jwt_docs.errors`` finds the extension and the provider (a case in a process of its own).
_PATHS = (Path(__file__).resolve().parents[2], Path(__file__).resolve().parents[3])


@dataclass(frozen=True)
class Produced:
    """What a case raised: the exception's class name and its message, as the page shows it."""

    case: Case
    exception: str
    message: str


def produce(case: Case, server: str | None = None, *, here: bool = False) -> Produced:
    """Run ``case`` in a fresh workspace; the exception it raised, with example values for local ones.

    A case marked ``own_process`` runs in a new Python process (``python -m jwt_docs.errors``) unless
    ``here`` says this already is that process.
    """
    if case.own_process and not here:
        return _produce_in_a_new_process(case)
    if server is None:
        with serve() as started:
            return produce(case, started, here=here)
    from airflow_jwt_provider.tokens.cache import TOKEN_CACHE

    saved = dict(os.environ)
    TOKEN_CACHE.invalidate()
    with tempfile.TemporaryDirectory(prefix="jwt-docs-errors-") as directory:
        workspace = Workspace(Path(directory), server)
        try:
            case.cause(workspace)
        except Exception as exc:
            message = str(exc).replace(f"{server}/api", EXAMPLE_API)
            message = re.sub(re.escape(server) + r"/[\w-]+", EXAMPLE_TOKEN_URL, message)
            message = as_example(message, directory, [(server, EXAMPLE_ISSUER), *workspace.servers])
            return Produced(case, type(exc).__name__, message)
        finally:
            os.environ.clear()
            os.environ.update(saved)
    raise AssertionError(f"error case {case.title!r} raised nothing")


def _produce_in_a_new_process(case: Case) -> Produced:
    """:func:`produce` in a child process that runs only ``case``; its result comes back as JSON."""
    if case not in CASES:
        raise ValueError(f"error case {case.title!r} runs in its own process, which knows only jwt_docs.errors.CASES")
    with tempfile.TemporaryDirectory(prefix="jwt-docs-errors-") as directory:
        result = Path(directory) / "produced.json"
        paths = [str(path) for path in _PATHS] + [os.environ.get("PYTHONPATH", "")]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, paths))}
        argv = [sys.executable, "-m", "jwt_docs.errors", str(CASES.index(case)), str(result)]
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300, check=False)
        if not result.is_file():
            raise RuntimeError(f"error case {case.title!r} failed in its own process: {done.stderr[-3000:]}")
        produced = json.loads(result.read_text(encoding="utf-8"))
    return Produced(case, produced["exception"], produced["message"])


def mismatch(produced: Produced) -> str | None:
    """Why ``produced`` is not what the page says about its case (its class, the setting it names), if so."""
    case = produced.case
    if produced.exception != case.exception:
        return f"raised {produced.exception}, not {case.exception}: {produced.message}"
    if case.names not in produced.message:
        return f"its message no longer names {case.names!r}: {produced.message}"
    if "127.0.0.1" in produced.message:
        return f"its message shows a loopback address the page cannot replace: {produced.message}"
    return None


def produce_all() -> list[Produced]:
    """Every case, against one local server; a case that no longer fits its entry stops the build.

    The page states each case's exception class and the setting its message names; showing a message
    that says otherwise (say, a connection error because loopback is unreachable) would be worse than
    no page, so the build fails instead, naming the case.
    """
    with serve() as server:
        produced = [produce(case, server) for case in CASES]
    wrong = [f"{p.case.title!r} {why}" for p in produced if (why := mismatch(p))]
    if wrong:
        raise RuntimeError("errors page: " + "; ".join(wrong))
    return produced


def errors_markdown(produced: list[Produced]) -> str:
    """One entry per case, by exception class: the situation, the exception, the message, what to do."""
    lines: list[str] = []
    for item in sorted(produced, key=lambda p: CLASS_ORDER.index(p.exception)):
        lines += [
            f"### {item.case.title}",
            "",
            f"`{item.exception}`:",
            "",
            "```text",
            textwrap.fill(item.message, 96, break_long_words=False, break_on_hyphens=False),
            "```",
            "",
        ]
        if item.case.stand_in:
            lines += [f"Produced here with {item.case.stand_in}.", ""]
        lines += [f"What to do: {item.case.fix}.", ""]
    return "\n".join(lines)
