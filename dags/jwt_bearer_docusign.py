"""DocuSign: list an account's envelopes changed recently, impersonating a user.

Connection ``docusign_jwt`` (type ``jwt_bearer``), from an integration key with an RSA key
pair, the user having granted consent (``signature impersonation``) once:

* Host: the account's base URI + ``/restapi`` (``https://demo.docusign.net/restapi`` for the
  developer sandbox; see ``/oauth/userinfo`` for production accounts)
* Login: the integration key
* Extra: ``{"preset": "docusign", "key_file": "/path/to/docusign-private.pem",
  "subject": "<user id (GUID) to impersonate>", "scope": "signature impersonation"}``;
  production: ``"auth_url": "https://account.docusign.com/oauth/token"``.

Set the DAG params ``account_id`` (the API account id) and ``from_date`` when triggering.
"""

from __future__ import annotations

from typing import Any

import pendulum
import requests
from airflow.sdk import DAG

from airflow_jwt_provider.operators.http import JwtBearerHttpOperator


def next_envelopes(response: requests.Response) -> dict[str, Any] | None:
    body = response.json()
    end = int(body.get("endPosition", 0))
    total = int(body.get("totalSetSize", 0))
    return {"query": {"start_position": end + 1}} if end + 1 < total else None


with DAG(
    dag_id="jwt_bearer_docusign",
    description="DocuSign eSignature: list envelopes with JWT grant impersonation",
    schedule=None,
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    params={"account_id": "00000000-0000-0000-0000-000000000000", "from_date": "2024-01-01"},
    tags=["jwt-bearer", "docusign", "example"],
    doc_md=__doc__,
):
    JwtBearerHttpOperator(
        task_id="list_envelopes",
        jwt_bearer_conn_id="docusign_jwt",
        endpoint="v2.1/accounts/{{ params.account_id }}/envelopes",
        query={"from_date": "{{ params.from_date }}", "count": 100},
        pagination_function=next_envelopes,
        response_filter=lambda response: [
            {"envelopeId": e["envelopeId"], "status": e["status"]} for e in response.json().get("envelopes") or []
        ],
    )
