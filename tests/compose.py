"""Reading docker-compose.yaml the way Compose does, for the tests that check or run the stack.

Shared by ``tests/test_docker_compose.py`` (static checks) and ``tests/cluster`` (the stack run as
processes): both must see the same services, environments, commands and volumes.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = REPO_ROOT / "docker-compose.yaml"


def load_compose(path: Path = COMPOSE_FILE) -> dict[str, Any]:
    """The compose document, YAML anchors and merge keys (``<<``) resolved."""
    document = yaml.safe_load(path.read_text())
    if not isinstance(document, dict):
        raise ValueError(f"{path.name} is not a YAML mapping")
    return document


_INTERPOLATION = re.compile(r"\$\$|\$\{[A-Za-z_][A-Za-z0-9_]*(?::?-([^}]*))?\}|\$[A-Za-z_][A-Za-z0-9_]*")


def with_defaults(value: str) -> str:
    """Interpolate ${VAR:-default} / ${VAR-default} with their defaults, ${VAR} / $VAR as empty, $$ as $.

    The shell's own variables are ignored on purpose: a test must not depend on a developer's .env.
    """
    return _INTERPOLATION.sub(lambda match: "$" if match.group(0) == "$$" else match.group(1) or "", value)


def environment(service: dict) -> dict[str, str]:
    """A service's ``environment`` (mapping or list syntax) as strings, not interpolated."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        return dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {key: "" if value is None else str(value) for key, value in env.items()}


def command_argv(value: str | list | None) -> list[str]:
    """A ``command`` / ``entrypoint`` / healthcheck ``test`` as an argument list."""
    if value is None:
        return []
    return shlex.split(value) if isinstance(value, str) else [str(word) for word in value]


def volumes(service: dict) -> list[tuple[str, str, bool]]:
    """(source, target, read_only) of each volume of a service, short or long syntax."""
    result = []
    for volume in service.get("volumes") or []:
        if isinstance(volume, str):
            parts = volume.split(":")
            source, target = (parts[0], parts[1]) if len(parts) > 1 else ("", parts[0])
            read_only = len(parts) > 2 and "ro" in parts[2].split(",")
        else:
            source, target = volume.get("source", ""), volume["target"]
            read_only = bool(volume.get("read_only"))
        result.append((with_defaults(source), target, read_only))
    return result


def option(argv: list[str], flag: str) -> str | None:
    """The value given to ``flag`` in an argument list (``--flag value`` or ``--flag=value``)."""
    for index, word in enumerate(argv):
        if word == flag and index + 1 < len(argv):
            return argv[index + 1]
        if word.startswith(flag + "="):
            return word.split("=", 1)[1]
    return None
