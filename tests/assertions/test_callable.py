"""``assertion_source: callable``: a function named by its dotted path returns the JWT (any other platform).

The functions the connections name live in this module (``tests.assertions.test_callable.<name>``) and
get their JWTs from the platform the fixture hands them.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from airflow_jwt_provider.assertions.base import PlatformSource
from airflow_jwt_provider.connection.token_parameters import DEFAULT_TOKEN
from airflow_jwt_provider.exceptions import JwtBearerConfigError
from devserver.platform import LocalPlatform
from tests.assertions.helpers import AUDIENCE, claims_of, source_error, source_of

MODULE = __name__
WORKLOAD = "spiffe://example.org/airflow/worker"
SECRET_DETAIL = "vault-token-hvs.CAESIJ-secret-detail"

#: The platform the functions below ask, and the audiences they were called with.
_platform: LocalPlatform | None = None
calls: list[str | None] = []
#: Not a function: a connection naming it must be refused.
NOT_A_FUNCTION = "a constant"


def platform_jwt(audience: str | None) -> str:
    """What a SPIFFE Workload API client would do: a JWT-SVID for the audience asked for."""
    calls.append(audience)
    assert _platform is not None
    return _platform.mint(WORKLOAD, audience or "default-audience", lifetime=600)


def other_audience_jwt(audience: str | None) -> str:
    calls.append(audience)
    assert _platform is not None
    return _platform.mint(WORKLOAD, "https://someone-else.example.com", lifetime=600)


def not_a_jwt(audience: str | None) -> str:
    calls.append(audience)
    return "hvs.not-a-jwt-but-a-vault-token"


def returns_bytes(audience: str | None) -> bytes:
    calls.append(audience)
    assert _platform is not None
    return _platform.mint(WORKLOAD, AUDIENCE).encode("ascii")


def raises(audience: str | None) -> str:
    calls.append(audience)
    raise RuntimeError(f"broker refused: {SECRET_DETAIL}")


@pytest.fixture(autouse=True)
def broker(platform: LocalPlatform) -> Iterator[LocalPlatform]:
    global _platform
    _platform = platform
    calls.clear()
    yield platform
    _platform = None
    calls.clear()


def callable_source(function: str, **extra: str) -> PlatformSource:
    return source_of({"assertion_source": "callable", "assertion_callable": f"{MODULE}.{function}", **extra})


def test_the_function_is_called_with_the_audience(broker: LocalPlatform) -> None:
    source = callable_source("platform_jwt", assertion_audience=AUDIENCE)

    token = source.assertion(DEFAULT_TOKEN)

    assert calls == [AUDIENCE]
    claims = claims_of(token)
    assert claims["aud"] == [AUDIENCE]
    assert claims["sub"] == WORKLOAD
    assert claims["iss"] == broker.issuer
    assert source.identity() == f'callable:["{broker.issuer}","{WORKLOAD}",["{AUDIENCE}"]]'


def test_without_an_audience_the_function_gets_none() -> None:
    token = callable_source("platform_jwt").assertion(DEFAULT_TOKEN)

    assert calls == [None]
    assert claims_of(token)["aud"] == ["default-audience"]


def test_the_jwt_is_reused_until_it_nears_expiry() -> None:
    source = callable_source("platform_jwt", assertion_audience=AUDIENCE)

    assert source.assertion(DEFAULT_TOKEN) == source.assertion(DEFAULT_TOKEN)
    source.identity()

    assert calls == [AUDIENCE]


def test_a_jwt_for_another_audience_is_refused() -> None:
    error = source_error(callable_source("other_audience_jwt", assertion_audience=AUDIENCE))

    assert error.field == "assertion_callable"
    assert str(error).startswith(
        f"what assertion_callable '{MODULE}.other_audience_jwt' returned holds a JWT for audience "
        f"https://someone-else.example.com, not {AUDIENCE!r}"
    )


def test_a_string_that_is_not_a_jwt_is_refused() -> None:
    error = source_error(callable_source("not_a_jwt"))

    assert error.field == "assertion_callable"
    assert str(error).startswith(
        f"what assertion_callable '{MODULE}.not_a_jwt' returned does not hold a JWT (three base64url parts"
    )
    assert "hvs.not-a-jwt-but-a-vault-token" not in str(error)


def test_bytes_are_refused_as_not_a_str() -> None:
    error = source_error(callable_source("returns_bytes"))

    assert error.field == "assertion_callable"
    assert str(error) == f"assertion_callable '{MODULE}.returns_bytes' returned a bytes, not a compact JWT (a str)"


def test_a_function_that_raises_is_named_without_its_message() -> None:
    """An exception's text may carry the broker's credentials: only its type is told."""
    error = source_error(callable_source("raises"))

    assert error.field == "assertion_callable"
    assert str(error) == f"assertion_callable '{MODULE}.raises' failed: RuntimeError"
    assert SECRET_DETAIL not in str(error)
    assert error.__cause__ is None
    assert error.__suppress_context__  # `from None`: the traceback does not carry the message either


@pytest.mark.parametrize(
    ("path", "why"),
    [
        ("no_such_package_xyz.make_jwt", "(cannot import 'no_such_package_xyz.make_jwt')"),
        (f"{MODULE}.no_such_function", f"(module '{MODULE}' has no attribute 'no_such_function')"),
        (f"{MODULE}.NOT_A_FUNCTION", f"('{MODULE}.NOT_A_FUNCTION' is a str, not a function)"),
    ],
)
def test_a_function_that_cannot_be_imported_is_named(path: str, why: str) -> None:
    source = source_of({"assertion_source": "callable", "assertion_callable": path})

    error = source_error(source)

    assert error.field == "assertion_callable"
    assert str(error) == (
        f"assertion_callable {path!r} cannot be imported {why}; it must be importable on every worker and the "
        "triggerer (an installed package or the plugins folder)"
    )
    assert calls == []


def test_a_path_without_a_module_is_refused_when_parsed() -> None:
    with pytest.raises(JwtBearerConfigError) as caught:
        source_of({"assertion_source": "callable", "assertion_callable": "make_jwt"})

    assert caught.value.field == "assertion_callable"
    assert str(caught.value) == "Connection 'my_conn': assertion_callable is 'make_jwt': give package.module.function."
