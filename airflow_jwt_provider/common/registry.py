"""Extension points: implementations found by name through entry-point groups.

A signer or a token store is one module that exports a *registration* object, plus one line in
a distribution's entry points, e.g. in a plugin's ``pyproject.toml``::

    [project.entry-points."airflow_jwt_provider.signers"]
    gcp_kms = "my_company_signers.gcp_kms:SIGNER"

The provider's own implementations register the same way (its ``pyproject.toml``), so a plugin
is not a second-class citizen: the connection form, the settings parser, ``airflow jwt-bearer
check`` and the hooks find it exactly as they find the built-in ones.

Why entry points: a signer for a GCP KMS, Azure Key Vault or Vault transit key can then ship as
its own package, installed next to the provider, without touching it. Names are read from the
installed distributions' metadata without importing anything (a few milliseconds per process);
an implementation is imported the first time its name is used, and kept.

Two distributions registering one name is a mistake that must not be settled silently (a plugin
could shadow ``local``): the provider's own registration wins, and a warning names both.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import Generic, TypeVar, cast

log = logging.getLogger(__name__)

#: The distribution that registers the built-in implementations.
OWN_DISTRIBUTION = "airflow-jwt-provider"
#: Entry-point groups, one per extension point.
SIGNER_GROUP = "airflow_jwt_provider.signers"
TOKEN_STORE_GROUP = "airflow_jwt_provider.token_stores"
ASSERTION_SOURCE_GROUP = "airflow_jwt_provider.assertion_sources"

T = TypeVar("T")


def entry_point_names(group: str, preferred: Iterable[str] = ()) -> tuple[str, ...]:
    """The names registered in ``group``, ``preferred`` ones first in that order, then alphabetically.

    Reads the installed distributions' metadata only: nothing is imported (the provider info
    calls this while Airflow itself is being imported).
    """
    order = {name: index for index, name in enumerate(preferred)}
    names = {entry_point.name for entry_point in entry_points(group=group)}
    return tuple(sorted(names, key=lambda name: (order.get(name, len(order)), name)))


class RegistrationError(LookupError):
    """A name that no installed distribution registers, or whose registration cannot be loaded."""


@dataclass(frozen=True)
class _Entry:
    name: str
    distribution: str
    entry_point: EntryPoint


class Registry(Generic[T]):
    """Implementations of one extension point, by name.

    :param group: the entry-point group.
    :param what: how an implementation is called in messages (``signer``, ``token store``).
    :param check: whether a loaded object is a registration of this kind (a runtime protocol check).
    :param preferred: built-in names in the order menus list them; others follow alphabetically.
    """

    def __init__(
        self,
        group: str,
        what: str,
        check: Callable[[object], bool],
        *,
        preferred: Iterable[str] = (),
    ) -> None:
        self.group = group
        self.what = what
        self._check = check
        self._preferred = tuple(preferred)
        self._entries: dict[str, _Entry] | None = None
        self._loaded: dict[str, T] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"Registry({self.group!r})"

    def names(self) -> tuple[str, ...]:
        """Every registered name, built-ins first in their menu order; nothing is imported."""
        entries = self._scan()
        order = {name: index for index, name in enumerate(self._preferred)}
        return tuple(sorted(entries, key=lambda name: (order.get(name, len(order)), name)))

    def get(self, name: str) -> T:
        """The registration called ``name``, imported on first use.

        :raises RegistrationError: nothing registers ``name``, or its registration does not load
            or is not a registration of this kind (the message says which and names the module).
        """
        loaded = self._loaded.get(name)
        if loaded is not None:
            return loaded
        entry = self._scan().get(name)
        if entry is None:
            raise RegistrationError(
                f"no {self.what} is registered as {name!r}; registered: {', '.join(self.names()) or 'none'}"
            )
        with self._lock:
            loaded = self._loaded.get(name)
            if loaded is None:
                loaded = self._load(entry)
                self._loaded[name] = loaded
        return loaded

    def load_all(self) -> list[T]:
        """Every registration that loads, in :meth:`names` order; one that does not is left out with a warning.

        For the connection form and the documentation: a broken plugin must not take the
        provider's metadata (and with it every provider of the deployment) down.
        """
        registrations = []
        for name in self.names():
            try:
                registrations.append(self.get(name))
            except RegistrationError as exc:
                log.warning("%s", exc)
        return registrations

    def refresh(self) -> None:
        """Read the installed distributions again (tests; a process that installed a plugin)."""
        with self._lock:
            self._entries = None
            self._loaded.clear()

    # -- internals ---------------------------------------------------------------------------------

    def _scan(self) -> dict[str, _Entry]:
        entries = self._entries
        if entries is not None:
            return entries
        found: dict[str, _Entry] = {}
        for entry_point in entry_points(group=self.group):
            distribution = entry_point.dist.name if entry_point.dist is not None else "?"
            entry = _Entry(entry_point.name, distribution, entry_point)
            other = found.get(entry.name)
            if other is None:
                found[entry.name] = entry
                continue
            if other.distribution == entry.distribution:
                continue  # the same distribution seen twice on sys.path (an editable install)
            keep = entry if entry.distribution == OWN_DISTRIBUTION else other
            log.warning(
                "%s %r is registered by both %s and %s; using the one of %s. Uninstall or rename the other",
                self.what,
                entry.name,
                other.distribution,
                entry.distribution,
                keep.distribution,
            )
            found[entry.name] = keep
        self._entries = found
        return found

    def _load(self, entry: _Entry) -> T:
        where = f"{entry.entry_point.value} (distribution {entry.distribution})"
        try:
            registration = entry.entry_point.load()
        except Exception as exc:
            raise RegistrationError(
                f"the {self.what} {entry.name!r} cannot be loaded from {where}: {type(exc).__name__}: {exc}"
            ) from None
        if not self._check(registration):
            raise RegistrationError(
                f"the {self.what} {entry.name!r} registered as {where} is not a {self.what} registration "
                f"(a {type(registration).__name__}); see the provider's documentation of the {self.group} group"
            )
        if getattr(registration, "name", entry.name) != entry.name:
            raise RegistrationError(
                f"the {self.what} registered as {entry.name!r} ({where}) calls itself "
                f"{getattr(registration, 'name', None)!r}; the entry point's name and the registration's name "
                "must be the same"
            )
        return cast(T, registration)  # ``check`` said what it is
