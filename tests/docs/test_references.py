"""The generated references document everything the code declares, and the check would notice a gap.

The connection, CLI and configuration references are rendered from the code at every docs build
(``docs/_ext/jwt_docs``). These tests render them the same way and ask the extension's own
completeness checks whether any extra key, form field, CLI argument or configuration option lacks a
described entry; each check is also fed a fake, undocumented item, to prove it would fail.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from airflow.cli.cli_config import ActionCommand, Arg, GroupCommand
from jwt_docs import cli_reference, config_reference, connection_reference
from jwt_docs.reference import (
    cli_reference as render_cli,
)
from jwt_docs.reference import (
    config_reference as render_config,
)
from jwt_docs.reference import (
    undocumented_cli_arguments,
    undocumented_config_options,
    undocumented_extra_keys,
)

from airflow_jwt_provider.cli.definition import get_cli_commands
from airflow_jwt_provider.connection._signer_group import allowed_keys
from airflow_jwt_provider.get_provider_info import get_provider_info
from tests.docs.conftest import DOCS

REPO = DOCS.parent
#: sphinx-build without a conf.py (-C), warnings as errors, heading anchors as the site has them
SPHINX = (sys.executable, "-m", "sphinx", "-C", "-W", "-q", "-b", "html", "-D", "myst_heading_anchors=3")


def _with_form_field(info: dict[str, Any], name: str, field: dict[str, Any]) -> dict[str, Any]:
    (conn_type,) = info["connection-types"]
    changed = {**conn_type, "conn-fields": {**conn_type["conn-fields"], name: field}}
    return {**info, "connection-types": [changed]}


# -- the connection ------------------------------------------------------------------------------


def test_every_extra_key_the_parser_accepts_has_a_described_entry() -> None:
    page = connection_reference()
    assert undocumented_extra_keys(page, get_provider_info(), allowed_keys()) == []
    for key in allowed_keys():
        assert f"### `{key}`" in page, key


def test_an_extra_key_without_a_form_field_fails_the_check() -> None:
    """What a key added to the parser but not to fields.py would look like: rendered, but undescribed."""
    from jwt_docs.reference import connection_reference as render

    from airflow_jwt_provider.connection import fields

    keys = [*allowed_keys(), "fake_extra_key"]
    page = render(get_provider_info(), keys, {"All": fields.ALL_FIELDS}, {})
    assert "### `fake_extra_key`" in page  # rendered, but without a description
    assert "**Not described" in page
    assert undocumented_extra_keys(page, get_provider_info(), keys) == ["fake_extra_key"]


def test_a_form_field_without_a_description_fails_the_check() -> None:
    info = _with_form_field(get_provider_info(), "fake_field", {"label": "Fake", "description": "", "schema": {}})
    page = connection_reference()
    assert undocumented_extra_keys(page, info, allowed_keys()) == ["fake_field"]


def test_a_key_the_page_lost_fails_the_check() -> None:
    page = connection_reference().replace("### `auth_url`", "### something else")
    assert undocumented_extra_keys(page, get_provider_info(), allowed_keys()) == ["auth_url"]


def test_the_standard_fields_show_the_providers_labels() -> None:
    page = connection_reference()
    assert "| `host` | API base URL |" in page
    assert "| `schema` | (hidden) |" in page


# -- the CLI --------------------------------------------------------------------------------------


def test_every_cli_command_and_argument_is_documented() -> None:
    page = cli_reference()
    assert undocumented_cli_arguments(page, get_cli_commands()) == []
    for name in ("inspect", "export", "check", "mint", "token"):
        assert f"## `airflow jwt-bearer {name}`" in page
    for option in ("--conn-id", "--password-env", "--key-password-env", "--format", "--alias", "--all"):
        assert f"`{option}`" in page
    assert "`pem` \\| `cert` \\| `jwks`" in page  # choices
    assert "| `--format` | `pem` \\| `cert` \\| `jwks` | no | `pem` |" in page  # default


def test_a_cli_argument_without_help_fails_the_check() -> None:
    (group,) = get_cli_commands()
    fake = GroupCommand(
        name=group.name,
        help=group.help,
        subcommands=(
            *group.subcommands,
            ActionCommand(name="fake", help="A fake command", func=lambda args: None, args=(Arg(("--fake-option",)),)),
        ),
    )
    page = render_cli([fake])
    assert "`--fake-option`" in page  # rendered, but it has no help
    assert undocumented_cli_arguments(page, [fake]) == ["airflow jwt-bearer fake --fake-option"]


def test_a_cli_argument_the_page_lost_fails_the_check() -> None:
    page = cli_reference().replace("`--show-token`", "`--something`")
    assert undocumented_cli_arguments(page, get_cli_commands()) == ["airflow jwt-bearer token --show-token"]


# -- the [jwt_bearer] section ---------------------------------------------------------------------------


def test_every_config_option_is_documented() -> None:
    config = get_provider_info()["config"]
    page = config_reference()
    assert undocumented_config_options(page, config) == []
    for option in config["jwt_bearer"]["options"]:
        assert f"AIRFLOW__JWT_BEARER__{option.upper()}" in page


def test_a_config_option_without_a_description_fails_the_check() -> None:
    config = get_provider_info()["config"]
    options = {**config["jwt_bearer"]["options"], "fake_option": {"description": "", "default": "1"}}
    fake = {"jwt_bearer": {**config["jwt_bearer"], "options": options}}
    assert undocumented_config_options(render_config(fake), fake) == ["jwt_bearer.fake_option"]


# -- the presets -----------------------------------------------------------------------------------


def test_every_preset_rule_is_on_the_presets_page() -> None:
    """The page's tables come from the presets' rule objects: each rule, with its vendor page, is stated."""
    from jwt_docs import presets_page
    from jwt_docs.presets import missing_rules

    assert "<!-- jwt-docs: presets -->" in (DOCS / "presets.md").read_text(encoding="utf-8")
    assert missing_rules(presets_page()) == []


def test_a_rule_the_page_lost_fails_the_check() -> None:
    from jwt_docs import presets_page
    from jwt_docs.presets import missing_rules

    from airflow_jwt_provider.connection.presets import PRESETS

    rule = PRESETS["box"].rules[0]
    page = presets_page().replace(rule.describe.replace("|", "\\|"), "something else")
    assert missing_rules(page) == [rule.id]


# -- the pictures -----------------------------------------------------------------------------------


def _pipeline_layers() -> list[str]:
    """The modules of import-linter's "pipeline" contract (pyproject.toml), read without a TOML library."""
    text = (REPO / "pyproject.toml").read_text(encoding="utf-8")
    contract = text[text.index('id = "pipeline"') :]
    layers = contract[contract.index("layers = [") : contract.index("]", contract.index("layers = ["))]
    return re.findall(r"airflow_jwt_provider\.(\w+)", layers)


