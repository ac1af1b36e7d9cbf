"""Sustained use in one process: the cost per call stays flat and memory stays bounded.

A triggerer or a long task lives for weeks and may impersonate thousands of users. Here, in one
process: 5,000 ``mint_assertion()`` calls and 2,000 tokens for distinct subjects through the
hook's public methods, against the local authorization server. The median cost of the last 100
calls must stay within 1.3x of the first 100 (a cost that grows per call — a masker that keeps
every value, a cache that never forgets — fails this), and resident memory must grow by less
than 30 MB. Each timed call in the first and last stretch is paired with the same work done
with the raw libraries (``jwt.encode``; a token POST), and the provider's cost is taken relative
to it, so a machine whose load changes during the run moves both alike.
"""

from __future__ import annotations

import gc
import os
import statistics
import time
import uuid
from collections.abc import Callable
from typing import Any

import jwt
import pytest
import requests

from airflow_jwt_provider.hooks.jwt_bearer import JwtBearerHook
from tests.conftest import CLIENT_ID, connection_extra, register

pytestmark = [pytest.mark.slow, pytest.mark.timing]

MINTS = 5000
TOKENS = 2000
WINDOW = 100
MAX_SLOWDOWN = 1.3
MAX_GROWTH_MB = 30


def resident_mb() -> float:
    """This process's resident memory now (not the peak), from /proc."""
    with open(f"/proc/{os.getpid()}/statm", encoding="ascii") as statm:
        pages = int(statm.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def timed_calls(call: Callable[[int], Any], reference: Callable[[int], Any], count: int) -> tuple[list[float], ...]:
    """Seconds of each call; in the first and last :data:`WINDOW`, also of the reference right after."""
    provider: list[float] = []
    first_ref: list[float] = []
    last_ref: list[float] = []
    for i in range(count):
        start = time.perf_counter()
        call(i)
        provider.append(time.perf_counter() - start)
        if i < WINDOW or i >= count - WINDOW:
            start = time.perf_counter()
            reference(i)
            (first_ref if i < WINDOW else last_ref).append(time.perf_counter() - start)
    return provider, first_ref, last_ref


def slowdown(provider: list[float], first_ref: list[float], last_ref: list[float]) -> float:
    """How much more the last stretch costs than the first, relative to the raw libraries at each end."""
    first = statistics.median(provider[:WINDOW]) / statistics.median(first_ref)
    last = statistics.median(provider[-WINDOW:]) / statistics.median(last_ref)
    return last / first


@pytest.fixture
def hook(auth_server: Any, keystores: dict[str, Any], set_connection: Callable[..., str]) -> JwtBearerHook:
    store = keystores["default"]
    register(auth_server, store)
    set_connection(
        "jwt_sustained", login=CLIENT_ID, host=auth_server.api_url, extra=connection_extra(store, auth_server)
    )
    hook = JwtBearerHook("jwt_sustained")
    hook.get_token()  # key loaded, logging set up: the run measures calls, not first-use costs
    return hook


def test_cost_per_call_stays_flat_and_memory_bounded(hook: JwtBearerHook, auth_server: Any) -> None:
    from airflow.sdk._shared.secrets_masker import _secrets_masker

    gc.collect()
    masked_before = len(_secrets_masker().patterns)
    memory_before = resident_mb()

    private_key = hook.credentials.signer.key.private_key  # type: ignore[attr-defined]

    def raw_assertion(i: int) -> str:
        now = int(time.time())
        claims = {"iss": CLIENT_ID, "sub": f"raw-{i}", "aud": auth_server.token_url, "iat": now, "exp": now + 60}
        return jwt.encode({**claims, "jti": str(uuid.uuid4())}, private_key, algorithm="RS256")

    def raw_token(i: int) -> None:
        form = {"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": raw_assertion(i)}
        requests.post(auth_server.token_url, data=form, timeout=30).raise_for_status()

    mints = timed_calls(lambda i: hook.mint_assertion(subject=f"mint-{i}"), raw_assertion, MINTS)
    tokens = timed_calls(lambda i: hook.get_token(subject=f"user-{i:05d}"), raw_token, TOKENS)

    gc.collect()
    growth = resident_mb() - memory_before
    issued = [r for r in auth_server.token_requests if r["success"]]
    assert len(issued) >= TOKENS + 2 * WINDOW  # every distinct subject was a real token request (and each raw one)
    mint_slowdown, token_slowdown = slowdown(*mints), slowdown(*tokens)
    print(f"slowdown: mint {mint_slowdown:.2f}x, token {token_slowdown:.2f}x; memory growth {growth:.1f} MB")
    assert mint_slowdown <= MAX_SLOWDOWN, f"mint_assertion: last {WINDOW} vs first {WINDOW}: {mint_slowdown:.2f}x"
    assert token_slowdown <= MAX_SLOWDOWN, f"get_token: last {WINDOW} vs first {WINDOW}: {token_slowdown:.2f}x"
    assert growth < MAX_GROWTH_MB, f"resident memory grew by {growth:.1f} MB"
    assert len(_secrets_masker().patterns) == masked_before  # no per-call value was registered
    assert len(hook.credentials.cache) <= hook.credentials.cache.max_entries
    assert hook.credentials.cache.pending_locks == 0
