"""``assertion_source: file``: the projected token the platform writes and rotates (Kubernetes, Entra, SPIFFE).

The files are written by :class:`devserver.platform.ProjectedToken` the way the kubelet writes them
(``..data`` symlink swap), so the reads meet real renames, symlinks and deleted directories.
"""

from __future__ import annotations

import os
import re
import shutil
import threading
import time
import types
from collections.abc import Callable
from pathlib import Path

import pytest

import airflow_jwt_provider.assertions.file as file_module
from airflow_jwt_provider.assertions import jwt as external_jwt
from airflow_jwt_provider.assertions.base import PlatformSource
from airflow_jwt_provider.assertions.jwt import ExternalJwt
from airflow_jwt_provider.connection.token_parameters import DEFAULT_TOKEN
from airflow_jwt_provider.exceptions import AssertionSourceError
from devserver.platform import Layout, LocalPlatform, ProjectedToken
from tests.assertions.helpers import AUDIENCE, claims_of, source_error, source_of

SERVICE_ACCOUNT_SUB = "system:serviceaccount:default:airflow"


@pytest.fixture
def projection(platform: LocalPlatform, tmp_path: Path) -> ProjectedToken:
    """A service account token projected for :data:`AUDIENCE`, kubelet layout."""
    return platform.project_service_account(tmp_path / "tokens" / "token", AUDIENCE)


def file_source(path: Path | str, **extra: str) -> PlatformSource:
    return source_of({"assertion_source": "file", "assertion_file": str(path), **extra})


