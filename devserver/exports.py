"""A resource whose content a test changes: ``/api/exports/<name>``, the "export status" an event trigger watches.

Vendors publish "is today's export ready?" resources; an asset watcher polls one and must fire once
per change. :class:`Exports` (``LocalAuthorizationServer.exports``) holds each export's state; every
:meth:`Exports.update` is a change (a new ``version``). The API answers (see :mod:`devserver.api`):

``GET /api/exports/<name>``
    404 until the export is first updated; then ``{"export_id", "version", "status", "items", ...}``
    (the fields given to :meth:`Exports.update`) with ``ETag: "v<version>"``, unless the export was
    updated with ``etag=False``. ``If-None-Match`` with the current ETag answers 304 with no body.

A test in another process changes it with ``POST /_devserver/exports/<name>`` (JSON body: the
fields, and ``etag``), loopback only like the other ``/_devserver`` routes (:mod:`devserver.records`).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any


@dataclass
class ExportState:
    """One export: its version (one per change), whether answers carry an ETag, and its fields."""

    version: int = 0
    etag: bool = True
    fields: dict[str, Any] = field(default_factory=dict)

    @property
    def etag_value(self) -> str | None:
        return f'"v{self.version}"' if self.etag else None

    def document(self, name: str) -> dict[str, Any]:
        return {"export_id": name, "version": self.version, **self.fields}


class Exports:
    """The exports by name; thread-safe (the server answers from several threads)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._exports: dict[str, ExportState] = {}

    def update(self, name: str, *, etag: bool | None = None, **fields: Any) -> ExportState:
        """A change of export ``name``: a new version, ``fields`` merged in (``etag``: whether answers carry one)."""
        with self._lock:
            state = self._exports.setdefault(name, ExportState())
            state.version += 1
            state.fields.update(fields)
            if etag is not None:
                state.etag = etag
            return ExportState(state.version, state.etag, dict(state.fields))

    def get(self, name: str) -> ExportState | None:
        with self._lock:
            state = self._exports.get(name)
            return ExportState(state.version, state.etag, dict(state.fields)) if state is not None else None

    def reset(self) -> None:
        with self._lock:
            self._exports.clear()
