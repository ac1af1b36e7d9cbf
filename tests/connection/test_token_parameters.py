"""TokenParameters: an immutable value, compared and hashed by content, safe to carry in a trigger."""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

import pytest

from airflow_jwt_provider.connection.token_parameters import DEFAULT_TOKEN, RESERVED_CLAIMS, TokenParameters
from airflow_jwt_provider.exceptions import JwtBearerConfigError

HANDED_IN = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ1c2VyIn0.c2lnbmF0dXJlLXZhbHVl"


# --------------------------------------------------------------------------- equality and hashing


def test_equal_and_same_hash_by_content() -> None:
    one = TokenParameters(subject="bob", scope="read write", claims={"a": 1, "b": {"x": [1, 2], "y": None}})
    two = TokenParameters(subject="bob", scope="read write", claims={"b": {"y": None, "x": [1, 2]}, "a": 1})
    assert one == two
    assert hash(one) == hash(two)
    assert one.claims_json == two.claims_json == '{"a":1,"b":{"x":[1,2],"y":null}}'


@pytest.mark.parametrize(
    "other",
    [
        TokenParameters(subject="carol", claims={"roles": ["a", "b"]}),
        TokenParameters(subject="bob", scope="read", claims={"roles": ["a", "b"]}),
        TokenParameters(subject="bob", claims={"roles": ["b", "a"]}),  # list order matters
        TokenParameters(subject="bob", claims={"roles": ["a", "b"], "extra": True}),
        TokenParameters(subject="bob", claims={"roles": ["a", "b"]}, assertion=HANDED_IN),
        TokenParameters(subject="bob"),
    ],
)
def test_any_difference_makes_another_value(other: TokenParameters) -> None:
    base = TokenParameters(subject="bob", claims={"roles": ["a", "b"]})
    assert base != other
    assert len({base, other}) == 2


def test_usable_as_dict_keys_and_set_members() -> None:
    sessions: dict[TokenParameters, str] = {
        TokenParameters(subject="bob", claims={"ctx": {"tenant": "t1", "region": "eu"}}): "bob's",
        DEFAULT_TOKEN: "default",
    }
    assert sessions[TokenParameters(subject="bob", claims={"ctx": {"region": "eu", "tenant": "t1"}})] == "bob's"
    assert sessions[TokenParameters()] == "default"
    assert sessions[TokenParameters.of()] == "default"
    members = {TokenParameters(scope="a b"), TokenParameters(scope=["a", "b"]), TokenParameters(scope=("a", "b"))}  # type: ignore[arg-type]
    assert len(members) == 1


def test_not_equal_to_other_types() -> None:
    assert TokenParameters() != {}
    assert TokenParameters(subject="bob") != "bob"


# --------------------------------------------------------------------------- immutability


def test_the_callers_dict_changed_afterwards_changes_nothing() -> None:
    claims: dict[str, Any] = {"roles": ["a"], "ctx": {"tenant": "t1"}}
    params = TokenParameters(claims=claims)
    before = (hash(params), params.claims_json, json.dumps(params.claims_copy(), sort_keys=True))

    claims["roles"].append("b")
    claims["ctx"]["tenant"] = "t2"
    claims["new"] = 1

    assert (hash(params), params.claims_json, json.dumps(params.claims_copy(), sort_keys=True)) == before
    assert params == TokenParameters(claims={"roles": ["a"], "ctx": {"tenant": "t1"}})


def test_fields_and_claims_cannot_be_changed() -> None:
    params = TokenParameters(subject="bob", claims={"a": 1})
    with pytest.raises(dataclasses.FrozenInstanceError):
        params.subject = "mallory"  # type: ignore[misc]
    with pytest.raises(TypeError):
        params.claims["a"] = 2  # type: ignore[index]


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("claim", "advice"),
    [
        ("iss", "use the 'issuer' setting instead"),
        ("sub", "use the 'subject' setting instead"),
        ("aud", "use the 'audience' setting instead"),
        ("exp", "use the 'lifetime' setting instead"),
        ("iat", "the provider sets it on every assertion"),
        ("jti", "the provider sets it on every assertion"),
        ("nbf", "the provider sets it on every assertion"),
    ],
)
def test_reserved_claims_are_refused_naming_the_claim_and_what_to_use(claim: str, advice: str) -> None:
    assert claim in RESERVED_CLAIMS
    with pytest.raises(JwtBearerConfigError) as info:
        TokenParameters(claims={"tenant": "t1", claim: "x"})
    message = str(info.value)
    assert f"claims.{claim} is a registered claim" in message
    assert advice in message
    assert info.value.field == f"claims.{claim}"


@pytest.mark.parametrize(
    ("claims", "bad"),
    [
        ({"ok": 1, "when": datetime(2026, 1, 1, tzinfo=timezone.utc)}, "when"),
        ({"amount": Decimal("1.5")}, "amount"),
        ({"ok": "x", "ratio": float("nan")}, "ratio"),
        ({"limit": float("inf")}, "limit"),
        ({"tags": {"a", "b"}}, "tags"),
        ({"ok": [1], "ctx": {"nested": object()}}, "ctx"),
        ({"raw": b"bytes"}, "raw"),
    ],
)
def test_non_json_claim_values_are_refused_naming_the_claim(claims: dict[str, Any], bad: str) -> None:
    with pytest.raises(JwtBearerConfigError, match=rf"claims\.{bad} is not a JSON value") as info:
        TokenParameters(claims=claims)
    assert info.value.field == f"claims.{bad}"


