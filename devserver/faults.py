"""Fault injection: answers a rate limiter, a gateway or a proxy in front of the server would give.

:class:`Faults` is owned by the server (``LocalAuthorizationServer.faults``); tests reach it
through the server's ``fail_next()`` and ``html_error_next``. :func:`inject_failure` runs before
every request, ahead of authentication, as a rate limiter or gateway would answer; the
proxy's HTML page is served by the token endpoint (:meth:`Faults.take_html_error`), which is
the only place a client parses a body it did not expect.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from flask import Response, jsonify, request

from devserver.api import API_PREFIX
from devserver.records import RECORDS_PREFIX, new_token_record
from devserver.token_endpoint import TOKEN_PATH
from devserver.web import local_server

_PROXY_502_PAGE = (
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    "<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
    "</body>\r\n</html>\r\n"
)


@dataclass
class _Failure:
    prefix: str
    status: int
    retry_after: int | str | None
    remaining: int
    location: str | None = None
    #: ``time.monotonic()`` after which the failure is over (a window, not a count); None: counted.
    until: float | None = None

    def response(self) -> Response:
        if self.location is not None:  # a redirect, as an API answers with a download link
            return Response("", status=self.status, headers={"Location": self.location})
        body = {"error": "temporarily_unavailable", "error_description": f"injected HTTP {self.status}"}
        if self.status == 429:
            body = {"error": "rate_limited", "error_description": "Too many requests (injected)."}
        response = jsonify(body)
        response.status_code = self.status
        if self.retry_after is not None:
            response.headers["Retry-After"] = str(self.retry_after)
        return response


@dataclass
class _Hold:
    prefix: str
    seconds: float
    remaining: int


class Faults:
    """Injected failures waiting to be served; :meth:`reset` forgets them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._failures: list[_Failure] = []
        self._holds: list[_Hold] = []
        self._html_error_next: bool | int = False
        self._delays: dict[str, float] = {}
        self._release = threading.Event()
        self.holding = 0
        #: The client ports of the requests held now: a test finds the process that sent one.
        self.held_ports: list[int] = []

    def reset(self) -> None:
        with self._lock:
            self._failures = []
            self._holds = []
            self._html_error_next = False
            self._delays = {}
            released, self._release = self._release, threading.Event()
        released.set()  # requests still held belong to a test that is over

    def set_delay(self, path_prefix: str, seconds: float) -> None:
        """See :meth:`devserver.server.LocalAuthorizationServer.set_delay`."""
        prefix = path_prefix if path_prefix.startswith("/") else f"{API_PREFIX}/{path_prefix}"
        with self._lock:
            if seconds > 0:
                self._delays[prefix] = seconds
            else:
                self._delays.pop(prefix, None)

    def delay(self, path: str) -> None:
        """Sleep the delay set for ``path`` (the longest of the matching prefixes), if any."""
        with self._lock:
            seconds = max((d for prefix, d in self._delays.items() if path.startswith(prefix)), default=0.0)
        if seconds:
            time.sleep(seconds)

    def hold_next(self, path_prefix: str, seconds: float, count: int = 1) -> None:
        """See :meth:`devserver.server.LocalAuthorizationServer.hold_next`."""
        with self._lock:
            self._holds.append(_Hold(path_prefix, seconds, count))

    def hold(self, path: str, client_port: int | None = None) -> bool:
        """Hold a request to ``path`` if a hold is due: False if it was released by :meth:`reset` instead.

        ``client_port`` (the TCP port the request came from) is listed in :attr:`held_ports` while held.
        """
        with self._lock:
            due = next((h for h in self._holds if path.startswith(h.prefix)), None)
            if due is None:
                return True
            due.remaining -= 1
            if due.remaining <= 0:
                self._holds.remove(due)
            release = self._release
            self.holding += 1
            if client_port is not None:
                self.held_ports.append(client_port)
        try:
            return not release.wait(due.seconds)
        finally:
            with self._lock:
                self.holding -= 1
                if client_port is not None:
                    self.held_ports.remove(client_port)

    def fail_next(
        self,
        path_prefix: str,
        status: int,
        retry_after: int | str | None = None,
        count: int = 1,
        location: str | None = None,
    ) -> None:
        """See :meth:`devserver.server.LocalAuthorizationServer.fail_next`."""
        prefix = path_prefix if path_prefix.startswith("/") else f"{API_PREFIX}/{path_prefix}"
        with self._lock:
            self._failures.append(_Failure(prefix, status, retry_after, count, location))

    def fail_for(self, path_prefix: str, status: int, seconds: float, retry_after: int | str | None = None) -> None:
        """See :meth:`devserver.server.LocalAuthorizationServer.fail_for`."""
        prefix = path_prefix if path_prefix.startswith("/") else f"{API_PREFIX}/{path_prefix}"
        with self._lock:
            self._failures.append(_Failure(prefix, status, retry_after, 1, until=time.monotonic() + seconds))

    def take_failure(self, path: str) -> _Failure | None:
        """The failure to serve for ``path`` (the oldest matching), counted down; None if none.

        A windowed failure (:meth:`fail_for`) is served until its window ends, then forgotten.
        """
        now = time.monotonic()
        with self._lock:
            self._failures = [f for f in self._failures if f.until is None or f.until > now]
            for failure in self._failures:
                if path.startswith(failure.prefix):
                    if failure.until is not None:
                        return failure
                    failure.remaining -= 1
                    if failure.remaining <= 0:
                        self._failures.remove(failure)
                    return failure
        return None

    @property
    def html_error_next(self) -> bool | int:
        return self._html_error_next

    @html_error_next.setter
    def html_error_next(self, value: bool | int) -> None:
        with self._lock:
            self._html_error_next = value

    def take_html_error(self) -> Response | None:
        """The proxy's HTML 502 page if one is due (``html_error_next`` counted down), else None."""
        with self._lock:
            if not self._html_error_next:
                return None
            self._html_error_next = int(self._html_error_next) - 1
        return Response(_PROXY_502_PAGE, status=502, content_type="text/html")


def inject_failure() -> Response | None:
    """``before_request`` hook: hold the request if a hold is due, then serve a due failure instead of it.

    An injected failure of the token endpoint is recorded like any token request. The
    ``/_devserver/`` view is exempt: reading the records must not use up a failure meant for
    the client under test.
    """
    if request.path.startswith(RECORDS_PREFIX + "/"):
        return None
    server = local_server()
    server.faults.delay(request.path)
    port = request.environ.get("REMOTE_PORT")
    if not server.faults.hold(request.path, int(port) if port else None):
        return Response("released by a reset", status=503)  # for a test that is over: not recorded
    failure = server.faults.take_failure(request.path)
    if failure is None:
        return None
    response = failure.response()
    if request.path == TOKEN_PATH:
        record = new_token_record(server.now())
        record.update(status=failure.status, error=f"injected_{failure.status}")
        server.add_token_record(record)
    return response
