"""Sustained use in one process: the cost per call stays flat and memory stays bounded.

A triggerer or a long task lives for weeks and may impersonate thousands of users. Here, in one
process: 5,000 ``mint_assertion()`` calls and 2,000 tokens for distinct subjects through the
hook's public methods, against the local authorization server. The median cost of the last 100
calls must stay within 1.3x of the first 100 (a cost that grows per call — a masker that keeps
every value, a cache that never forgets — fails this), and resident memory must grow by less
than 30 MB. Timings are medians of many calls, so a loaded machine moves both ends alike.
"""

from __future__ import annotations

import gc
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import pytest

from airflow_jwt_provider.hooks.jwt_bearer import JwtBearerHook
from tests.conftest import CLIENT_ID, connection_extra, register

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


def timed_calls(call: Callable[[int], Any], count: int) -> list[float]:
    samples = []
    for i in range(count):
        start = time.perf_counter()
        call(i)
        samples.append(time.perf_counter() - start)
    return samples


def slowdown(samples: list[float]) -> float:
    return statistics.median(samples[-WINDOW:]) / statistics.median(samples[:WINDOW])


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

    mints = timed_calls(lambda i: hook.mint_assertion(subject=f"mint-{i}"), MINTS)
    tokens = timed_calls(lambda i: hook.get_token(subject=f"user-{i:05d}"), TOKENS)

    gc.collect()
    growth = resident_mb() - memory_before
    issued = [r for r in auth_server.token_requests if r["success"]]
    assert len(issued) >= TOKENS  # every distinct subject was a real token request
    assert slowdown(mints) <= MAX_SLOWDOWN, f"mint_assertion: last {WINDOW} vs first {WINDOW}: {slowdown(mints):.2f}x"
    assert slowdown(tokens) <= MAX_SLOWDOWN, f"get_token: last {WINDOW} vs first {WINDOW}: {slowdown(tokens):.2f}x"
    print(f"slowdown: mint {slowdown(mints):.2f}x, token {slowdown(tokens):.2f}x; memory growth {growth:.1f} MB")
    assert growth < MAX_GROWTH_MB, f"resident memory grew by {growth:.1f} MB"
    assert len(_secrets_masker().patterns) == masked_before  # no per-call value was registered
    assert len(hook.credentials.cache) <= hook.credentials.cache.max_entries
    assert hook.credentials.cache.pending_locks == 0
