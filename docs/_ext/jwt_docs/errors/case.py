"""What an error case is, where it runs, and the ways cases reach the provider's public API."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jwt_docs.keys import STORE_PASSWORD, pkcs12, platform_jwt

#: Secrets the cases put in connections (and :data:`~jwt_docs.keys.STORE_PASSWORD`): none may appear in a message.
WRONG_PASSWORD = "docs-wrong-pass-0815"
CLIENT_SECRET = "docs-client-secret-2323"
#: AWS's documented example keys: what the ``aws`` connections of the cases hold (moto accepts any).
AWS_ACCESS_KEY_ID = "AKIAIOSFODNN7EXAMPLE"
AWS_SECRET_ACCESS_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


@dataclass
class Workspace:
    """Where a case runs: a temporary directory, the local server's base URL, and other servers it started.

    ``servers`` pairs the base URL of each server a case starts itself (a TLS authorization server, a
    platform) with the example URL the page shows instead.
    """

    directory: Path
    server: str
    servers: list[tuple[str, str]] = field(default_factory=list)

    def connection(self, conn_id: str, extra: dict[str, Any], **fields: Any) -> str:
        """Define ``conn_id`` as Airflow reads it from the environment; return the id."""
        document = {"conn_type": "jwt_bearer", "login": "my-client", **fields, "extra": extra}
        os.environ[f"AIRFLOW_CONN_{conn_id.upper()}"] = json.dumps(document)
        return conn_id


@dataclass(frozen=True)
class Case:
    """One documented error: how to cause it, the exception the page names, what the user does about it."""

    title: str
    exception: str
    #: the setting (or header, or answer) the message must name
    names: str
    fix: str
    cause: Callable[[Workspace], object]
    #: what stands in for the device, cloud or server the error needs, as the page says (empty: nothing)
    stand_in: str = ""
    #: run in a process of its own: SoftHSM2 reads its configuration once per process, when the
    #: PKCS#11 library is first initialised, so a token made for the case is seen only by a new process
    own_process: bool = False


def parse(ws: Workspace, extra: dict[str, Any], **fields: Any) -> object:
    """The connection parsed as a task would have it parsed (``parse_connection``)."""
    from airflow.sdk import Connection

    from airflow_jwt_provider.connection.parser import parse_connection

    conn_id = fields.pop("conn_id", "box_api")
    document = {"conn_type": "jwt_bearer", "login": "my-client", **fields}
    return parse_connection(Connection(conn_id=conn_id, extra=json.dumps(extra), **document))


def hook(ws: Workspace, conn_id: str, extra: dict[str, Any], **fields: Any) -> Any:
    """A ``JwtBearerHook`` on ``conn_id``, defined in the environment with ``extra``."""
    from airflow_jwt_provider.hooks.jwt_bearer import JwtBearerHook

    return JwtBearerHook(ws.connection(conn_id, extra, **fields))


def key_file_hook(ws: Workspace, key_file: Path, conn_id: str = "box_api", **extra: Any) -> Any:
    """A hook signing with ``key_file`` (store password :data:`STORE_PASSWORD`; ``None`` in ``extra`` unsets a
    setting) whose token endpoint is the local server's."""
    base = {"auth_url": f"{ws.server}/token", "key_file": str(key_file), "keystore_password": STORE_PASSWORD}
    settings = {key: value for key, value in {**base, **extra}.items() if value is not None}
    return hook(ws, conn_id, settings)


def token_hook(ws: Workspace, path: str, conn_id: str = "box_api", **extra: Any) -> Any:
    """A hook with a PKCS#12 key and a client secret whose token endpoint is the local server's ``path``."""
    store = pkcs12(ws.directory / "k.p12")
    base = {"auth_url": f"{ws.server}{path}", "key_file": str(store), "keystore_password": STORE_PASSWORD}
    return hook(ws, conn_id, {**base, **extra}, password=CLIENT_SECRET, host=f"{ws.server}/api")


def platform_file_hook(ws: Workspace, path: str = "/token", *, expired: bool = False, **extra: Any) -> Any:
    """A keyless hook whose JWT is a Kubernetes service-account token in a file (``assertion_source: file``)."""
    token = ws.directory / "token"
    token.write_text(platform_jwt(expired=expired))
    settings = {"auth_url": f"{ws.server}{path}", "assertion_source": "file", "assertion_file": str(token)}
    return hook(ws, "k8s_api", {**settings, **extra})


def aws_connection(conn_id: str = "aws_default", **extra: Any) -> None:
    """An Airflow ``aws`` connection in the environment (the example keys, region eu-west-1)."""
    document = {
        "conn_type": "aws",
        "login": AWS_ACCESS_KEY_ID,
        "password": AWS_SECRET_ACCESS_KEY,
        "extra": {"region_name": "eu-west-1", **extra},
    }
    os.environ[f"AIRFLOW_CONN_{conn_id.upper()}"] = json.dumps(document)
    os.environ["AWS_EC2_METADATA_DISABLED"] = "true"  # boto3 never asks 169.254.169.254 from a build


@contextlib.contextmanager
def without_module(name: str) -> Iterator[None]:
    """``import name`` fails inside the block, as on an installation without the package."""
    saved = sys.modules.get(name)
    sys.modules[name] = None  # type: ignore[assignment]  # Python's documented way to make an import fail
    try:
        yield
    finally:
        if saved is None:
            del sys.modules[name]
        else:
            sys.modules[name] = saved
