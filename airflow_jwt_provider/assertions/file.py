"""``assertion_source: file``: a JWT the platform writes to a file and rotates (Kubernetes projected tokens).

Kubernetes' kubelet writes a projected service-account token into the pod and replaces it before it
expires (at 80 % of its life); Entra workload identity's webhook names that file in
``AZURE_FEDERATED_TOKEN_FILE``; a SPIFFE helper writes JWT-SVIDs the same way. The file is read again
whenever it changes (its inode, size or modification time), so a rotated token is used at once; a token
that has expired is never sent, and the error names the file and what to check. ``$VARIABLES`` in the
path are expanded when the file is read (on the worker, not where the connection is edited).
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from airflow_jwt_provider.assertions.base import PlatformSource, SourceContext
from airflow_jwt_provider.assertions.jwt import ExternalJwt
from airflow_jwt_provider.connection.extras import ExtraReader
from airflow_jwt_provider.exceptions import AssertionSourceError

#: ``$NAME`` or ``${NAME}`` in the configured path.
_VARIABLE = re.compile(r"\$(?:\{([^}]*)\}|(\w+))")
#: Pauses between reads of a file that is missing (the kubelet's swap lasts microseconds).
_SWAP_RETRY_DELAYS = (0.01, 0.05, 0.2)
_T = TypeVar("_T")

_ROTATION_ADVICE = (
    ": the platform did not replace it. Check that the token is projected with an expiration the kubelet "
    "renews (serviceAccountToken.expirationSeconds), or whatever writes the file"
)


@dataclass(frozen=True)
class FileSettings:
    path: str
    audience: str | None = None
    prefix: str = "assertion"

    @property
    def source(self) -> str:
        return FILE.name

    @property
    def needs_key(self) -> bool:
        return False

    def describe(self) -> str:
        audience = f", audience {self.audience!r}" if self.audience else ""
        return f"{self.prefix}_source file: the JWT in {self.path!r}{audience}"


class _Vanished(AssertionSourceError):
    """The file is not there: for good, or for the instant of the kubelet's swap."""


def _during_a_swap(read: Callable[[], _T]) -> _T:
    """``read()``, tried again briefly when the file is missing: the kubelet renames the new token directory into
    place and deletes the old one at once (``atomic_writer.go``), so a reader can meet no file for an instant."""
    for delay in _SWAP_RETRY_DELAYS:
        try:
            return read()
        except _Vanished:
            time.sleep(delay)
    return read()


class FileAssertions(PlatformSource):
    def __init__(self, settings: FileSettings, context: SourceContext) -> None:
        super().__init__(context, "file")
        self.settings = settings
        self._stat: tuple[int, int, int] | None = None

    def describe(self) -> str:
        return f"{self.context.setting('file')} {self.settings.path!r}"

    def _path(self) -> Path:
        expanded = os.path.expandvars(os.path.expanduser(self.settings.path))
        named = [braced or name for braced, name in _VARIABLE.findall(self.settings.path)]
        missing = next((name for name in named if name not in os.environ), None)
        if missing is not None:
            raise AssertionSourceError(
                f"{self.describe()}: the environment variable {missing} is not set in this process; the platform "
                "sets it where the workload identity is enabled (e.g. AZURE_FEDERATED_TOKEN_FILE in pods of a "
                "service account labelled azure.workload.identity/use)",
                field=self.context.setting("file"),
            )
        return Path(expanded)

    def _missing(self) -> _Vanished:
        return _Vanished(
            f"{self.describe()} does not exist on this machine; the token must be mounted on every worker and "
            "the triggerer (a projected service-account token volume, or the path the platform names)",
            field=self.context.setting("file"),
        )

    def _stat_of(self, path: Path) -> tuple[int, int, int]:
        try:
            stat = path.stat()
        except FileNotFoundError:
            raise self._missing() from None
        except OSError as exc:
            raise AssertionSourceError(
                f"{self.describe()} cannot be read ({exc.strerror})", field=self.context.setting("file")
            ) from None
        return stat.st_ino, stat.st_size, stat.st_mtime_ns

    def still_good(self, jwt: ExternalJwt) -> bool:
        return self._stat == _during_a_swap(lambda: self._stat_of(self._path()))

    def fetch(self) -> ExternalJwt:
        return _during_a_swap(self._read)

    def _read(self) -> ExternalJwt:
        path = self._path()
        stat = self._stat_of(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise self._missing() from None
        except (OSError, UnicodeDecodeError) as exc:
            problem = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
            raise AssertionSourceError(
                f"{self.describe()} cannot be read ({problem}); check its permissions",
                field=self.context.setting("file"),
            ) from None
        jwt = ExternalJwt.parse(text, where=self.describe(), field_name=self.context.setting("file"))
        self._stat = stat  # only now: a file that holds no JWT is read (and refused) again at the next use
        return jwt

    def check(self, jwt: ExternalJwt) -> None:
        jwt.check_usable(
            where=self.describe(),
            field_name=self.context.setting("file"),
            audience=self.settings.audience,
            advice=_ROTATION_ADVICE,
        )


class FileSourceType:
    name = "file"
    title = "A JWT file the platform rotates"
    suffixes = frozenset({"file", "audience"})

    def parse(self, extras: ExtraReader, prefix: str) -> FileSettings:
        path = extras.required_text(
            f"{prefix}_file",
            "is required with source 'file': the path of the JWT the platform writes (e.g. "
            "/var/run/secrets/tokens/airflow, or $AZURE_FEDERATED_TOKEN_FILE)",
        )
        return FileSettings(path, extras.text(f"{prefix}_audience"), prefix)

    def build(self, settings: FileSettings, context: SourceContext) -> FileAssertions:
        return FileAssertions(settings, context)


FILE = FileSourceType()
