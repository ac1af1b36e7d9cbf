"""TokenCache and AccessToken semantics: refresh margin, single flight, careful invalidation."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta, timezone

from airflow_jwt_provider.tokens.access_token import ASSUMED_LIFETIME, AccessToken
from airflow_jwt_provider.tokens.cache import TokenCache, cache_key


def token(lifetime_s: float | None, *, issued_ago_s: float = 0, value: str = "tok") -> AccessToken:
    issued = datetime.now(timezone.utc) - timedelta(seconds=issued_ago_s)
    expires = issued + timedelta(seconds=lifetime_s) if lifetime_s is not None else None
    return AccessToken(access_token=value, expires_at=expires, issued_at=issued)


def test_refresh_margin_is_max_of_30s_and_10_percent() -> None:
    long_lived = token(3600)
    assert long_lived.refresh_at == long_lived.issued_at + timedelta(seconds=3600 - 360)
    short = token(120)
    assert short.refresh_at == short.issued_at + timedelta(seconds=90)
    assert token(3600, issued_ago_s=3300).valid is False  # inside the last 10 %
    assert token(3600, issued_ago_s=3000).valid is True
    assert token(60, issued_ago_s=61).expired is True


def test_unknown_expiry_uses_the_assumed_lifetime() -> None:
    unknown = token(None)
    assert unknown.lifetime == ASSUMED_LIFETIME
    assert unknown.valid
    assert not token(None, issued_ago_s=ASSUMED_LIFETIME.total_seconds()).valid


def test_repr_and_str_hide_the_token() -> None:
    secret = token(60, value="very-secret-access-token")
    assert "very-secret-access-token" not in repr(secret)
    assert "very-secret-access-token" not in str(secret)
    assert "very-secret-access-token" not in f"{secret}"
    assert secret.authorization_header == "Bearer very-secret-access-token"
    assert AccessToken("x", token_type="bearer").authorization_header == "Bearer x"


def test_single_flight_under_contention() -> None:
    cache = TokenCache()
    calls = 0
    barrier = threading.Barrier(10)

    def fetch() -> AccessToken:
        nonlocal calls
        calls += 1
        time.sleep(0.05)  # a slow token endpoint: the others must wait, not fetch
        return token(3600, value=f"t{calls}")

    results: list[AccessToken] = []

    def worker() -> None:
        barrier.wait()
        results.append(cache.get("k", fetch))

    threads = [threading.Thread(target=worker) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert calls == 1
    assert {r.access_token for r in results} == {"t1"}


def test_different_keys_fetch_independently() -> None:
    cache = TokenCache()
    a = cache.get("a", lambda: token(3600, value="a"))
    b = cache.get("b", lambda: token(3600, value="b"))
    assert (a.access_token, b.access_token) == ("a", "b")
    assert cache.get("a", lambda: token(3600, value="other")) is a


def test_force_refresh_fetches_anew() -> None:
    cache = TokenCache()
    first = cache.get("k", lambda: token(3600, value="1"))
    second = cache.get("k", lambda: token(3600, value="2"), force_refresh=True)
    assert first.access_token == "1"
    assert second.access_token == "2"


def test_invalidate_only_the_token_that_failed() -> None:
    cache = TokenCache()
    old = cache.get("k", lambda: token(3600, value="old"))
    cache.invalidate("k", token=old)
    new = cache.get("k", lambda: token(3600, value="new"))
    cache.invalidate("k", token=old)  # a late 401 on the old token must not drop the new one
    assert cache.peek("k") is new
    cache.invalidate()
    assert cache.peek("k") is None


def test_cache_key_covers_every_part() -> None:
    base = {"token_url": "u", "subject": "s", "scope": None, "claims": {"a": 1}}
    assert cache_key(**base) == cache_key(**dict(reversed(list(base.items()))))
    for change in ({"subject": "t"}, {"scope": "x"}, {"claims": {"a": 2}}, {"token_url": "v"}):
        assert cache_key(**{**base, **change}) != cache_key(**base)