def count_reads(source: PlatformSource, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the source's reads of the file: one entry per read."""
    reads: list[int] = []
    read: Callable[[], ExternalJwt] = source._read  # type: ignore[attr-defined]

    def counted() -> ExternalJwt:
        reads.append(1)
        return read()

    monkeypatch.setattr(source, "_read", counted)
    return reads


# --- reading and rotation ------------------------------------------------------------------------------------------


def test_the_projected_token_is_the_assertion(platform: LocalPlatform, projection: ProjectedToken) -> None:
    source = file_source(projection.path)

    token = source.assertion(DEFAULT_TOKEN)

    assert token == projection.token
    claims = claims_of(token)
    assert claims["iss"] == platform.issuer
    assert claims["sub"] == SERVICE_ACCOUNT_SUB
    assert claims["aud"] == [AUDIENCE]
    current = source.current()
    assert current.subject == SERVICE_ACCOUNT_SUB
    assert current.audiences == (AUDIENCE,)
    assert source.describe() == f"assertion_file {str(projection.path)!r}"
    assert token not in repr(current)  # the decoded view never shows the credential


@pytest.mark.parametrize("layout", ["kubelet", "file"])
def test_identity_survives_rotation_while_the_assertion_follows_the_file(
    platform: LocalPlatform, tmp_path: Path, layout: Layout
) -> None:
    projection = platform.project_service_account(tmp_path / "tokens" / "token", AUDIENCE, layout=layout)
    source = file_source(projection.path)
    first = source.assertion(DEFAULT_TOKEN)
    identity = source.identity()

    rotated = projection.rotate()

    assert rotated != first
    assert source.assertion(DEFAULT_TOKEN) == rotated
    assert source.identity() == identity
    assert identity == f'file:["{platform.issuer}","{SERVICE_ACCOUNT_SUB}",["{AUDIENCE}"]]'
    assert first not in identity
    assert rotated not in identity


def test_the_file_is_read_again_only_when_it_changed(
    projection: ProjectedToken, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = file_source(projection.path)
    reads = count_reads(source, monkeypatch)

    first = source.assertion(DEFAULT_TOKEN)
    again = source.assertion(DEFAULT_TOKEN)
    source.identity()
    assert again == first
    assert len(reads) == 1

    projection.rotate()
    second = source.assertion(DEFAULT_TOKEN)
    source.assertion(DEFAULT_TOKEN)
    source.identity()
    assert second == projection.token != first
    assert len(reads) == 2


def test_a_rotation_after_an_expired_token_is_picked_up(projection: ProjectedToken) -> None:
    source = file_source(projection.path)
    projection.expire_now()
    source_error(source)

    fresh = projection.rotate()

    assert source.assertion(DEFAULT_TOKEN) == fresh


# --- refusals -------------------------------------------------------------------------------------------------------


def test_an_expired_token_is_refused_naming_the_file(projection: ProjectedToken) -> None:
    source = file_source(projection.path)
    source.assertion(DEFAULT_TOKEN)
    expired = projection.expire_now()

    error = source_error(source)

    message = str(error)
    assert error.field == "assertion_file"
    assert message.startswith(f"assertion_file {str(projection.path)!r} holds a JWT that expired at ")
    assert re.search(r"\(99\d s ago\)", message)  # issued 1000 s ago, lived 10 s
    assert "an expired JWT is never sent" in message
    assert "serviceAccountToken.expirationSeconds" in message
    assert expired not in message
    assert expired.split(".")[2] not in message  # not even its signature


def test_a_token_that_expires_while_the_file_stays_is_refused(
    platform: LocalPlatform, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Checked on every use, not only when the file is read: the platform stopped rotating it."""
    platform.clock_offset = -3593  # issued 3593 s ago, lives 3600 s: 6 to 7 s left now
    projection = platform.project_service_account(tmp_path / "tokens" / "token", AUDIENCE)
    source = file_source(projection.path)
    assert source.assertion(DEFAULT_TOKEN) == projection.token

    # Three seconds later (the expiry check's clock only): 3 to 4 s left, within the 5 s margin, the file unchanged.
    later = types.SimpleNamespace(time=lambda: time.time() + 3)
    monkeypatch.setattr(external_jwt, "time", later)

    error = source_error(source)
    assert error.field == "assertion_file"
    assert str(error).startswith(f"assertion_file {str(projection.path)!r} holds a JWT that expires in ")
    assert "an expired JWT is never sent" in str(error)
    assert projection.token not in str(error)


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "not-mounted" / "token"

    error = source_error(file_source(path))

    assert error.field == "assertion_file"
    assert str(error) == (
        f"assertion_file {str(path)!r} does not exist on this machine; the token must be mounted on every worker "
        "and the triggerer (a projected service-account token volume, or the path the platform names)"
    )


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root reads a file of mode 000")
def test_an_unreadable_file_is_named(projection: ProjectedToken) -> None:
    target = projection.path.resolve()
    target.chmod(0)

    error = source_error(file_source(projection.path))

    assert error.field == "assertion_file"
    assert str(error).endswith("cannot be read (Permission denied); check its permissions")
    assert str(error).startswith(f"assertion_file {str(projection.path)!r} ")


def test_a_directory_instead_of_a_file_is_named(tmp_path: Path) -> None:
    """What a volume mounted one level too high looks like (readable by root too, unlike mode 000)."""
    error = source_error(file_source(tmp_path))

    assert error.field == "assertion_file"
    assert str(error) == f"assertion_file {str(tmp_path)!r} cannot be read (Is a directory); check its permissions"


def test_a_file_that_is_not_text_is_named(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_bytes(b"\xff\xfe\x00binary")

    error = source_error(file_source(path))

    assert error.field == "assertion_file"
    assert str(error) == f"assertion_file {str(path)!r} cannot be read (not UTF-8 text); check its permissions"


PEM_BODY = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7"
PEM_KEY = f"-----BEGIN PRIVATE KEY-----\n{PEM_BODY}\n-----END PRIVATE KEY-----\n"


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        pytest.param("", "does not hold a JWT (three base64url parts separated by dots)", id="empty"),
        pytest.param("hello-world-not-a-token", "does not hold a JWT (three base64url parts", id="garbage"),
        pytest.param(PEM_KEY, "does not hold a JWT (three base64url parts", id="pem-key"),
        pytest.param("abc.def.ghi", "holds three dot-separated parts that are not a JWT's base64url JSON", id="dots"),
        pytest.param("W10.W10.sig", "holds a JWT whose header or claims are not objects", id="json-arrays"),
    ],
)
def test_a_file_without_a_jwt_is_refused(projection: ProjectedToken, content: str, problem: str) -> None:
    projection.write(content)

    error = source_error(file_source(projection.path))

    assert error.field == "assertion_file"
    assert str(error).startswith(f"assertion_file {str(projection.path)!r} {problem}")
    if content.strip():
        assert content.strip() not in str(error)
    assert PEM_BODY not in str(error)


def test_a_token_for_another_audience_is_refused(platform: LocalPlatform, tmp_path: Path) -> None:
    projection = platform.project_service_account(tmp_path / "tokens" / "token", "https://other.example.com")
    source = file_source(projection.path, assertion_audience=AUDIENCE)

    error = source_error(source)

    assert error.field == "assertion_file"
    assert str(error) == (
        f"assertion_file {str(projection.path)!r} holds a JWT for audience https://other.example.com, not "
        f"{AUDIENCE!r}: the platform was asked for another audience, or the setting is wrong"
    )
    assert projection.token not in str(error)


def test_the_audience_may_be_one_of_several(platform: LocalPlatform, tmp_path: Path) -> None:
    projection = platform.project_service_account(tmp_path / "tokens" / "token", ["https://other.example", AUDIENCE])

    assert file_source(projection.path, assertion_audience=AUDIENCE).assertion(DEFAULT_TOKEN) == projection.token


# --- $VARIABLES ------------------------------------------------------------------------------------------------------


def test_a_variable_is_expanded_where_the_file_is_read(
    projection: ProjectedToken, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = file_source("$AZURE_FEDERATED_TOKEN_FILE")  # built before the variable exists, like on the webserver
    monkeypatch.setenv("AZURE_FEDERATED_TOKEN_FILE", str(projection.path))

    assert source.assertion(DEFAULT_TOKEN) == projection.token


@pytest.mark.parametrize(
    "path", ["$AZURE_FEDERATED_TOKEN_FILE", "${AZURE_FEDERATED_TOKEN_FILE}", "$AZURE_FEDERATED_TOKEN_FILE/token"]
)
def test_an_unset_variable_is_named(path: str) -> None:
    error = source_error(file_source(path))

    assert error.field == "assertion_file"
    assert str(error).startswith(
        f"assertion_file {path!r}: the environment variable AZURE_FEDERATED_TOKEN_FILE is not set in this process; "
    )


def test_an_unset_variable_followed_by_other_characters_is_named(tmp_path: Path) -> None:
    path = "/var/run/$TOKEN_DIR-projected/token"

    error = source_error(file_source(path))

    assert "the environment variable TOKEN_DIR is not set in this process" in str(error)


# --- the kubelet's swap, a vanished volume, a rewritten file ----------------------------------------------------------


def test_reads_during_kubelet_rotations_never_fail(platform: LocalPlatform, tmp_path: Path) -> None:
    """The kubelet deletes the previous token directory at once: a reader may meet no file for an instant.

    Three readers (three hooks of one worker, each with its own source) read while the kubelet rotates 200
    times. Without the source's retries (``_SWAP_RETRY_DELAYS = ()``) this failed in 8 to 10 runs out of 10.
    """
    projection = platform.project_service_account(tmp_path / "tokens" / "token", AUDIENCE, keep_previous_data=False)
    sources = [file_source(projection.path) for _ in range(3)]
    identity = sources[0].identity()
    errors: list[BaseException] = []
    seen: set[str] = set()
    identities: set[str] = set()
    stop = threading.Event()

    def read_continuously(source: PlatformSource, with_identity: bool) -> None:
        while not stop.is_set():
            try:
                seen.add(source.assertion(DEFAULT_TOKEN))
                if with_identity:
                    identities.add(source.identity())
            except BaseException as exc:  # any failure is the finding
                errors.append(exc)
                return

    readers = [
        threading.Thread(target=read_continuously, args=(source, index == 0), name=f"assertion-reader-{index}")
        for index, source in enumerate(sources)
    ]
    for reader in readers:
        reader.start()
    try:
        for _ in range(200):
            projection.rotate()
    finally:
        stop.set()
        for reader in readers:
            reader.join(timeout=30)

    assert not any(reader.is_alive() for reader in readers)
    assert errors == []
    assert projection.rotations == 200
    assert len(seen) > 10, "the readers must have met many rotations"
    assert identities == {identity}
    assert all(source.assertion(DEFAULT_TOKEN) == projection.token for source in sources)


def test_the_identity_outlives_the_file_but_the_assertion_does_not(projection: ProjectedToken) -> None:
    """A cached access token outlives the JWT it was fetched with: the identity (its cache key) stays known."""
    source = file_source(projection.path)
    source.assertion(DEFAULT_TOKEN)
    identity = source.identity()

    shutil.rmtree(projection.path.parent)  # the volume is gone

    assert source.identity() == identity
    error = source_error(source)
    assert error.field == "assertion_file"
    assert str(error).startswith(f"assertion_file {str(projection.path)!r} does not exist on this machine")


def test_asking_for_the_identity_of_a_vanished_file_does_not_wait_at_every_call(
    projection: ProjectedToken, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The identity is asked on every API call: once the file is gone, the calls do not each wait out the retries
    meant for the kubelet's swap (the source is looked at again only every few seconds)."""
    source = file_source(projection.path)
    identity = source.identity()
    shutil.rmtree(projection.path.parent)
    source._identity_until = 0.0  # as if the recheck interval had passed
    waits: list[float] = []
    monkeypatch.setattr("airflow_jwt_provider.assertions.file.time.sleep", waits.append)

    for _ in range(20):
        assert source.identity() == identity

    assert len(waits) <= len(file_module._SWAP_RETRY_DELAYS)  # one look at the source, not twenty


def test_identity_before_any_read_fails_when_there_is_no_file(tmp_path: Path) -> None:
    source = file_source(tmp_path / "missing")

    with pytest.raises(AssertionSourceError) as caught:
        source.identity()

    assert caught.value.field == "assertion_file"
    assert "does not exist on this machine" in str(caught.value)


def test_a_file_rewritten_without_a_jwt_keeps_failing(projection: ProjectedToken) -> None:
    source = file_source(projection.path)
    previous = source.assertion(DEFAULT_TOKEN)
    projection.write("not-a-jwt")

    first = source_error(source)
    assert "does not hold a JWT" in str(first)

    # The file has not changed since: it still holds no JWT, and the previous JWT must not be sent instead.
    second = source_error(source)
    assert "does not hold a JWT" in str(second)
    assert previous not in str(second)
