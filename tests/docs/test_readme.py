"""The README is the landing page: its commands are what CI runs, its example builds, its links lead into the docs.

Why these checks: the manual moved from the README into ``docs/``, and the README now promises three
things a reader acts on at once. Its quick start gives the test command that ``.ci/run`` must run
exactly (a README that says one thing while CI runs another is how a green badge comes to mean
nothing); its DAG is copied into projects as is; and its table is the way into the docs, so a link to
a page that moved, or a page of the site the table forgot, leaves a reader stranded. Each check is
also fed a wrong input, to show that it would notice.
"""

from __future__ import annotations

import re
from pathlib import Path

from tests.docs.conftest import DOCS

REPO = DOCS.parent
README = REPO / "README.md"
CI = REPO / ".ci" / "run"
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def _section(text: str, title: str) -> str:
    """The body of the ``## title`` section of ``text``."""
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def _fenced(text: str, language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```$", text, re.MULTILINE | re.DOTALL)


def quick_start_commands(readme: str) -> list[str]:
    """The commands of the quick start's shell block, without their comments."""
    (block,) = _fenced(_section(readme, "Quick start"), "bash")
    return [line.split("#", 1)[0].strip() for line in block.splitlines() if line.split("#", 1)[0].strip()]


def commands_ci_does_not_run(readme: str, ci_script: str) -> list[str]:
    """The quick start's commands that are not, exactly and alone on a line, commands of the CI script."""
    ci_lines = {line.strip() for line in ci_script.splitlines() if line.strip() and not line.startswith("#")}
    return [command for command in quick_start_commands(readme) if command not in ci_lines]


def broken_links(readme: str, root: Path) -> list[str]:
    """Relative link targets of ``readme`` that name no file or folder under ``root``."""
    targets = [t for t in LINK.findall(readme) if "://" not in t]
    return [target for target in targets if not (root / target).exists()]


def pages_not_linked(readme: str, index: str) -> list[str]:
    """The pages the docs' own index table leads to (``docs/``-relative) that the README does not link."""
    linked = {target.removeprefix("docs/") for target in LINK.findall(readme)}
    listed = {target for target in LINK.findall(_table(index)) if "://" not in target}
    return sorted(listed - linked)


def _table(page: str) -> str:
    return "\n".join(line for line in page.splitlines() if line.startswith("|"))


# -- the quick start and CI ------------------------------------------------------------------------------


def test_the_quick_start_gives_the_commands_ci_runs() -> None:
    readme = README.read_text(encoding="utf-8")
    assert quick_start_commands(readme) == ["./scripts/demo", "./scripts/test"]
    assert commands_ci_does_not_run(readme, CI.read_text(encoding="utf-8")) == []


def test_a_quick_start_command_ci_does_not_run_is_found() -> None:
    readme = README.read_text(encoding="utf-8").replace("./scripts/test   #", "./scripts/test --quick   #", 1)
    assert commands_ci_does_not_run(readme, CI.read_text(encoding="utf-8")) == ["./scripts/test --quick"]


# -- the example ----------------------------------------------------------------------------------------


def test_the_dag_example_builds_its_task() -> None:
    """The README's DAG runs as written: a DAG with one operator on the connection it names."""
    from airflow_jwt_provider.operators.http import JwtBearerHttpOperator

    (code,) = _fenced(README.read_text(encoding="utf-8"), "python")
    namespace: dict[str, object] = {}
    exec(compile(code, "README.md", "exec"), namespace)
    dag = namespace["dag"]
    (task,) = dag.tasks  # type: ignore[attr-defined]
    assert isinstance(task, JwtBearerHttpOperator)
    assert task.jwt_bearer_conn_id == "box_api"


# -- the links ------------------------------------------------------------------------------------------


def test_every_relative_link_of_the_readme_leads_to_a_file() -> None:
    readme = README.read_text(encoding="utf-8")
    assert len(LINK.findall(readme)) > 20
    assert broken_links(readme, REPO) == []
    assert broken_links(readme + "\n[gone](docs/no-such-page.md)\n", REPO) == ["docs/no-such-page.md"]


def test_the_readme_links_every_page_the_docs_index_leads_to() -> None:
    readme = README.read_text(encoding="utf-8")
    index = (DOCS / "index.md").read_text(encoding="utf-8")
    assert pages_not_linked(readme, index) == []
    assert pages_not_linked(readme.replace("(docs/keys.md)", "(docs/index.md)"), index) == ["keys.md"]


# -- the package metadata -------------------------------------------------------------------------------


def test_the_package_describes_itself_with_the_readme_and_the_changelog_and_links_the_docs() -> None:
    """PyPI's page is the README then the changelog (a dynamic ``readme``); the project URLs lead to the docs."""
    pyproject = (REPO / "pyproject.toml").read_text(encoding="utf-8")  # no tomllib: Python 3.10 is supported
    assert re.search(r'^dynamic = \["readme"\]$', pyproject, re.MULTILINE)
    assert not re.search(r"^readme = \"", pyproject, re.MULTILINE)
    dynamic = pyproject[pyproject.index("[tool.setuptools.dynamic]") :].split("\n[", 1)[0]
    files = re.search(r'^readme = \{ file = \[([^\]]*)\], content-type = "text/markdown" \}$', dynamic, re.MULTILINE)
    assert files is not None, dynamic
    assert re.findall(r'"([^"]+)"', files.group(1)) == ["README.md", "docs/changelog.md"]
    assert all((REPO / name).is_file() for name in ("README.md", "docs/changelog.md"))
    urls_section = pyproject[pyproject.index("[project.urls]") :].split("\n[", 1)[0]
    urls = dict(re.findall(r'^(\w+) = "([^"]+)"$', urls_section, re.MULTILINE))
    assert set(urls) == {"Documentation", "Changelog"}
    for target in urls.values():  # no public site yet: paths in the repository until there is one
        assert target.startswith("https://") or (REPO / target).is_file(), target
