"""A local AWS KMS for tests and demos: moto's standalone server, as its own process on 127.0.0.1.

:func:`start_kms_emulator` runs ``python -m devserver.kms PORT``, which starts moto's server
(the same ``moto.server`` that ``moto_server`` runs) after checking how moto's KMS signs.
The provider talks to it exactly as to AWS: through an Airflow ``aws`` connection whose
``endpoint_url`` extra points at the emulator (:meth:`KmsEmulator.connection`).

**Conformance with AWS.** moto 5.2 departs from the KMS API reference on three points that a
JWT signer depends on; the emulator process corrects each one *only if* a probe at start-up
shows moto still gets it wrong (so a moto release that fixes them needs nothing from here),
then probes again and refuses to start if the result is still not what AWS documents:

* ``Sign`` with ``MessageType=DIGEST``: AWS signs the given digest as is; moto ignores the
  message type and hashes the digest again, so no verifier accepts the signature.
* ``RSASSA_PSS_SHA_*``: AWS uses a salt as long as the digest (the RFC 7518 ``PS*`` profile);
  moto uses the longest salt the key allows, which JWS verifiers reject.
* Key state: AWS refuses ``Sign``/``GetPublicKey`` with ``DisabledException`` for a disabled
  key and ``KMSInvalidStateException`` for one pending deletion; moto signs regardless.

The fixes live in the emulator process only (nothing in the test process or the provider is
patched), and :attr:`KmsEmulator.conformance_fixes` says which ones a run needed.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["KmsEmulator", "create_signing_key", "free_port", "start_kms_emulator"]

#: Dummy credentials the emulator accepts while it does not check signatures (the default).
ACCESS_KEY_ID = "AKIAJWTPROVIDERTEST1"
SECRET_ACCESS_KEY = "jwt-provider-test-secret-access-key"
DEFAULT_REGION = "us-east-1"
_READY_PREFIX = "kms-emulator:"


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class KmsEmulator:
    """A running emulator process and how to reach it."""

    process: subprocess.Popen[bytes]
    port: int
    log_path: Path
    region: str = DEFAULT_REGION
    conformance_fixes: list[str] = field(default_factory=list)

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def connection(self, *, login: str = ACCESS_KEY_ID, password: str = SECRET_ACCESS_KEY, **extra: Any) -> str:
        """An Airflow ``aws`` connection (JSON, for an ``AIRFLOW_CONN_…`` variable) that uses the emulator."""
        return json.dumps(
            {
                "conn_type": "aws",
                "login": login,
                "password": password,
                "extra": {"region_name": self.region, "endpoint_url": self.endpoint_url, **extra},
            }
        )

    def client(self, *, access_key_id: str = ACCESS_KEY_ID, secret_access_key: str = SECRET_ACCESS_KEY) -> Any:
        """A boto3 client for ``service`` on the emulator (test set-up: create keys, aliases...)."""
        return self.boto3_client("kms", access_key_id=access_key_id, secret_access_key=secret_access_key)

    def boto3_client(
        self, service: str, *, access_key_id: str = ACCESS_KEY_ID, secret_access_key: str = SECRET_ACCESS_KEY
    ) -> Any:
        import boto3

        return boto3.client(
            service,
            region_name=self.region,
            endpoint_url=self.endpoint_url,
            aws_access_key_id=access_key_id,
            aws_secret_access_key=secret_access_key,
        )

    @contextlib.contextmanager
    def recording(self) -> Iterator[list[dict[str, Any]]]:
        """Record the requests that reach the emulator (moto's recorder): what a signer really sends to KMS.

        Yields a list that is filled, when the block ends, with the recorded requests whose JSON
        body is given as ``body`` (a dict) next to ``headers``.
        """
        self._moto_api("recorder/reset-recording")
        self._moto_api("recorder/start-recording")
        requests: list[dict[str, Any]] = []
        try:
            yield requests
        finally:
            self._moto_api("recorder/stop-recording")
            for line in self._moto_api("recorder/download-recording").splitlines():
                if not line.strip():
                    continue
                entry = json.loads(line)
                body = entry.get("body") or ""
                if entry.get("body_encoded"):
                    body = base64.b64decode(body).decode("utf-8", errors="replace")
                with contextlib.suppress(ValueError):
                    entry["body"] = json.loads(body) if body else {}
                requests.append(entry)

    def _moto_api(self, path: str, data: bytes | None = None) -> str:
        request = urllib.request.Request(
            f"{self.endpoint_url}/moto-api/{path}",
            data=data if data is not None else b"",
            headers={"Content-Type": "text/plain"},  # a form content type would hide the body from moto
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return str(response.read().decode("utf-8", errors="replace"))

    def enforce_iam(self, enforced: bool) -> None:
        """Make the emulator check credentials and IAM policies (moto's ``reset-auth``), or stop checking."""
        self._moto_api("reset-auth", b"0" if enforced else b"inf")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def start_kms_emulator(log_dir: Path, *, region: str = DEFAULT_REGION, timeout: float = 60.0) -> KmsEmulator:
    """Start the emulator on a free loopback port and wait until it answers."""
    log_path = Path(log_dir) / "kms-emulator.log"
    port = free_port()
    env = dict(
        os.environ,
        AWS_EC2_METADATA_DISABLED="true",
        MOTO_RECORDER_FILEPATH=str(Path(log_dir) / "kms-requests.jsonl"),
    )
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "devserver.kms", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=Path(__file__).resolve().parent.parent,
        )
    emulator = KmsEmulator(process=process, port=port, log_path=log_path, region=region)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the KMS emulator exited with {process.returncode}: {_tail(log_path)}")
        fixes = _announced_fixes(log_path)
        if fixes is not None and _answers(emulator.endpoint_url):
            emulator.conformance_fixes = fixes
            return emulator
        time.sleep(0.1)
    emulator.stop()
    raise RuntimeError(f"the KMS emulator did not answer within {timeout:.0f} s: {_tail(log_path)}")


def _announced_fixes(log_path: Path) -> list[str] | None:
    with contextlib.suppress(OSError):
        for line in log_path.read_text(errors="replace").splitlines():
            if line.startswith(_READY_PREFIX):
                return list(json.loads(line[len(_READY_PREFIX) :])["conformance_fixes"])
    return None


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/moto-api/data.json", timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def _tail(path: Path) -> str:
    with contextlib.suppress(OSError):
        return path.read_text(errors="replace")[-3000:]
    return ""


def create_signing_key(
    client: Any, key_spec: str, *, alias: str | None = None, description: str = ""
) -> dict[str, Any]:
    """Create an asymmetric SIGN_VERIFY key; returns its id, ARN and public key (PEM)."""
    from cryptography.hazmat.primitives import serialization

    metadata = client.create_key(KeySpec=key_spec, KeyUsage="SIGN_VERIFY", Description=description)["KeyMetadata"]
    if alias:
        client.create_alias(AliasName=alias, TargetKeyId=metadata["KeyId"])
    der = client.get_public_key(KeyId=metadata["KeyId"])["PublicKey"]
    public_key = serialization.load_der_public_key(der)
    pem = public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return {"key_id": metadata["KeyId"], "arn": metadata["Arn"], "alias": alias, "public_key_pem": pem.decode()}


# --- inside the emulator process -----------------------------------------------------------------

_HASH_NAMES = {"256": "SHA256", "384": "SHA384", "512": "SHA512"}


def _probe() -> set[str]:
    """Which AWS behaviours moto gets wrong (run in-process under ``mock_aws``)."""
    import boto3
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding
    from moto import mock_aws

    wrong: set[str] = set()
    with mock_aws():
        client = boto3.client("kms", region_name=DEFAULT_REGION)
        key_id = client.create_key(KeySpec="RSA_2048", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
        public_key: Any = serialization.load_der_public_key(client.get_public_key(KeyId=key_id)["PublicKey"])
        message = b"probe"
        signature = client.sign(
            KeyId=key_id,
            Message=hashlib.sha256(message).digest(),
            MessageType="DIGEST",
            SigningAlgorithm="RSASSA_PKCS1_V1_5_SHA_256",
        )["Signature"]
        try:
            public_key.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature:
            wrong.add("sign-digest")
        signature = client.sign(
            KeyId=key_id, Message=message, MessageType="RAW", SigningAlgorithm="RSASSA_PSS_SHA_256"
        )["Signature"]
        try:
            public_key.verify(
                signature, message, padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32), hashes.SHA256()
            )
        except InvalidSignature:
            wrong.add("pss-salt-length")
        client.disable_key(KeyId=key_id)
        try:
            client.sign(KeyId=key_id, Message=message, MessageType="RAW", SigningAlgorithm="RSASSA_PSS_SHA_256")
            wrong.add("key-state")
        except client.exceptions.DisabledException:
            pass
    return wrong


def _apply_fixes(fixes: set[str]) -> None:
    """Bring moto's KMS in line with the AWS API reference on the points ``fixes`` names."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, padding
    from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
    from moto.core.exceptions import JsonRESTError
    from moto.kms import models, responses, utils

    state = threading.local()

    if "pss-salt-length" in fixes:
        mangled = "_RSAPrivateKey__padding_and_hash_algorithm"
        original_padding = getattr(utils.RSAPrivateKey, mangled)

        def padding_and_hash(self: Any, signing_algorithm: str) -> tuple[Any, Any]:
            pad, hash_algorithm = original_padding(self, signing_algorithm)
            if isinstance(pad, padding.PSS):
                pad = padding.PSS(mgf=padding.MGF1(hash_algorithm), salt_length=padding.PSS.DIGEST_LENGTH)
            return pad, hash_algorithm

        setattr(utils.RSAPrivateKey, mangled, padding_and_hash)

    if "sign-digest" in fixes:
        original_response_sign = responses.KmsResponse.sign

        def response_sign(self: Any) -> str:
            state.message_type = self._get_param("MessageType") or "RAW"
            try:
                return original_response_sign(self)
            finally:
                state.message_type = "RAW"

        responses.KmsResponse.sign = response_sign

        def digest_hash(signing_algorithm: str, message: bytes) -> Any:
            hash_algorithm = getattr(hashes, _HASH_NAMES[signing_algorithm[-3:]])()
            if len(message) != hash_algorithm.digest_size:
                raise JsonRESTError(
                    "ValidationException", f"Digest is invalid length for algorithm {signing_algorithm}."
                )
            return hash_algorithm

        original_rsa_sign = utils.RSAPrivateKey.sign
        original_ec_sign = utils.ECDSAPrivateKey.sign

        def rsa_sign(self: Any, message: bytes, signing_algorithm: str) -> bytes:
            if getattr(state, "message_type", "RAW") != "DIGEST":
                return original_rsa_sign(self, message, signing_algorithm)
            hash_algorithm = digest_hash(signing_algorithm, message)
            pad, _ = self._RSAPrivateKey__padding_and_hash_algorithm(signing_algorithm)
            return bytes(self.private_key.sign(message, pad, Prehashed(hash_algorithm)))

        def ec_sign(self: Any, message: bytes, signing_algorithm: str) -> bytes:
            if getattr(state, "message_type", "RAW") != "DIGEST":
                return original_ec_sign(self, message, signing_algorithm)
            if signing_algorithm not in self.valid_signing_algorithms:
                return original_ec_sign(self, message, signing_algorithm)  # moto's own validation error
            hash_algorithm = digest_hash(signing_algorithm, message)
            return bytes(self.private_key.sign(message, ec.ECDSA(Prehashed(hash_algorithm))))

        utils.RSAPrivateKey.sign = rsa_sign  # type: ignore[method-assign]
        utils.ECDSAPrivateKey.sign = ec_sign  # type: ignore[method-assign]

    if "key-state" in fixes:

        def usable(backend: Any, key_id: str) -> None:
            key = backend.describe_key(key_id)
            if key.key_state == "Disabled":
                raise JsonRESTError("DisabledException", f"{key.arn} is disabled.")
            if key.key_state != "Enabled":
                raise JsonRESTError("KMSInvalidStateException", f"{key.arn} is {key.key_state.lower()}.")

        original_backend_sign = models.KmsBackend.sign
        original_public_key = models.KmsBackend.get_public_key

        def backend_sign(self: Any, key_id: str, message: bytes, signing_algorithm: str) -> Any:
            usable(self, key_id)
            return original_backend_sign(self, key_id, message, signing_algorithm)

        def backend_public_key(self: Any, key_id: str) -> Any:
            usable(self, key_id)
            return original_public_key(self, key_id)

        models.KmsBackend.sign = backend_sign  # type: ignore[method-assign]
        models.KmsBackend.get_public_key = backend_public_key  # type: ignore[method-assign]


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1 or not args[0].isdigit():
        print("usage: python -m devserver.kms PORT  (moto's KMS on 127.0.0.1:PORT)", file=sys.stderr)
        return 2
    # The probes run under mock_aws with dummy credentials; nothing leaves the process.
    os.environ.setdefault("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID)
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY)
    os.environ["AWS_EC2_METADATA_DISABLED"] = "true"
    wrong = _probe()
    _apply_fixes(wrong)
    still_wrong = _probe()
    if still_wrong:
        print(f"kms-emulator: moto still departs from AWS on {sorted(still_wrong)}", file=sys.stderr)
        return 1
    print(_READY_PREFIX + json.dumps({"conformance_fixes": sorted(wrong)}), flush=True)
    from moto.server import main as moto_server

    moto_server(["-H", "127.0.0.1", "-p", args[0]])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