def test_claim_names_must_be_strings_and_claims_a_mapping() -> None:
    with pytest.raises(JwtBearerConfigError, match="claims names must be strings"):
        TokenParameters(claims={1: "x"})  # type: ignore[dict-item]
    with pytest.raises(JwtBearerConfigError, match="claims must be a mapping") as info:
        TokenParameters(claims=[("a", 1)])  # type: ignore[arg-type]
    assert info.value.field == "claims"


@pytest.mark.parametrize("name", ["subject", "scope", "assertion"])
def test_non_string_fields_are_refused_by_name(name: str) -> None:
    with pytest.raises(JwtBearerConfigError, match=rf"{name} must be a string, not int") as info:
        TokenParameters(**{name: 42})  # type: ignore[arg-type]
    assert info.value.field == name


def test_blank_strings_mean_none() -> None:
    params = TokenParameters(subject="  ", scope="", assertion="\t\n")
    assert (params.subject, params.scope, params.assertion) == (None, None, None)
    assert params == DEFAULT_TOKEN
    assert hash(params) == hash(DEFAULT_TOKEN)
    assert TokenParameters.of(subject="", scope=" ", claims=None, assertion="") == DEFAULT_TOKEN


def test_scope_list_is_joined_with_spaces() -> None:
    assert TokenParameters(scope=["read", "write"]).scope == "read write"  # type: ignore[arg-type]
    assert TokenParameters(scope=("openid",)).scope == "openid"  # type: ignore[arg-type]
    assert TokenParameters(scope=[]).scope is None  # type: ignore[arg-type]
    with pytest.raises(JwtBearerConfigError, match="scope must be a string"):
        TokenParameters(scope=["read", 3])  # type: ignore[list-item]


# --------------------------------------------------------------------------- repr and serialization


def test_repr_hides_the_assertion() -> None:
    params = TokenParameters(subject="bob", scope="read", claims={"tenant": "t1"}, assertion=HANDED_IN)
    text = repr(params)
    assert HANDED_IN not in text
    assert "eyJ" not in text
    assert "assertion=<hidden>" in text
    assert "subject='bob'" in text
    assert "scope='read'" in text
    assert '{"tenant":"t1"}' in text
    assert "assertion" not in repr(TokenParameters(subject="bob"))


@pytest.mark.parametrize(
    "params",
    [
        DEFAULT_TOKEN,
        TokenParameters(subject="bob"),
        TokenParameters(scope="read write"),
        TokenParameters(subject="bob", scope="read", claims={"roles": ["a", "b"], "ctx": {"tenant": "t1"}}),
    ],
)
def test_to_dict_from_dict_round_trip_through_json(params: TokenParameters) -> None:
    values = params.to_dict()
    assert None not in values.values()
    again = TokenParameters.from_dict(json.loads(json.dumps(values)))
    assert again == params
    assert hash(again) == hash(params)


def test_to_dict_leaves_out_unset_fields() -> None:
    assert DEFAULT_TOKEN.to_dict() == {}
    assert TokenParameters(subject="bob").to_dict() == {"subject": "bob"}
    assert TokenParameters.from_dict(None) == DEFAULT_TOKEN
    assert TokenParameters.from_dict({}) == DEFAULT_TOKEN


def test_to_dict_refuses_a_handed_in_assertion() -> None:
    with pytest.raises(JwtBearerConfigError, match="handed-in assertion cannot be carried by a trigger") as info:
        TokenParameters(subject="bob", assertion=HANDED_IN).to_dict()
    assert info.value.field == "assertion"
    assert HANDED_IN not in str(info.value)


def test_from_dict_refuses_unknown_keys() -> None:
    with pytest.raises(JwtBearerConfigError, match="unknown token parameter") as info:
        TokenParameters.from_dict({"subject": "bob", "sub": "x", "audience": "y"})
    assert "audience, sub" in str(info.value)
    assert info.value.field == "token"
    with pytest.raises(JwtBearerConfigError, match=r"unknown token parameter.*assertion"):
        TokenParameters.from_dict({"assertion": HANDED_IN})  # never read back from a trigger either


def test_nested_claim_values_cannot_be_changed_through_the_value() -> None:
    params = TokenParameters(subject="bob", claims={"roles": ["reader"], "ctx": {"tenant": "t1"}})
    with pytest.raises((TypeError, AttributeError)):
        params.claims["roles"].append("admin")  # type: ignore[attr-defined]
    with pytest.raises(TypeError):
        params.claims["ctx"]["tenant"] = "t2"  # type: ignore[index]
    assert params.claims_copy() == {"roles": ["reader"], "ctx": {"tenant": "t1"}}
    copy = params.claims_copy()
    copy["roles"].append("admin")  # a copy is the caller's to change
    assert params.claims_copy() == {"roles": ["reader"], "ctx": {"tenant": "t1"}}
