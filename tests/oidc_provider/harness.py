"""node-oidc-provider (npm ``oidc-provider`` 9.x, OpenID Certified) as a subprocess: an authorization server nobody
on the project wrote.

``server/server.mjs`` is the prototype of ``/work/research/oidc-harness`` (its README documents the configuration
format): it adds RFC 7523 jwt-bearer and RFC 8693 token exchange grants to oidc-provider and trusts the issuers its
configuration lists. The npm dependencies are installed at test time (:func:`install_node_modules`) into
``server/node_modules`` (git-ignored), from ``server/package-lock.json``, and reused while the lock file is unchanged.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import Any

import requests

SERVER_DIR = Path(__file__).resolve().parent / "server"
NODE_MODULES = SERVER_DIR / "node_modules"
#: Written into node_modules after a successful ``npm ci``: the digest of the lock file it installed.
_STAMP = NODE_MODULES / ".installed-from.sha256"
NPM_CI_TIMEOUT = 300
READY_TIMEOUT = 20
#: How much of the server's stderr assertion messages show.
STDERR_TAIL_LINES = 40

INTROSPECTOR_ID = "introspector"
INTROSPECTOR_SECRET = "introspector-secret-0123456789abcdef"


class HarnessError(RuntimeError):
    """The server could not be installed or started (the message says why, with its output)."""


def _lock_digest() -> str:
    digest = hashlib.sha256()
    for name in ("package.json", "package-lock.json"):
        digest.update((SERVER_DIR / name).read_bytes())
    return digest.hexdigest()


def require_node() -> str:
    """The path of ``node`` (major version 20 or later), or :class:`HarnessError` saying what to install."""
    node = shutil.which("node")
    if node is None:
        raise HarnessError("node is not on PATH: the oidc_provider tests need Node.js 20 or later, and npm")
    version = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=30).stdout.strip()
    try:
        major = int(version.lstrip("v").split(".")[0])
    except ValueError:
        raise HarnessError(f"cannot read the version of {node} ({version!r})") from None
    if major < 20:
        raise HarnessError(f"{node} is {version}; node-oidc-provider 9 needs Node.js 20 or later")
    return node


def install_node_modules() -> Path:
    """``npm ci`` into ``server/node_modules``, unless it already holds what the lock file names.

    A lock in the temporary folder keeps two pytest processes from installing at the same time.
    """
    require_node()
    digest = _lock_digest()
    if _installed(digest):
        return NODE_MODULES
    npm = shutil.which("npm")
    if npm is None:
        raise HarnessError("npm is not on PATH: the oidc_provider tests install node-oidc-provider with npm ci")
    lock_path = Path(tempfile.gettempdir()) / f"oidc-provider-npm-{hashlib.sha256(bytes(SERVER_DIR)).hexdigest()[:16]}"
    with lock_path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _installed(digest):  # another process installed it while this one waited
            return NODE_MODULES
        argv = [npm, "ci", "--no-audit", "--no-fund", "--prefer-offline", "--loglevel=error"]
        try:
            done = subprocess.run(argv, cwd=SERVER_DIR, capture_output=True, text=True, timeout=NPM_CI_TIMEOUT)
        except subprocess.TimeoutExpired:
            raise HarnessError(
                f"npm ci in {SERVER_DIR} did not finish within {NPM_CI_TIMEOUT} s (is the package registry "
                "reachable, or the npm cache filled?)"
            ) from None
        if done.returncode != 0:
            output = (done.stdout + done.stderr).strip().splitlines()[-30:]
            raise HarnessError(f"npm ci in {SERVER_DIR} failed (exit {done.returncode}):\n" + "\n".join(output))
        if not (NODE_MODULES / "oidc-provider" / "package.json").is_file():
            raise HarnessError(f"npm ci in {SERVER_DIR} succeeded but installed no oidc-provider")
        _STAMP.write_text(digest + "\n")
    return NODE_MODULES


def _installed(digest: str) -> bool:
    try:
        stamp = _STAMP.read_text().strip()
    except OSError:
        return False
    return stamp == digest and (NODE_MODULES / "oidc-provider" / "package.json").is_file()


class OidcProviderServer:
    """One ``server.mjs`` process on 127.0.0.1 (a free port), configured by ``config``; its stderr goes to a file.

    An introspection client (:data:`INTROSPECTOR_ID`, ``client_secret_post``) is added to the configuration's
    clients: the server lets any confidential client introspect any token.
    """

    def __init__(self, config: dict[str, Any], workdir: Path) -> None:
        self.workdir = workdir
        self.config = {**config, "clients": [*config.get("clients", []), _introspector()]}
        self.config_path = workdir / "config.json"
        self.stderr_path = workdir / "server.stderr.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.issuer = ""

    @property
    def token_url(self) -> str:
        return f"{self.issuer}/token"

    @property
    def introspection_url(self) -> str:
        return f"{self.issuer}/token/introspection"

    def start(self) -> OidcProviderServer:
        node = require_node()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(json.dumps(self.config, indent=2))
        argv = [node, str(SERVER_DIR / "server.mjs"), "--config", str(self.config_path), "--port", "0"]
        argv.append("--watch-stdin")  # exits when this process goes away and its stdin closes
        with self.stderr_path.open("wb") as stderr:
            self.process = subprocess.Popen(
                argv, cwd=SERVER_DIR, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr
            )
        lines: list[bytes] = []
        stdout = self.process.stdout
        assert stdout is not None
        reader = threading.Thread(target=lambda: lines.append(stdout.readline()), daemon=True)
        reader.start()
        reader.join(READY_TIMEOUT)
        if not lines or not lines[0].strip():
            state = "exited with " + str(self.process.poll()) if self.process.poll() is not None else "still silent"
            self.stop()
            raise HarnessError(
                f"server.mjs wrote no ready line within {READY_TIMEOUT} s ({state})\n{self.stderr_tail()}"
            )
        try:
            self.issuer = json.loads(lines[0])["issuer"]
        except (ValueError, KeyError):
            self.stop()
            raise HarnessError(f"server.mjs wrote {lines[0][:200]!r} instead of its ready line") from None
        return self

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            assert process.stdin is not None
            process.stdin.close()  # --watch-stdin: the server exits at end of input
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.terminate()
                try:
                    process.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout=5)
        if process.stdout is not None:
            process.stdout.close()

    def __enter__(self) -> OidcProviderServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stderr_tail(self, lines: int = STDERR_TAIL_LINES) -> str:
        try:
            text = self.stderr_path.read_text(errors="replace")
        except OSError:
            text = "(no stderr file)"
        tail = "\n".join(text.splitlines()[-lines:])
        return f"--- node-oidc-provider stderr ({self.stderr_path}), last {lines} lines ---\n{tail}"

    def log_mark(self) -> int:
        """Where the server's stderr ends now: :meth:`log_since` reads what it writes after."""
        try:
            return self.stderr_path.stat().st_size
        except OSError:
            return 0

    def log_since(self, mark: int) -> str:
        """What the server wrote to stderr since :meth:`log_mark` returned ``mark`` (with debug: every refusal)."""
        with self.stderr_path.open("rb") as stderr:
            stderr.seek(mark)
            return stderr.read().decode(errors="replace")

    def explain(self, what: object) -> str:
        """``what`` and the tail of the server's stderr: the message of a failed assertion."""
        return f"{what}\n{self.stderr_tail()}"

    def introspect(self, token: str) -> dict[str, Any]:
        """RFC 7662 introspection of ``token`` (as :data:`INTROSPECTOR_ID`): what the server decided it is."""
        response = requests.post(
            self.introspection_url,
            data={"token": token, "client_id": INTROSPECTOR_ID, "client_secret": INTROSPECTOR_SECRET},
            timeout=10,
        )
        assert response.status_code == 200, self.explain(
            f"introspection answered {response.status_code}: {response.text}"
        )
        body: dict[str, Any] = response.json()
        return body


def _introspector() -> dict[str, Any]:
    return {
        "client_id": INTROSPECTOR_ID,
        "client_secret": INTROSPECTOR_SECRET,
        "token_endpoint_auth_method": "client_secret_post",
        "grant_types": ["client_credentials"],
        "response_types": [],
        "redirect_uris": [],
    }
