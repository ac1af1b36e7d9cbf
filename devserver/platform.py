"""A fake *workload platform* on 127.0.0.1: the thing that hands a workload short-lived signed JWTs.

Why this exists: the provider's keyless assertion sources (a projected token file, GitHub Actions'
OIDC token service, the GCP metadata server, AWS STS ``GetWebIdentityToken``) each read a JWT that a
platform signs. Mocking ``requests.get`` or ``open`` would test our guesses about those platforms;
this module serves them over real HTTP and writes real files, with the shapes the platforms document,
so the provider's code meets the same bytes, headers, query strings and error answers it will meet
in production. One :class:`LocalPlatform` plays every platform at once, on one port:

* an **OIDC issuer** (issuer = its base URL): ``GET /.well-known/openid-configuration`` answers the
  discovery document the Kubernetes API server serves, ``GET /openid/v1/jwks`` the public keys (also at
  ``/.well-known/jwks.json``, the path AWS's outbound-federation issuers use). An authorization server
  configured to trust the issuer by discovery verifies every token below. Keys: RSA-2048 (RS256, the
  default), P-256 (ES256) and P-384 (ES384, which STS signs with on request); :meth:`LocalPlatform.
  rotate_signing_key` swaps a key and keeps the previous public key published, as issuers do while the
  tokens it signed are still alive;
* **projected token files**, written the way the kubelet writes a ``serviceAccountToken`` projection
  (:meth:`LocalPlatform.project`, :class:`ProjectedToken`);
* **GitHub Actions' OIDC token service**: ``GET /_github/token?api-version=2.0&audience=X`` with
  ``Authorization: bearer <ACTIONS_ID_TOKEN_REQUEST_TOKEN>`` answers ``{"value": "<JWT>"}``;
* the **GCP metadata server**'s identity endpoint:
  ``GET /computeMetadata/v1/instance/service-accounts/default/identity?audience=X[&format=full]``;
* **AWS STS** ``GetWebIdentityToken`` (IAM outbound identity federation, which moto does not
  implement), in the AWS query protocol botocore speaks: ``POST /`` form-encoded, XML answers.

Every token carries ``iss`` = :attr:`LocalPlatform.url`, whatever platform it imitates (the real ones
say ``https://kubernetes.default.svc``, ``https://token.actions.githubusercontent.com``,
``https://accounts.google.com``, ``https://<id>.tokens.sts.global.api.aws``): the issuer must be this
server for discovery to reach its keys.

No minted token and no GitHub request token is ever logged or recorded: :attr:`LocalPlatform.minted`
keeps ``sub``/``aud``/``exp``/``jti`` only, :attr:`LocalPlatform.records` method, path, status and the
audience asked for.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import os
import re
import secrets
import tempfile
import threading
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from flask import Flask, Response, g, jsonify, request
from jwt.algorithms import ECAlgorithm, RSAAlgorithm
from werkzeug.serving import WSGIRequestHandler

from devserver.web import ServingThread, is_loopback

__all__ = [
    "DEFAULT_AWS_ROLE_ARN",
    "DISCOVERY_PATH",
    "GCP_IDENTITY_PATH",
    "GITHUB_TOKEN_PATH",
    "JWKS_PATH",
    "LocalPlatform",
    "MintedToken",
    "ProjectedToken",
]

log = logging.getLogger("devserver.platform")

DISCOVERY_PATH = "/.well-known/openid-configuration"
JWKS_PATH = "/openid/v1/jwks"  # the Kubernetes API server's path
JWKS_ALIAS_PATH = "/.well-known/jwks.json"  # AWS outbound-federation issuers publish their keys here
GITHUB_TOKEN_PATH = "/_github/token"
GITHUB_API_VERSION = "2.0"
GCP_IDENTITY_PATH = "/computeMetadata/v1/instance/service-accounts/default/identity"
#: Content type of the metadata server's identity token. Google's pages do not state it; this is what
#: the salrashid123/gce_metadata_server emulator answers (its errors too). Clients read the body as text.
GCP_IDENTITY_CONTENT_TYPE = "text/html"
STS_NAMESPACE = "https://sts.amazonaws.com/doc/2011-06-15/"
STS_CLAIMS_NAMESPACE = "https://sts.amazonaws.com/"
DEFAULT_AWS_ROLE_ARN = "arn:aws:iam::123456789012:role/airflow"

Algorithm = Literal["RS256", "ES256", "ES384"]
Layout = Literal["kubelet", "file"]

#: The signing algorithms and the key each one needs: RSA-2048 for RS256, P-256 for ES256, P-384 for
#: ES384 (the only two STS offers are RS256 and ES384).
_KEY_FACTORIES: dict[str, Callable[[], Any]] = {
    "RS256": lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048),
    "ES256": lambda: ec.generate_private_key(ec.SECP256R1()),
    "ES384": lambda: ec.generate_private_key(ec.SECP384R1()),
}

#: STS ``GetWebIdentityToken`` limits, from botocore's model of the operation (sts 2011-06-15):
#: ``webIdentityTokenDurationSecondsType`` 60..3600 (default 300 per its documentation),
#: ``webIdentityTokenAudienceListType`` 1..10 members, ``jwtAlgorithmType`` RS256 or ES384.
STS_MIN_DURATION, STS_MAX_DURATION, STS_DEFAULT_DURATION = 60, 3600, 300
STS_MAX_AUDIENCES = 10
STS_ALGORITHMS = ("RS256", "ES384")
#: HTTP status of the STS errors :meth:`LocalPlatform.fail_next_sts` may inject: the three modelled
#: errors of the operation carry theirs in botocore's model; the rest are STS's common errors.
STS_ERROR_STATUS = {
    "OutboundWebIdentityFederationDisabledException": 403,
    "SessionDurationEscalationException": 403,
    "JWTPayloadSizeExceededException": 400,
    "AccessDenied": 403,
    "ExpiredToken": 400,
    "InvalidClientTokenId": 403,
    "MissingAuthenticationToken": 403,
    "ValidationError": 400,
    "Throttling": 400,
    "InvalidAction": 400,
}
_STS_DEFAULT_MESSAGES = {
    "OutboundWebIdentityFederationDisabledException": (
        "The outbound web identity federation feature is not enabled for this account."
    ),
    "SessionDurationEscalationException": (
        "The requested token duration would extend the session beyond its original expiration time."
    ),
    "JWTPayloadSizeExceededException": "The requested token payload size exceeds the maximum allowed size.",
    "AccessDenied": "User: {arn} is not authorized to perform: sts:GetWebIdentityToken",
    "ExpiredToken": "The security token included in the request is expired",
    "InvalidClientTokenId": "The security token included in the request is invalid.",
}
_CREDENTIAL_SCOPE = re.compile(r"Credential=[^/,\s]+/\d{8}/([a-z0-9-]+)/sts/aws4_request")

#: The kubelet refreshes a projected token once it is older than 80 % of its lifetime or 24 hours.
KUBELET_REFRESH_FRACTION = 0.8
KUBELET_REFRESH_CAP = 24 * 3600


# --------------------------------------------------------------------------- keys


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


@dataclass(frozen=True)
class _SigningKey:
    """One private key, its algorithm and its ``kid`` (the RFC 7638 thumbprint of its public JWK)."""

    algorithm: str
    private_key: Any = field(repr=False)
    public_jwk: dict[str, str] = field(repr=False)
    kid: str

    @classmethod
    def generate(cls, algorithm: str) -> _SigningKey:
        private_key = _KEY_FACTORIES[algorithm]()
        public_key = private_key.public_key()
        if algorithm.startswith("RS"):
            members = RSAAlgorithm.to_jwk(public_key, as_dict=True)
            required = {name: members[name] for name in ("e", "kty", "n")}
        else:
            members = ECAlgorithm.to_jwk(public_key, as_dict=True)
            required = {name: members[name] for name in ("crv", "kty", "x", "y")}
        canonical = json.dumps(required, sort_keys=True, separators=(",", ":")).encode("utf-8")
        kid = _b64url(hashlib.sha256(canonical).digest())
        return cls(algorithm, private_key, {**required, "use": "sig", "alg": algorithm, "kid": kid}, kid)


# --------------------------------------------------------------------------- records


@dataclass(frozen=True)
class MintedToken:
    """What the platform remembers of a token it signed: never the token itself."""

    sub: str | None
    aud: tuple[str, ...]
    exp: int | None
    jti: str | None
    iat: int | None
    alg: str
    kid: str
    via: str  # "mint", "kubernetes", "github", "gcp", "aws"


# --------------------------------------------------------------------------- projected files


class ProjectedToken:
    """A token file kept up to date the way the kubelet keeps a ``serviceAccountToken`` projection.

    Every write is atomic: a reader of :attr:`path` sees the previous token or the next one, never
    a mix or an empty file. ``layout="kubelet"`` (the default) reproduces the kubelet's AtomicWriter
    (``pkg/volume/util/atomic_writer.go``): the file ``path`` is a symlink to ``..data/<name>``,
    ``..data`` a symlink to a timestamped directory ``..2025_01_31_12_00_00.<random>`` holding the
    token; a write makes a new timestamped directory and renames a new ``..data_tmp`` symlink over
    ``..data`` (one ``rename(2)``). ``layout="file"`` writes a temporary file next to ``path`` and
    renames it over ``path``.

    The kubelet then removes the previous timestamped directory at once, so a reader that resolved
    ``..data`` just before the swap can get ENOENT for an instant (our tests catch it within 200
    rotations). By default the previous directory is kept until the next write, and a read never
    fails; ``keep_previous_data=False`` removes it at once, as the kubelet does, for the tests of a
    reader that must retry.

    :meth:`rotate` writes a new token for the same identity; :meth:`start_auto_rotation` does it in
    the background at the kubelet's pace (80 % of the lifetime, at most 24 h, measured from the last
    write), until :meth:`stop`. :meth:`write` and :meth:`expire_now` write what a test needs.
    """

    def __init__(
        self,
        path: Path,
        mint: Callable[[float | None, int], str],
        lifetime: int,
        layout: Layout = "kubelet",
        *,
        keep_previous_data: bool = True,
    ) -> None:
        if layout not in ("kubelet", "file"):
            raise ValueError(f"layout must be 'kubelet' or 'file', not {layout!r}")
        self.path = path
        self.lifetime = lifetime
        self.layout: Layout = layout
        self.keep_previous_data = keep_previous_data
        self.rotations = 0
        self._mint = mint
        self._lock = threading.RLock()
        self._token = ""
        self._written_at = 0.0
        self._data_dirs: list[Path] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        return f"ProjectedToken(path={str(self.path)!r}, lifetime={self.lifetime}, rotations={self.rotations})"

    @property
    def token(self) -> str:
        """The token last written by this handle (what :attr:`path` holds)."""
        with self._lock:
            return self._token

    @property
    def refresh_interval(self) -> float:
        """Seconds between automatic rotations: the kubelet's 80 % of the lifetime, at most 24 hours."""
        return min(self.lifetime * KUBELET_REFRESH_FRACTION, KUBELET_REFRESH_CAP)

    def rotate(self) -> str:
        """Write a new token for the same identity, issued now; counts in :attr:`rotations`."""
        with self._lock:
            token = self._mint(None, self.lifetime)
            self.write(token)
            self.rotations += 1
            return token

    def expire_now(self) -> str:
        """Write an already-expired token for the same identity (issued 1000 s ago, lived 10 s)."""
        token = self._mint(time.time() - 1000, 10)
        self.write(token)
        return token

    def write(self, token: str) -> None:
        """Write ``token`` (any text: a test may write garbage) atomically to :attr:`path`."""
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if self.layout == "kubelet":
                self._write_kubelet(token)
            else:
                self._write_file(token)
            self._token = token
            self._written_at = time.monotonic()

    def _write_file(self, token: str) -> None:
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", encoding="ascii") as handle:
                handle.write(token)
            os.chmod(tmp, 0o600)
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def _write_kubelet(self, token: str) -> None:
        directory = self.path.parent
        stamp = time.strftime("%Y_%m_%d_%H_%M_%S", time.gmtime())
        data_dir = Path(tempfile.mkdtemp(prefix=f"..{stamp}.", dir=directory))
        (data_dir / self.path.name).write_text(token, encoding="ascii")
        os.chmod(data_dir / self.path.name, 0o600)
        os.chmod(data_dir, 0o755)
        tmp_link = directory / "..data_tmp"
        tmp_link.unlink(missing_ok=True)
        os.symlink(data_dir.name, tmp_link)
        os.replace(tmp_link, directory / "..data")
        if not self.path.is_symlink():
            user_link = directory / f".{self.path.name}.link_tmp"
            user_link.unlink(missing_ok=True)
            os.symlink(f"..data/{self.path.name}", user_link)
            os.replace(user_link, self.path)
        self._data_dirs.append(data_dir)
        while len(self._data_dirs) > (2 if self.keep_previous_data else 1):
            old = self._data_dirs.pop(0)
            (old / self.path.name).unlink(missing_ok=True)
            old.rmdir()

    @property
    def auto_rotating(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start_auto_rotation(self) -> None:
        """Rotate in a daemon thread every :attr:`refresh_interval` seconds after the last write."""
        if self.auto_rotating:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._auto_rotate, name=f"projected-token-{self.path.name}", daemon=True)
        self._thread.start()

    def _auto_rotate(self) -> None:
        while True:
            with self._lock:
                due = self._written_at + self.refresh_interval
            if self._stop.wait(max(0.0, due - time.monotonic())):
                return
            with self._lock:
                if time.monotonic() >= self._written_at + self.refresh_interval:
                    self.rotate()

    def stop(self) -> None:
        """Stop the automatic rotation (if any); the file stays. Safe to call twice."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)


# --------------------------------------------------------------------------- HTTP plumbing


class _QuietHandler(WSGIRequestHandler):
    """Logs request lines at DEBUG: they hold paths and audiences, never a header or a token."""

    def log(self, type: str, message: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), message % args if args else message)


class _StsError(Exception):
    def __init__(self, code: str, message: str, status: int) -> None:
        super().__init__(code)
        self.code, self.message, self.status = code, message, status


@dataclass
class _InjectedStsError:
    code: str
    message: str | None
    status: int
    remaining: int


# --------------------------------------------------------------------------- the platform


class LocalPlatform:
    """OIDC issuer + the platforms' token services in a background thread; see the module docstring.

    Identities (constructor arguments, plain attributes afterwards): ``github_repository``
    (``owner/repo``), ``github_ref`` and ``github_workflow`` for GitHub Actions tokens;
    ``gcp_service_account`` (an email) and ``gcp_project_id`` for GCP identity tokens; ``aws_role_arn``
    for the ``sub`` of STS tokens. Kubernetes identities are given per token.

    Knobs (plain attributes; :meth:`reset` restores them): ``clock_offset`` (seconds added to the
    real clock when the platform's services mint a token).

    Records (lists, appended under a lock; never a token): :attr:`minted` (:class:`MintedToken`, one
    per signed token), :attr:`records` (one dict per HTTP request: ``method``, ``path``, ``status``,
    ``service``, and ``audience`` when one was asked for), and the counter :attr:`jwks_fetches`.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        github_repository: str = "octo-org/octo-repo",
        github_ref: str = "refs/heads/main",
        github_workflow: str = "deploy",
        gcp_service_account: str = "airflow@demo-project.iam.gserviceaccount.com",
        gcp_project_id: str = "demo-project",
        aws_role_arn: str = DEFAULT_AWS_ROLE_ARN,
    ) -> None:
        if not is_loopback(host):
            raise ValueError(f"the platform serves loopback clients only, not {host!r}")
        self.host = host
        self.port = port
        self.github_repository = github_repository
        self.github_ref = github_ref
        self.github_workflow = github_workflow
        self.gcp_service_account = gcp_service_account
        self.gcp_project_id = gcp_project_id
        self.aws_role_arn = aws_role_arn
        #: the bearer token of GitHub's token service (``ACTIONS_ID_TOKEN_REQUEST_TOKEN``)
        self.github_request_token = secrets.token_urlsafe(32)
        self._lock = threading.RLock()
        self._keys: dict[str, _SigningKey] = {alg: _SigningKey.generate(alg) for alg in _KEY_FACTORIES}
        self._previous_keys: dict[str, _SigningKey] = {}
        self._projections: list[ProjectedToken] = []
        self._serving = ServingThread("devserver-platform", _QuietHandler)
        self._reset_state()
        self.app = self._build_app()

    # ----------------------------------------------------------------- lifecycle

    def start(self) -> LocalPlatform:
        """Listen (port 0 = any free port) and serve from a daemon thread."""
        self.port = self._serving.start(self.host, self.port, self.app)
        log.debug("platform listening on %s", self.url)
        return self

    def stop(self) -> None:
        """Stop serving, free the port and stop every projection's auto-rotation; safe to call twice."""
        with self._lock:
            projections, self._projections = self._projections, []
        for projection in projections:
            projection.stop()
        self._serving.stop()

    def __enter__(self) -> LocalPlatform:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """Base URL, which is also the issuer (``iss``) of every token."""
        return f"http://{self.metadata_host}"

    @property
    def issuer(self) -> str:
        return self.url

    @property
    def discovery_url(self) -> str:
        return self.url + DISCOVERY_PATH

    @property
    def jwks_uri(self) -> str:
        return self.url + JWKS_PATH

    @property
    def metadata_host(self) -> str:
        """``host:port`` as ``GCE_METADATA_HOST`` takes it."""
        if not self._serving.running:
            raise RuntimeError("platform not started")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def github_token_url(self) -> str:
        """``ACTIONS_ID_TOKEN_REQUEST_URL``: with a query string already, as GitHub's has."""
        return f"{self.url}{GITHUB_TOKEN_PATH}?api-version={GITHUB_API_VERSION}"

    def github_environment(self) -> dict[str, str]:
        """The two variables GitHub gives a job with ``permissions: id-token: write``."""
        return {
            "ACTIONS_ID_TOKEN_REQUEST_URL": self.github_token_url,
            "ACTIONS_ID_TOKEN_REQUEST_TOKEN": self.github_request_token,
        }

    def now(self) -> float:
        """The platform's clock: real time shifted by ``clock_offset``."""
        return time.time() + self.clock_offset

    def reset(self) -> None:
        """Forget records, minted tokens, the JWKS counter and injected STS errors; keep keys and files."""
        with self._lock:
            self._reset_state()

    def _reset_state(self) -> None:
        self.clock_offset: float = 0.0
        self.minted: list[MintedToken] = []
        self.records: list[dict[str, Any]] = []
        self.jwks_fetches = 0
        self._sts_failures: list[_InjectedStsError] = []

    # ----------------------------------------------------------------- keys

    def signing_kid(self, algorithm: Algorithm = "RS256") -> str:
        """The ``kid`` that signs ``algorithm`` tokens now."""
        with self._lock:
            return self._keys[algorithm].kid

    def rotate_signing_key(self, algorithm: Algorithm = "RS256") -> str:
        """A new key signs ``algorithm`` tokens from now on; the previous one stays in the JWKS.

        Only one previous key per algorithm is kept, as issuers keep the old key only as long as
        the tokens it signed may live: rotating twice drops the first key. Returns the new ``kid``.
        """
        key = _SigningKey.generate(algorithm)
        with self._lock:
            self._previous_keys[algorithm] = self._keys[algorithm]
            self._keys[algorithm] = key
        return key.kid

    def retire_previous_keys(self) -> None:
        """Drop the previous keys from the JWKS (the end of a rotation): their tokens stop verifying."""
        with self._lock:
            self._previous_keys.clear()

    def jwks(self) -> dict[str, Any]:
        """The JWK Set served at :attr:`jwks_uri`: current keys first, then previous ones."""
        with self._lock:
            keys = [*self._keys.values(), *self._previous_keys.values()]
        return {"keys": [dict(key.public_jwk) for key in keys]}

    def discovery_document(self) -> dict[str, Any]:
        """The OpenID discovery document, in the shape the Kubernetes API server serves."""
        return {
            "issuer": self.issuer,
            "jwks_uri": self.jwks_uri,
            "response_types_supported": ["id_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": list(_KEY_FACTORIES),
        }

    # ----------------------------------------------------------------- minting

    def mint(
        self,
        subject: str,
        audience: str | Sequence[str],
        lifetime: int = 600,
        claims: Mapping[str, Any] | None = None,
        *,
        issued_at: float | None = None,
        algorithm: Algorithm = "RS256",
        aud_as_string: bool = False,
        via: str = "mint",
    ) -> str:
        """A signed JWT: ``iss``, ``sub``, ``aud``, ``iat``, ``nbf``, ``exp``, ``jti``, then ``claims``.

        ``aud`` is a list, as Kubernetes writes it, unless ``aud_as_string`` (one audience, as GitHub,
        Google and STS with one audience write it). ``claims`` may override the standard claims; a
        claim given as None is left out (a token without ``exp``, say). ``issued_at`` defaults to the
        platform's clock. The token is recorded in :attr:`minted` (never the token itself).
        """
        audiences = [audience] if isinstance(audience, str) else list(audience)
        issued = int(self.now() if issued_at is None else issued_at)
        payload: dict[str, Any] = {
            "iss": self.issuer,
            "sub": subject,
            "aud": audiences[0] if aud_as_string and len(audiences) == 1 else audiences,
            "iat": issued,
            "nbf": issued,
            "exp": issued + lifetime,
            "jti": str(uuid.uuid4()),
        }
        payload.update(claims or {})
        payload = {name: value for name, value in payload.items() if value is not None}
        with self._lock:
            key = self._keys[algorithm]
        token = jwt.encode(payload, key.private_key, algorithm=algorithm, headers={"kid": key.kid, "typ": "JWT"})
        aud = payload.get("aud")
        record = MintedToken(
            sub=payload.get("sub"),
            aud=(aud,) if isinstance(aud, str) else tuple(aud or ()),
            exp=payload.get("exp"),
            jti=payload.get("jti"),
            iat=payload.get("iat"),
            alg=algorithm,
            kid=key.kid,
            via=via,
        )
        with self._lock:
            self.minted.append(record)
        return token

    @staticmethod
    def kubernetes_identity(
        namespace: str = "default", service_account: str = "airflow", pod: str = "airflow-worker-0"
    ) -> tuple[str, dict[str, Any]]:
        """``sub`` and the ``kubernetes.io`` claim of a pod's service account token.

        The uids are derived from the names, so every token of one pod names the same uids.
        """
        sa_uid = uuid.uuid5(uuid.NAMESPACE_URL, f"k8s:serviceaccount:{namespace}/{service_account}")
        pod_uid = uuid.uuid5(uuid.NAMESPACE_URL, f"k8s:pod:{namespace}/{pod}")
        claim = {
            "namespace": namespace,
            "serviceaccount": {"name": service_account, "uid": str(sa_uid)},
            "pod": {"name": pod, "uid": str(pod_uid)},
        }
        return f"system:serviceaccount:{namespace}:{service_account}", {"kubernetes.io": claim}

    def mint_kubernetes(
        self,
        audience: str | Sequence[str],
        *,
        namespace: str = "default",
        service_account: str = "airflow",
        pod: str = "airflow-worker-0",
        lifetime: int = 3600,
        issued_at: float | None = None,
    ) -> str:
        """A projected service account token (``sub`` ``system:serviceaccount:<ns>:<name>``)."""
        subject, claims = self.kubernetes_identity(namespace, service_account, pod)
        return self.mint(subject, audience, lifetime, claims, issued_at=issued_at, via="kubernetes")

    def github_claims(self) -> tuple[str, dict[str, Any]]:
        """``sub`` and the claims of a GitHub Actions token for the job of :attr:`github_repository`."""
        owner = self.github_repository.split("/", 1)[0]
        workflow_ref = f"{self.github_repository}/.github/workflows/{self.github_workflow}.yml@{self.github_ref}"
        sha = hashlib.sha1(self.github_repository.encode("utf-8")).hexdigest()
        ref_type = "tag" if self.github_ref.startswith("refs/tags/") else "branch"
        claims = {
            "ref": self.github_ref,
            "ref_type": ref_type,
            "sha": sha,
            "repository": self.github_repository,
            "repository_owner": owner,
            "repository_visibility": "private",
            "actor": "octocat",
            "workflow": self.github_workflow,
            "workflow_ref": workflow_ref,
            "job_workflow_ref": workflow_ref,
            "event_name": "push",
            "run_id": "1234567890",
            "run_number": "42",
            "run_attempt": "1",
            "runner_environment": "github-hosted",
        }
        return f"repo:{self.github_repository}:ref:{self.github_ref}", claims

    def github_default_audience(self) -> str:
        """The audience GitHub uses when none is asked for: the URL of the repository owner."""
        return "https://github.com/" + self.github_repository.split("/", 1)[0]

    def mint_github_actions(
        self,
        audience: str | None = None,
        *,
        lifetime: int = 300,
        claims: Mapping[str, Any] | None = None,
        issued_at: float | None = None,
    ) -> str:
        """A GitHub Actions OIDC token (about five minutes, ``aud`` a string) for the configured job."""
        subject, base = self.github_claims()
        return self.mint(
            subject,
            audience or self.github_default_audience(),
            lifetime,
            {**base, **(claims or {})},
            issued_at=issued_at,
            aud_as_string=True,
            via="github",
        )

    def gcp_claims(self, *, full: bool = False) -> tuple[str, dict[str, Any]]:
        """``sub`` (the service account's numeric id) and claims of a metadata-server identity token.

        ``azp`` is always there; ``format=full`` adds ``email``, ``email_verified`` and the ``google``
        claim with the instance's details.
        """
        digest = hashlib.sha256(self.gcp_service_account.encode("utf-8")).digest()
        unique_id = str(int.from_bytes(digest[:8], "big") % 10**21).rjust(21, "1")
        claims: dict[str, Any] = {"azp": unique_id}
        if full:
            project_number = int.from_bytes(digest[8:13], "big") % 10**12
            claims |= {
                "email": self.gcp_service_account,
                "email_verified": True,
                "google": {
                    "compute_engine": {
                        "instance_creation_timestamp": 1700000000,
                        "instance_id": str(int.from_bytes(digest[13:21], "big")),
                        "instance_name": "airflow-worker",
                        "project_id": self.gcp_project_id,
                        "project_number": project_number,
                        "zone": "europe-west1-b",
                    }
                },
            }
        return unique_id, claims

    def mint_gcp_identity(
        self, audience: str, *, full: bool = False, lifetime: int = 3600, issued_at: float | None = None
    ) -> str:
        """An identity token of :attr:`gcp_service_account`, as the metadata server signs it (one hour)."""
        subject, claims = self.gcp_claims(full=full)
        return self.mint(subject, audience, lifetime, claims, issued_at=issued_at, aud_as_string=True, via="gcp")

    def mint_aws_web_identity(
        self,
        audiences: Sequence[str],
        *,
        algorithm: Algorithm = "RS256",
        duration: int = STS_DEFAULT_DURATION,
        tags: Mapping[str, str] | None = None,
        region: str = "us-east-1",
    ) -> str:
        """A ``GetWebIdentityToken`` JWT for :attr:`aws_role_arn`.

        Claims as AWS's "Understanding token claims" page shows them: ``sub`` the principal's ARN,
        ``aud`` a string for one audience, and under ``https://sts.amazonaws.com/`` the account, the
        region called, ``principal_id`` and the request tags.
        """
        account = self.aws_role_arn.split(":")[4] if self.aws_role_arn.count(":") >= 5 else ""
        namespaced: dict[str, Any] = {
            "aws_account": account,
            "source_region": region,
            "principal_id": self.aws_role_arn,
        }
        if tags:
            namespaced["request_tags"] = dict(tags)
        return self.mint(
            self.aws_role_arn,
            list(audiences),
            duration,
            {STS_CLAIMS_NAMESPACE: namespaced},
            algorithm=algorithm,
            aud_as_string=len(audiences) == 1,
            via="aws",
        )

    # ----------------------------------------------------------------- projected files

    def project(
        self,
        path: str | os.PathLike[str],
        subject: str,
        audience: str | Sequence[str],
        lifetime: int = 3600,
        claims: Mapping[str, Any] | None = None,
        *,
        auto_rotate: bool = False,
        layout: Layout = "kubelet",
        keep_previous_data: bool = True,
    ) -> ProjectedToken:
        """Write a token for ``subject`` to ``path`` now, as the kubelet does; see :class:`ProjectedToken`.

        With the kubelet layout, one projection per directory (the kubelet's ``..data`` swap replaces
        the directory's whole content). :meth:`stop` stops the auto-rotation of every projection.
        """
        target = Path(path)
        audiences = [audience] if isinstance(audience, str) else list(audience)
        frozen_claims = dict(claims or {})
        with self._lock:
            for other in self._projections:
                if layout == "kubelet" and other.layout == "kubelet" and other.path.parent == target.parent:
                    raise ValueError(f"{target.parent} already holds a kubelet-layout projection ({other.path.name})")

        def mint(issued_at: float | None, token_lifetime: int) -> str:
            return self.mint(subject, audiences, token_lifetime, frozen_claims, issued_at=issued_at, via="kubernetes")

        projection = ProjectedToken(target, mint, lifetime, layout, keep_previous_data=keep_previous_data)
        projection.write(mint(None, lifetime))
        with self._lock:
            self._projections.append(projection)
        if auto_rotate:
            projection.start_auto_rotation()
        return projection

    def project_service_account(
        self,
        path: str | os.PathLike[str],
        audience: str | Sequence[str],
        *,
        namespace: str = "default",
        service_account: str = "airflow",
        pod: str = "airflow-worker-0",
        lifetime: int = 3600,
        auto_rotate: bool = False,
        layout: Layout = "kubelet",
        keep_previous_data: bool = True,
    ) -> ProjectedToken:
        """:meth:`project` with a Kubernetes service account's ``sub`` and ``kubernetes.io`` claim."""
        subject, claims = self.kubernetes_identity(namespace, service_account, pod)
        return self.project(
            path,
            subject,
            audience,
            lifetime,
            claims,
            auto_rotate=auto_rotate,
            layout=layout,
            keep_previous_data=keep_previous_data,
        )

    # ----------------------------------------------------------------- STS knob

    def fail_next_sts(
        self, code: str, message: str | None = None, *, status: int | None = None, count: int = 1
    ) -> None:
        """Answer the next ``count`` authenticated STS calls with the error ``code``.

        ``status`` defaults to the error's status in :data:`STS_ERROR_STATUS` (400 for other codes);
        ``message`` to a text in AWS's words.
        """
        failure = _InjectedStsError(code, message, status or STS_ERROR_STATUS.get(code, 400), count)
        with self._lock:
            self._sts_failures.append(failure)

    def _take_sts_failure(self) -> _StsError | None:
        with self._lock:
            if not self._sts_failures:
                return None
            failure = self._sts_failures[0]
            failure.remaining -= 1
            if failure.remaining <= 0:
                self._sts_failures.pop(0)
        message = failure.message or _STS_DEFAULT_MESSAGES.get(failure.code, f"{failure.code} (injected)")
        return _StsError(failure.code, message.format(arn=self.aws_role_arn), failure.status)

    # ----------------------------------------------------------------- HTTP

    def _build_app(self) -> Flask:
        app = Flask("devserver.platform")
        app.json.sort_keys = False  # type: ignore[attr-defined]
        app.add_url_rule(DISCOVERY_PATH, "discovery", self._discovery, methods=["GET"])
        app.add_url_rule(JWKS_PATH, "jwks", self._jwks, methods=["GET"])
        app.add_url_rule(JWKS_ALIAS_PATH, "jwks_alias", self._jwks, methods=["GET"])
        app.add_url_rule(GITHUB_TOKEN_PATH, "github_token", self._github_token, methods=["GET"])
        app.add_url_rule(GCP_IDENTITY_PATH, "gcp_identity", self._gcp_identity, methods=["GET"])
        app.add_url_rule("/", "sts", self._sts, methods=["POST"])
        app.after_request(self._record)
        app.register_error_handler(404, self._not_found)
        app.register_error_handler(405, self._not_allowed)
        return app

    def _record(self, response: Response) -> Response:
        record: dict[str, Any] = {
            "method": request.method,
            "path": request.path,
            "status": response.status_code,
            "service": g.get("service"),
        }
        if g.get("audience") is not None:
            record["audience"] = g.audience
        with self._lock:
            self.records.append(record)
        return response

    @staticmethod
    def _not_found(exc: Exception) -> tuple[Response, int]:
        return jsonify(error="not_found", error_description=f"no route for {request.path}"), 404

    @staticmethod
    def _not_allowed(exc: Exception) -> tuple[Response, int]:
        return jsonify(error="method_not_allowed", error_description=f"{request.method} not allowed"), 405

    # OIDC issuer

    def _discovery(self) -> Response:
        g.service = "oidc"
        return jsonify(self.discovery_document())

    def _jwks(self) -> Response:
        g.service = "oidc"
        with self._lock:
            self.jwks_fetches += 1
        response = jsonify(self.jwks())
        response.content_type = "application/jwk-set+json"  # what the Kubernetes API server answers
        return response

    # GitHub Actions

    def _github_token(self) -> Response | tuple[Response, int]:
        g.service = "github"
        scheme, _, credential = (request.headers.get("Authorization") or "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            credential.strip().encode("utf-8"), self.github_request_token.encode("utf-8")
        ):
            return jsonify(message="Bad credentials: send 'Authorization: bearer $ACTIONS_ID_TOKEN_REQUEST_TOKEN'"), 403
        version = request.args.get("api-version")
        if version != GITHUB_API_VERSION:
            # A client that adds "?audience=" to a URL that already has a query string sends
            # "api-version=2.0?audience=...": refused, as the real service refuses an unknown version.
            return jsonify(message=f"invalid api-version {version!r}: append '&audience=' to the URL"), 400
        audience = request.args.get("audience") or self.github_default_audience()
        g.audience = audience
        return jsonify(value=self.mint_github_actions(audience))

    # GCP metadata server

    def _gcp_identity(self) -> Response:
        g.service = "gcp"
        if "X-Forwarded-For" in request.headers:
            return self._metadata_answer(f"{request.path} refuses proxied requests (X-Forwarded-For)", 403)
        if request.headers.get("Metadata-Flavor") != "Google":
            return self._metadata_answer('Missing required header "Metadata-Flavor": "Google"', 403)
        audience = request.args.get("audience")
        if not audience:
            return self._metadata_answer("non-empty audience parameter required", 400)
        token_format = request.args.get("format", "standard")
        if token_format not in ("standard", "full"):
            return self._metadata_answer(f"invalid format {token_format!r}: 'standard' or 'full'", 400)
        g.audience = audience
        return self._metadata_answer(self.mint_gcp_identity(audience, full=token_format == "full"), 200)

    @staticmethod
    def _metadata_answer(body: str, status: int) -> Response:
        response = Response(body, status=status, content_type=GCP_IDENTITY_CONTENT_TYPE)
        response.headers["Metadata-Flavor"] = "Google"
        return response

    # AWS STS

    def _sts(self) -> Response:
        g.service = "aws"
        request_id = str(uuid.uuid4())
        try:
            return self._sts_answer(self._get_web_identity_token(), request_id)
        except _StsError as error:
            return self._sts_error(error, request_id)

    def _get_web_identity_token(self) -> dict[str, str]:
        form = request.form
        authorization = request.headers.get("Authorization") or ""
        if not authorization.startswith("AWS4-HMAC-SHA256 "):
            raise _StsError("MissingAuthenticationToken", "Request is missing Authentication Token", 403)
        action = form.get("Action")
        if action != "GetWebIdentityToken":
            raise _StsError("InvalidAction", f"Could not find operation {action} for version 2011-06-15", 400)
        audiences = list(_members(form, "Audience"))
        g.audience = " ".join(audiences) or None
        injected = self._take_sts_failure()
        if injected is not None:
            raise injected
        algorithm = form.get("SigningAlgorithm")
        duration_text = form.get("DurationSeconds")
        errors: list[str] = []
        if not audiences:
            errors.append("Value null at 'audience' failed to satisfy constraint: Member must not be null")
        elif len(audiences) > STS_MAX_AUDIENCES:
            errors.append(
                f"Value at 'audience' failed to satisfy constraint: Member must have length less than or equal to "
                f"{STS_MAX_AUDIENCES}"
            )
        if algorithm not in STS_ALGORITHMS:
            errors.append(
                f"Value {algorithm!r} at 'signingAlgorithm' failed to satisfy constraint: Member must satisfy enum "
                f"value set: [{', '.join(STS_ALGORITHMS)}]"
            )
        duration = STS_DEFAULT_DURATION
        if duration_text is not None:
            try:
                duration = int(duration_text)
            except ValueError:
                duration = -1
            if duration < STS_MIN_DURATION:
                errors.append(
                    f"Value '{duration_text}' at 'durationSeconds' failed to satisfy constraint: Member must have "
                    f"value greater than or equal to {STS_MIN_DURATION}"
                )
            elif duration > STS_MAX_DURATION:
                errors.append(
                    f"Value '{duration_text}' at 'durationSeconds' failed to satisfy constraint: Member must have "
                    f"value less than or equal to {STS_MAX_DURATION}"
                )
        if form.get("SubjectMode", "AWSIdentity") != "AWSIdentity":
            # This platform's sessions carry no trusted identity propagation context.
            errors.append("SubjectMode OriginIdentity needs a trusted identity propagation context in the session")
        elif form.get("Scope") is not None:
            errors.append("Scope can be specified only when SubjectMode is OriginIdentity")
        if errors:
            count = len(errors)
            summary = f"{count} validation error{'s' if count > 1 else ''} detected: " + "; ".join(errors)
            raise _StsError("ValidationError", summary, 400)
        tags = {key: value for key, value in _tag_members(form)}
        match = _CREDENTIAL_SCOPE.search(authorization)
        token = self.mint_aws_web_identity(
            audiences,
            algorithm="ES384" if algorithm == "ES384" else "RS256",
            duration=duration,
            tags=tags,
            region=match.group(1) if match else "us-east-1",
        )
        exp = jwt.decode(token, options={"verify_signature": False})["exp"]
        expiration = datetime.fromtimestamp(exp, tz=timezone.utc)
        return {"WebIdentityToken": token, "Expiration": expiration.strftime("%Y-%m-%dT%H:%M:%SZ")}

    @staticmethod
    def _sts_answer(result: Mapping[str, str], request_id: str) -> Response:
        root = ET.Element("GetWebIdentityTokenResponse", xmlns=STS_NAMESPACE)
        wrapper = ET.SubElement(root, "GetWebIdentityTokenResult")
        for name, value in result.items():
            ET.SubElement(wrapper, name).text = value
        ET.SubElement(ET.SubElement(root, "ResponseMetadata"), "RequestId").text = request_id
        return Response(ET.tostring(root, encoding="unicode"), status=200, content_type="text/xml")

    @staticmethod
    def _sts_error(error: _StsError, request_id: str) -> Response:
        root = ET.Element("ErrorResponse", xmlns=STS_NAMESPACE)
        detail = ET.SubElement(root, "Error")
        ET.SubElement(detail, "Type").text = "Sender"
        ET.SubElement(detail, "Code").text = error.code
        ET.SubElement(detail, "Message").text = error.message
        ET.SubElement(root, "RequestId").text = request_id
        response = Response(ET.tostring(root, encoding="unicode"), status=error.status, content_type="text/xml")
        response.headers["x-amzn-RequestId"] = request_id
        return response


def _members(form: Mapping[str, str], name: str) -> Iterable[str]:
    """The values of an AWS query-protocol list: ``Name.member.1``, ``Name.member.2``..."""
    index = 1
    while f"{name}.member.{index}" in form:
        yield form[f"{name}.member.{index}"]
        index += 1


def _tag_members(form: Mapping[str, str]) -> Iterable[tuple[str, str]]:
    index = 1
    while f"Tags.member.{index}.Key" in form:
        yield form[f"Tags.member.{index}.Key"], form.get(f"Tags.member.{index}.Value", "")
        index += 1
