"""Create the demo PKCS#12 keystore of the docker compose stack (run by ``docker/airflow-init.sh``).

The keystore is made by ``devserver.keystores.make_keystore_with_fallback`` (keytool when a JRE is
present, else the ``cryptography`` package: the Airflow image has no JRE). The result is then
checked to be a PKCS#12 file holding a private key and a certificate that open with the given
password, since both the authserver (``--keystore``/``--keystore-password``) and the
``jwt_bearer_default`` connection (``key_file``/``keystore_password``) read exactly that file.

Idempotent: an existing keystore that opens with the password is kept; one that does not is an
error (remove the volume with ``docker compose down -v`` to start over).

    PYTHONPATH=/opt/devserver python make_keystore.py --keystore /opt/airflow/keys/demo.p12 \
        --password changeit
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


class KeystoreError(Exception):
    """The keystore could not be made or does not hold what the stack needs."""


def check_keystore(path: Path, password: str) -> None:
    """Raise KeystoreError unless ``path`` is a PKCS#12 file with a key and a certificate."""
    from cryptography.hazmat.primitives.serialization import pkcs12

    data = path.read_bytes()
    if data[:1] != b"\x30":
        # JKS starts with FEEDFEED, JCEKS with CECECECE; PKCS#12 is DER (a SEQUENCE, 0x30).
        raise KeystoreError(f"{path} is not a PKCS#12 keystore (starts with {data[:4].hex()})")
    try:
        key, cert, _ = pkcs12.load_key_and_certificates(data, password.encode())
    except ValueError as exc:
        raise KeystoreError(f"{path} does not open with the configured password: {exc}") from exc
    if key is None or cert is None:
        raise KeystoreError(f"{path} holds no private key with a certificate")


def make_keystore(target: Path, password: str) -> Path:
    """Create ``target`` with devserver.keystores unless it is already there; return its path."""
    if target.exists():
        check_keystore(target, password)
        print(f"keystore {target} already exists and opens with the password: kept")
        return target

    from devserver.keystores import make_keystore_with_fallback

    target.parent.mkdir(parents=True, exist_ok=True)
    if not os.access(target.parent, os.W_OK):
        raise KeystoreError(f"{target.parent} is not writable by uid {os.getuid()}")
    # A name with a suffix is used as is; PKCS#12 is what keytool writes by default and the only
    # type the cryptography fallback (no JRE, as in the Airflow image) can write.
    try:
        store = make_keystore_with_fallback(target.parent, target.name, store_type="pkcs12", store_password=password)
    except ValueError as exc:  # e.g. a password shorter than keytool's 6 characters
        raise KeystoreError(f"cannot make {target}: {exc}") from exc
    created = Path(store.path)
    if created.resolve() != target.resolve():
        os.replace(created, target)
    check_keystore(target, password)
    target.chmod(0o640)
    print(f"keystore {target} created ({store.key_algorithm} key, alias {store.alias!r})")
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keystore", required=True, type=Path, help="PKCS#12 file to create")
    parser.add_argument("--password", required=True, help="store (and key) password")
    args = parser.parse_args(argv)
    try:
        make_keystore(args.keystore, args.password)
    except KeystoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
