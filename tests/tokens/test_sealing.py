"""token_sealing: entries open only with the same secret and for the same cache key; names and tags reveal nothing."""

from __future__ import annotations

import pickle
from datetime import datetime, timedelta, timezone

import pytest

from airflow_jwt_provider.tokens.access_token import AccessToken
from airflow_jwt_provider.tokens.cache import cache_key
from airflow_jwt_provider.tokens.sealing import PREFIX_LENGTH, SealError, TokenSeal

SECRET = b"k" * 32
ACCESS_TOKEN = "opaque-access-token-value-0123456789"


def a_token(value: str = ACCESS_TOKEN, **changes: object) -> AccessToken:
    issued = datetime.now(timezone.utc).replace(microsecond=0)
    fields: dict[str, object] = {
        "access_token": value,
        "expires_at": issued + timedelta(seconds=3600),
        "scope": "read write",
        "issued_at": issued,
        "extra": {"instance_url": "https://na1.example.com", "n": 1},
    }
    fields.update(changes)
    return AccessToken(**fields)  # type: ignore[arg-type]


KEY = cache_key(subject="alice", scope="read", audience="https://login/token")


def test_a_sealed_token_opens_as_it_was() -> None:
    seal = TokenSeal(SECRET)
    token = a_token()
    opened = seal.open(KEY, seal.seal(KEY, token))
    assert opened == token
    unknown_expiry = a_token(expires_at=None, assumed_lifetime=timedelta(seconds=120), scope=None, extra={})
    assert seal.open(KEY, seal.seal(KEY, unknown_expiry)) == unknown_expiry


def test_the_entry_holds_neither_the_token_nor_its_fields_in_clear() -> None:
    entry = TokenSeal(SECRET).seal(KEY, a_token())
    for clear in (ACCESS_TOKEN.encode(), b"read write", b"instance_url", b"alice", KEY.encode()):
        assert clear not in entry
    assert TokenSeal(SECRET).seal(KEY, a_token()) != entry  # a fresh nonce each time


def test_another_secret_does_not_open_it() -> None:
    entry = TokenSeal(SECRET).seal(KEY, a_token())
    with pytest.raises(SealError, match="another key"):
        TokenSeal(b"x" * 32).open(KEY, entry)


@pytest.mark.parametrize(
    "other",
    [
        cache_key(subject="bob", scope="read", audience="https://login/token"),
        cache_key(subject="alice", scope="admin", audience="https://login/token"),
        cache_key(subject="alice", scope="read", audience="https://other/token"),
    ],
    ids=["subject", "scope", "audience"],
)
def test_an_entry_is_bound_to_its_cache_key(other: str) -> None:
    seal = TokenSeal(SECRET)
    with pytest.raises(SealError):
        seal.open(other, seal.seal(KEY, a_token()))


def test_altered_or_truncated_entries_are_refused() -> None:
    seal = TokenSeal(SECRET)
    entry = seal.seal(KEY, a_token())
    for position in (0, 4, 5, PREFIX_LENGTH, PREFIX_LENGTH + 12, len(entry) - 1):
        altered = bytearray(entry)
        altered[position] ^= 0x01
        with pytest.raises(SealError):
            seal.open(KEY, bytes(altered))
    for broken in (b"", b"JWTB", entry[:40], b"garbage" * 20):
        with pytest.raises(SealError):
            seal.open(KEY, broken)
    # The tag of one token on the sealed body of another: the tag is authenticated too.
    other = seal.seal(KEY, a_token("another-access-token-value-98765"))
    with pytest.raises(SealError):
        seal.open(KEY, other[:PREFIX_LENGTH] + entry[PREFIX_LENGTH:])


def test_names_and_prefixes_reveal_nothing_and_depend_on_the_secret() -> None:
    seal, other = TokenSeal(SECRET), TokenSeal(b"x" * 32)
    name = seal.entry_name(KEY)
    assert len(name) == 64
    assert set(name) <= set("0123456789abcdef")
    assert name != KEY
    assert name != other.entry_name(KEY)
    assert seal.entry_name(KEY) == name  # stable: every process finds the same entry
    token = a_token()
    assert seal.seal(KEY, token).startswith(seal.entry_prefix(token))
    assert seal.entry_prefix(token) != seal.entry_prefix(a_token("another-access-token-value-98765"))
    assert seal.entry_prefix(token) != other.entry_prefix(token)
    assert ACCESS_TOKEN.encode() not in seal.entry_prefix(token)


def test_the_seal_keeps_its_keys_to_itself() -> None:
    seal = TokenSeal(SECRET)
    assert repr(seal) == "TokenSeal(<keys hidden>)"
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(seal)
    with pytest.raises(ValueError, match="at least 16 bytes"):
        TokenSeal(b"short")
