"""The generated references: connection fields, the ``airflow jwt-bearer`` CLI, the ``[jwt_bearer]`` section.

Each renderer takes what the code declares and returns MyST Markdown; each ``undocumented_*``
function returns the names that exist in the code but not, with a description, on the page. The
documentation build renders the pages from the live declarations (so they cannot drift), and
``tests/docs`` calls the same functions, so a field, extra key, option or CLI argument added without
a description fails the tests. The inputs are parameters, not imports, so a test can feed a fake
field and see the check fail.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

#: (heading, the fields.py constant it lists): the reference's groups, in form order.
FIELD_GROUPS: tuple[tuple[str, str], ...] = (
    ("Endpoint, grant, source and signer", "ENDPOINT_FIELDS"),
    ("Assertion source settings", "ASSERTION_SOURCE_FIELDS"),
    ("Signer settings", "SIGNER_FIELDS"),
    ("Assertion, client authentication, binding and HTTP", "ASSERTION_AND_HTTP_FIELDS"),
    ("Token exchange (grant token_exchange)", "TOKEN_EXCHANGE_FIELDS"),
)
STANDARD_FIELDS = ("host", "schema", "login", "password", "port")


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ").strip()


def _options_as_code(text: str) -> str:
    """``--show-token`` in prose as code: Sphinx would turn a bare ``--`` into a dash."""
    return re.sub(r"(?<![\w`])(--[\w-]+)", r"`\1`", text)


def _schema_type(schema: Mapping[str, Any]) -> str:
    kinds = schema.get("type", "string")
    if isinstance(kinds, str):
        kinds = [kinds]
    named = [k for k in kinds if k != "null"]
    return " or ".join(named) or "any"


def field_entry(name: str, field: Mapping[str, Any] | None, scope: str = "") -> list[str]:
    """One extra key: its heading, the form's label and description, its schema and who reads it."""
    lines = [f"### `{name}`", ""]
    if not field or not field.get("description"):
        return [*lines, "**Not described in the form** (no `conn-fields` entry with a description).", ""]
    schema = field.get("schema", {})
    lines += [f"**{field.get('label', name)}**: {field['description']}", ""]
    facts = [f"type: {_schema_type(schema)}"]
    if schema.get("format") == "password":
        facts.append("secret (a password input in the form)")
    if "enum" in schema:
        shown = schema.get("values_display", {}).get("null", "empty")
        choices = [shown if v is None else f"`{v}`" for v in schema["enum"]]
        facts.append("choices: " + ", ".join(choices))
    if "default" in schema:
        facts.append(f"default: `{schema['default']}`")
    if scope:
        facts.append(scope)
    lines += ["- " + fact for fact in facts]
    return [*lines, ""]


def _scope(extra: Any, signers: Mapping[str, Iterable[str]]) -> str:
    """Who reads a declared field (``ExtraField``'s flags), in words."""
    readers = sorted(name for name, keys in signers.items() if extra.name in keys)
    if extra.signer_scoped and readers:
        return "read by signer " + ", ".join(f"`{r}`" for r in readers) + " only (refused with another signer)"
    if extra.signer_scoped:
        return "read by signers that list it (refused with another signer)"
    if extra.source_scoped:
        return "read by the assertion sources that use it"
    if extra.exchange_only:
        return "read with `grant: token_exchange` only"
    return ""


def connection_reference(
    provider_info: Mapping[str, Any],
    extra_keys: Sequence[str],
    groups: Mapping[str, Mapping[str, Any]],
    signer_keys: Mapping[str, Iterable[str]],
) -> str:
    """The connection reference page's body.

    :param provider_info: ``get_provider_info()``: its ``conn-fields`` (the form) and ``ui-field-behaviour``.
    :param extra_keys: every key the settings parser accepts (``allowed_keys()``).
    :param groups: group heading → the ``ExtraField`` objects of that group (``fields.py``), in order.
    :param signer_keys: signer name → the extra keys it reads (its registration's fields and ``reads``).
    """
    (conn_type,) = provider_info["connection-types"]
    form: Mapping[str, Any] = conn_type["conn-fields"]
    behaviour = conn_type.get("ui-field-behaviour", {})
    relabel, placeholders = behaviour.get("relabeling", {}), behaviour.get("placeholders", {})
    hidden = set(behaviour.get("hidden-fields", []))
    lines = [
        f"Connection type `{conn_type['connection-type']}` ({conn_type['hook-name']}), hook "
        f"`{conn_type['hook-class-name']}`.",
        "",
        "## Standard fields",
        "",
        "| field | label in the form | placeholder |",
        "|---|---|---|",
    ]
    for name in STANDARD_FIELDS:
        label = "(hidden)" if name in hidden else relabel.get(name, name.capitalize())
        lines.append(f"| `{name}` | {_cell(label)} | {_cell(placeholders.get(name, ''))} |")
    lines += [
        "",
        f"The {len(extra_keys)} extra keys below are every key the settings parser accepts, with the label and "
        "description the connection form shows, grouped as the form orders them. Any other key is refused, "
        "with a suggestion when it looks like a typo.",
        "",
    ]
    listed: set[str] = set()
    for heading, fields in groups.items():
        names = [n for n in fields if n in extra_keys]
        if not names:
            continue
        lines += [f"## {heading}", ""]
        for name in names:
            lines += field_entry(name, form.get(name), _scope(fields[name], signer_keys))
            listed.add(name)
    others = [k for k in extra_keys if k not in listed]
    if others:
        lines += ["## Settings of other installed signers and sources", ""]
        for name in others:
            lines += field_entry(name, form.get(name))
    return "\n".join(lines) + "\n"


