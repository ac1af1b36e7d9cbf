"""No secret leaves the provider: not in logs, XCom, rendered fields, nor in headers the API receives.

The connection carries every kind of secret (client secret, keystore password); the run
mints assertions and fetches a token. Each place a value could end up is searched for
them, and for anything shaped like a JWT (an assertion).
"""

from __future__ import annotations

from typing import Any

import pytest

from airflow_jwt_provider.hooks.jwt_bearer import JwtBearerHook
from tests.conftest import CLIENT_SECRET, STORE_PASSWORD
from tests.e2e.conftest import dump

pytestmark = pytest.mark.slow

SECRET_HEADER_WORDS = ("password", "secret", "key", "assertion", "auth_url", "subject")


@pytest.mark.parametrize("mode", ["sync", "deferred"])
def test_no_secret_in_logs_xcom_rendered_fields_or_sent_headers(
    mode: str, run_dag: Any, jwt_connection: Any, auth_server: Any, no_secret_in: Any
) -> None:
    jwt_connection(password=CLIENT_SECRET)
    result = run_dag(f"jwt_e2e_secrets_{mode}")
    assert result.states == {"echo_headers": "success", "token_summary": "success"}, result.output[-3000:]
    token = JwtBearerHook("jwt_bearer_default").get_token().access_token  # the cached token the run used
    successful = [r for r in auth_server.token_requests if r["success"]]
    assert successful
    assert successful[0]["client_secret_via"] == "post"  # the secret went to the token endpoint, as it should
    secrets = [token, CLIENT_SECRET, STORE_PASSWORD]

    no_secret_in(result.output, secrets)
    no_secret_in(dump(result.all_xcoms), secrets)
    no_secret_in(dump(result.rendered), secrets)

    received = result.xcom("echo_headers")  # what /api/echo-headers saw, Authorization reduced to its scheme
    assert received["Authorization"] == "Bearer"
    assert received["X-Request-Source"] == f"jwt_e2e_secrets_{mode}"  # templated
    assert not [name for name in received if any(word in name.lower() for word in SECRET_HEADER_WORDS)]
    no_secret_in(dump(received), secrets)

    summary = result.xcom("token_summary")
    assert summary["authorization"] == "Bearer"
    assert summary["token"].startswith("AccessToken(token_type='Bearer', expires_at=")
    assert "token: AccessToken(token_type='Bearer'" in result.output  # the print is there, the token is not
    assert f"{auth_server.api_url}/echo-headers answered HTTP 200" in result.output  # log_response ran
