"""Google's second step: the token the STS exchange gave, traded for a service account's access token.

Workload identity federation gives a *federated* token from ``https://sts.googleapis.com/v1/token``; when
the connection names ``service_account_impersonation_url`` (as Google's credential configuration files
do), that token asks the IAM Credentials API's ``generateAccessToken`` for an access token of the service
account: ``POST …/serviceAccounts/EMAIL:generateAccessToken`` with ``{"scope": [...], "lifetime": "3600s"}``,
answered ``{"accessToken": "...", "expireTime": "2026-…Z"}``. The caller needs
``iam.serviceAccounts.getAccessToken`` on the account (Service Account Token Creator).
"""

from __future__ import annotations

from datetime import datetime, timezone

import requests

from airflow_jwt_provider.common.redaction import redact_text
from airflow_jwt_provider.connection.settings import HttpSettings
from airflow_jwt_provider.exceptions import TokenEndpointError
from airflow_jwt_provider.tokens.access_token import AccessToken

#: What generateAccessToken gives by default, and at most without an organisation policy.
LIFETIME_SECONDS = 3600


def impersonate(
    federated: AccessToken,
    url: str,
    scope: str | None,
    http: HttpSettings,
    session: requests.Session,
) -> AccessToken:
    """The service account's access token, asked with ``federated`` (the STS answer)."""
    body = {"scope": (scope or "https://www.googleapis.com/auth/cloud-platform").split(), "lifetime": "3600s"}
    try:
        response = session.post(
            url,
            json=body,
            headers={"Authorization": f"Bearer {federated.access_token}", "Accept": "application/json"},
            timeout=http.timeout,
            verify=http.verify,
            proxies=dict(http.proxies) if http.proxies else None,
            allow_redirects=False,
        )
    except requests.RequestException as exc:
        raise TokenEndpointError(
            f"Cannot reach service_account_impersonation_url {url} ({type(exc).__name__})"
        ) from None
    try:
        answer = response.json()
    except ValueError:
        answer = None
    if response.status_code != 200 or not isinstance(answer, dict):
        detail = ""
        if isinstance(answer, dict) and isinstance(answer.get("error"), dict):
            message = str(answer["error"].get("message", ""))
            detail = ": " + redact_text(message[:65536], (federated.access_token,))[:300]
        raise TokenEndpointError(
            f"service_account_impersonation_url {url} refused the federated token: HTTP {response.status_code}"
            f"{detail}. The workload identity pool's principal needs roles/iam.serviceAccountTokenCreator on the "
            "service account",
            status=response.status_code,
        )
    token, expire_time = answer.get("accessToken"), answer.get("expireTime")
    if not isinstance(token, str) or not token:
        raise TokenEndpointError(f"service_account_impersonation_url {url} answered without an accessToken")
    issued = datetime.now(timezone.utc)
    expires: datetime | None = None
    if isinstance(expire_time, str):
        try:
            expires = datetime.fromisoformat(expire_time.replace("Z", "+00:00"))
        except ValueError:
            expires = None
    return AccessToken(
        access_token=token,
        token_type="Bearer",
        expires_at=expires,
        scope=" ".join(body["scope"]),
        issued_at=issued,
        assumed_lifetime=federated.assumed_lifetime,
    )