def undocumented_extra_keys(page: str, provider_info: Mapping[str, Any], extra_keys: Iterable[str]) -> list[str]:
    """Keys the parser accepts (or the form shows) that have no described entry on ``page``."""
    (conn_type,) = provider_info["connection-types"]
    form: Mapping[str, Any] = conn_type["conn-fields"]
    missing = []
    for name in dict.fromkeys([*extra_keys, *form]):
        field = form.get(name) or {}
        described = bool(field.get("label")) and bool(field.get("description"))
        if not described or f"### `{name}`" not in page or "**Not described" in _entry(page, name):
            missing.append(name)
    return missing


def _entry(page: str, name: str) -> str:
    start = page.find(f"### `{name}`")
    if start < 0:
        return ""
    end = page.find("\n### ", start + 1)
    return page[start : end if end > 0 else len(page)]


# -- the CLI -------------------------------------------------------------------------------------


def _parser(prog: str, description: str, args: Iterable[Any]) -> argparse.ArgumentParser:
    """The argparse parser Airflow builds for one command (``Arg.add_to_parser``, as Airflow calls it)."""
    parser = argparse.ArgumentParser(prog=prog, description=description, add_help=False)
    for arg in args:
        arg.add_to_parser(parser)
    return parser


def cli_commands(groups: Iterable[Any]) -> list[tuple[str, str, argparse.ArgumentParser]]:
    """(command line, help, parser) of every subcommand of ``get_cli_commands()``'s groups."""
    commands = []
    for group in groups:
        for command in group.subcommands:
            prog = f"airflow {group.name} {command.name}"
            commands.append((prog, command.help, _parser(prog, command.help, command.args)))
    return commands


def _names(action: argparse.Action) -> str:
    return ", ".join(f"`{o}`" for o in action.option_strings) or f"`{action.metavar or action.dest}`"


def cli_reference(groups: Iterable[Any]) -> str:
    """The CLI reference: each command's help, usage, and each argument's help, default and choices."""
    lines: list[str] = []
    for group in groups:
        lines += [f"`airflow {group.name}`: {group.help}.", ""]
    for prog, help_text, parser in cli_commands(groups):
        usage = parser.format_usage().removeprefix("usage: ").strip()
        lines += [f"## `{prog}`", "", f"{_options_as_code(help_text)}.", "", "```text", usage, "```", ""]
        lines += ["| argument | value | required | default | help |", "|---|---|---|---|---|"]
        for action in parser._actions:
            if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)):
                value = "(flag)"
            elif action.choices:
                value = " \\| ".join(f"`{c}`" for c in action.choices)
            else:
                value = f"`{action.metavar or action.dest.upper()}`"
            required = "yes" if action.required or not action.option_strings else "no"
            default = "" if action.default in (None, False) else f"`{action.default}`"
            described = _cell(_options_as_code(action.help or ""))
            lines.append(f"| {_names(action)} | {value} | {required} | {default} | {described} |")
        lines.append("")
    return "\n".join(lines)


def undocumented_cli_arguments(page: str, groups: Iterable[Any]) -> list[str]:
    """``command argument`` pairs without help, or missing from the command's section of ``page``."""
    missing = []
    for prog, help_text, parser in cli_commands(groups):
        start = page.find(f"## `{prog}`")
        section = page[start : page.find("\n## ", start + 1) if page.find("\n## ", start + 1) > 0 else len(page)]
        if start < 0 or not help_text:
            missing.append(prog)
            continue
        for action in parser._actions:
            name = action.option_strings[0] if action.option_strings else (action.metavar or action.dest)
            if not action.help or f"`{name}`" not in section:
                missing.append(f"{prog} {name}")
    return missing


# -- the [jwt_bearer] section ----------------------------------------------------------------------


def config_reference(config: Mapping[str, Mapping[str, Any]]) -> str:
    """Each section and option the provider declares: description, default, example, variable."""
    lines: list[str] = []
    for section, spec in config.items():
        lines += [f"## `[{section}]`", "", spec["description"].strip(), ""]
        for option, facts in spec["options"].items():
            variable = f"AIRFLOW__{section.upper()}__{option.upper()}"
            lines += [f"### `{option}`", "", facts["description"].strip(), ""]
            default = facts.get("default")
            lines.append(f"- default: `{default}`" if default else "- default: none (empty)")
            if facts.get("example"):
                lines.append(f"- example: `{facts['example']}`")
            lines.append(f"- environment variable: `{variable}`")
            if facts.get("sensitive"):
                lines.append(
                    f"- sensitive: Airflow hides it in `airflow config list`; `{option}_secret` or `{option}_cmd` "
                    "may name a secrets-backend entry or a command instead"
                )
            lines.append(f"- type: {facts.get('type', 'string')}, since {facts.get('version_added', '?')}")
            lines.append("")
    return "\n".join(lines)


def undocumented_config_options(page: str, config: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """``section.option`` names without a description, or missing from ``page``."""
    return [
        f"{section}.{option}"
        for section, spec in config.items()
        for option, facts in spec["options"].items()
        if not facts.get("description", "").strip() or f"### `{option}`" not in page
    ]
