"""Where key material comes from (a file, or pasted inline), what selects a key in it, and its format.

The format is detected from the content, never from the file name: Java 9+ ``keytool``
writes PKCS#12 into ``something.jks`` unless told otherwise.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from pathlib import Path

from airflow_jwt_provider.connection.kinds import KeystoreType
from airflow_jwt_provider.exceptions import KeystoreError

JKS_MAGIC = b"\xfe\xed\xfe\xed"
JCEKS_MAGIC = b"\xce\xce\xce\xce"


@dataclass(frozen=True)
class KeySource:
    """Where the key material comes from: a file path, or the material itself inline.

    ``repr`` never shows inline material.
    """

    path: str | None = None
    inline: str | None = field(default=None, repr=False)

    @property
    def field_name(self) -> str:
        return "key_file" if self.path is not None else "private_key"


@dataclass(frozen=True)
class KeyRequest:
    """What selects and opens a key: the material and its secrets (never shown in ``repr``)."""

    source: KeySource
    keystore_type: KeystoreType | None = None
    keystore_password: str | None = field(default=None, repr=False)
    key_alias: str | None = None
    key_password: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if isinstance(self.keystore_type, str):  # the member a string names ("pkcs12")
            object.__setattr__(self, "keystore_type", KeystoreType(self.keystore_type))


def read_material(source: KeySource) -> bytes:
    if source.path is not None:
        path = Path(source.path).expanduser()
        try:
            return path.read_bytes()
        except FileNotFoundError:
            raise KeystoreError(
                f"key_file {source.path!r} does not exist on this machine; the path must be readable "
                "by the Airflow worker (and by the api-server for the Test button)",
                field="key_file",
            ) from None
        except OSError as exc:
            raise KeystoreError(
                f"key_file {source.path!r} cannot be read ({exc.strerror}); check its permissions",
                field="key_file",
            ) from None
    text = (source.inline or "").strip()
    if text.startswith(("-----BEGIN", "{")):
        return text.encode("utf-8")
    try:
        return base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        raise KeystoreError(
            "private_key is neither PEM text, a service-account JSON key nor base64-encoded keystore "
            "bytes; paste the PEM as is, or encode a keystore with `base64 -w0 keystore.p12`",
            field="private_key",
        ) from None


def detect_keystore_type(material: bytes) -> KeystoreType | None:
    """The format of ``material`` from its first bytes (never from a file name), or ``None`` when unknown."""
    if material.startswith(JKS_MAGIC):
        return KeystoreType.JKS
    if material.startswith(JCEKS_MAGIC):
        return KeystoreType.JCEKS
    if material[:1] == b"\x30":
        return KeystoreType.PKCS12
    head = material.lstrip()[:64]
    if head.startswith(b"{"):
        return KeystoreType.GOOGLE_JSON
    if b"-----BEGIN" in material[:4096]:
        return KeystoreType.PEM
    return None