def test_the_layers_diagram_has_every_layer_of_the_contract() -> None:
    diagram = (DOCS / "diagrams" / "layers.dot").read_text(encoding="utf-8")
    nodes = set(re.findall(r"^\s*(\w+)\s+\[label=", diagram, re.MULTILINE))
    layers = _pipeline_layers()
    assert len(layers) >= 10
    assert set(layers) <= nodes, set(layers) - nodes


def test_every_diagram_renders_with_dot() -> None:
    dot = shutil.which("dot")
    if dot is None:
        pytest.fail("Graphviz's dot is missing: scripts/install-system-deps installs it")
    for path in sorted((DOCS / "diagrams").glob("*.dot")):
        result = subprocess.run([dot, "-Tsvg", str(path)], capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, (path.name, result.stderr)
        assert "<svg" in result.stdout, path.name


# -- the pages as Sphinx builds them -----------------------------------------------------------------


@pytest.mark.slow
def test_reference_pages_build_with_every_name(tmp_path: Path) -> None:
    """Sphinx (with MyST and the extension) builds the reference pages alone; each name is in the HTML."""
    pytest.importorskip("myst_parser", reason="the [docs] extra is not installed")
    source = tmp_path / "src"
    (source / "reference").mkdir(parents=True)
    for page in ("connection", "cli", "config"):
        text = (DOCS / "reference" / f"{page}.md").read_text(encoding="utf-8")
        # links to the other pages of the site become plain text: only these pages are built
        (source / "reference" / f"{page}.md").write_text(re.sub(r"\[([^\]]+)\]\(\.\./[^)]+\)", r"\1", text))
    (source / "index.md").write_text(
        "# Test\n\n```{toctree}\nreference/connection\nreference/cli\nreference/config\n```\n", encoding="utf-8"
    )
    result = subprocess.run(
        [*SPHINX, str(source), str(tmp_path / "html"), "-D", "extensions=myst_parser,jwt_docs"],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": f"{DOCS / '_ext'}:{REPO}"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    html = {
        page: (tmp_path / "html" / "reference" / f"{page}.html").read_text() for page in ("connection", "cli", "config")
    }
    for key in allowed_keys():
        assert f'<span class="pre">{key}</span>' in html["connection"], key
    for option in get_provider_info()["config"]["jwt_bearer"]["options"]:
        assert f'<span class="pre">{option}</span>' in html["config"], option
    for name in ("--conn-id", "--show-assertion", "--show-token", "key_file"):
        assert f'<span class="pre">{name}</span>' in html["cli"], name


def _unexplained(page: str, keys: list[str]) -> list[str]:
    """The keys that the connection page's table does not name (the page before its first subsection)."""
    table = page[: page.index("\n## ")]
    return [key for key in keys if f"`{key}`" not in table]


def test_the_connection_page_explains_every_extra_key() -> None:
    """The hand-written table of docs/connection.md (defaults, how keys combine) names every key too.

    It was the README's connection table, the one place a user looked a setting up; the README now
    links to this page, and a setting missing from its table is a setting nobody finds.
    """
    page = (DOCS / "connection.md").read_text(encoding="utf-8")
    assert _unexplained(page, allowed_keys()) == []
    assert _unexplained(page, [*allowed_keys(), "fake_extra_key"]) == ["fake_extra_key"]
