"""devserver.faults: injected 429/503 answers and the proxy HTML 502 page."""

from __future__ import annotations

import time

from devserver.server import LocalAuthorizationServer
from tests.devserver.helpers import SigningKey, api, assertion, grant, token_for


def test_html_error_next(server: LocalAuthorizationServer, keys: dict[str, SigningKey]) -> None:
    server.html_error_next = True
    proxy = grant(server, assertion(server, keys["rsa"], iss="client-rsa"))
    assert proxy.status_code == 502
    assert proxy.headers["Content-Type"].startswith("text/html")
    assert "<html>" in proxy.text
    assert "Date" in proxy.headers
    assert grant(server, assertion(server, keys["rsa"], iss="client-rsa")).status_code == 200
    assert [r["status"] for r in server.token_requests] == [502, 200]


def test_fail_next(server: LocalAuthorizationServer, keys: dict[str, SigningKey]) -> None:
    access_token = token_for(server, keys)
    server.fail_next("items", 429, retry_after=2)
    limited = api(server, "/items", access_token)
    assert limited.status_code == 429
    assert limited.headers["Retry-After"] == "2"
    assert api(server, "/whoami", access_token).status_code == 200  # other paths unaffected
    assert api(server, "/items", access_token).status_code == 200
    server.fail_next("/api/", 503, count=2)
    assert [api(server, "/whoami", access_token).status_code for _ in range(3)] == [503, 503, 200]


def test_fail_for_is_a_window_of_time_not_a_count(
    server: LocalAuthorizationServer, keys: dict[str, SigningKey]
) -> None:
    """Every request meets the outage while it lasts, however many there are; then it is over by itself."""
    access_token = token_for(server, keys)
    server.fail_for("items", 503, seconds=0.5, retry_after=1)
    during = [api(server, "/items", access_token) for _ in range(5)]
    assert [r.status_code for r in during] == [503] * 5
    assert all(r.headers["Retry-After"] == "1" for r in during)
    assert api(server, "/whoami", access_token).status_code == 200
    time.sleep(0.6)
    assert api(server, "/items", access_token).status_code == 200


def test_set_delay_slows_the_paths_under_its_prefix_until_removed(
    server: LocalAuthorizationServer, keys: dict[str, SigningKey]
) -> None:
    access_token = token_for(server, keys)
    server.set_delay("whoami", 0.3)
    started = time.monotonic()
    assert api(server, "/whoami", access_token).status_code == 200
    assert time.monotonic() - started >= 0.3
    started = time.monotonic()
    assert api(server, "/items", access_token).status_code == 200
    assert time.monotonic() - started < 0.3
    server.set_delay("whoami", 0)
    started = time.monotonic()
    api(server, "/whoami", access_token)
    assert time.monotonic() - started < 0.3


def test_hold_next(server: LocalAuthorizationServer, keys: dict[str, SigningKey]) -> None:
    import threading
    import time

    server.hold_next("/oauth2/token", seconds=0.6)
    started = time.monotonic()
    held = grant(server, assertion(server, keys["rsa"], iss="client-rsa"))
    assert held.status_code == 200
    assert time.monotonic() - started >= 0.6
    assert grant(server, assertion(server, keys["rsa"], iss="client-rsa")).status_code == 200  # one hold only
    # A reset ends a hold at once: the held request is answered 503 and not recorded.
    server.hold_next("/oauth2/token", seconds=30)
    answers: list[int] = []
    waiter = threading.Thread(
        target=lambda: answers.append(grant(server, assertion(server, keys["rsa"], iss="client-rsa")).status_code)
    )
    waiter.start()
    deadline = time.monotonic() + 5
    while server.holding == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert server.holding == 1
    # The held request's client port names the process that sent it (here, this one).
    import os

    import psutil

    (port,) = server.held_ports
    assert any(c.laddr and c.laddr.port == port for c in psutil.Process(os.getpid()).net_connections())
    server.reset()
    waiter.join(timeout=5)
    assert answers == [503]
    assert server.holding == 0
    assert server.held_ports == []
    assert server.token_requests == []
