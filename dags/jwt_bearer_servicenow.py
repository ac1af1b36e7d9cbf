"""ServiceNow: read active incidents with the Table API (OAuth JWT bearer grant).

Connection ``servicenow_jwt`` (type ``jwt_bearer``), from a JWT bearer grant (Zurich and later:
Machine Identity Console → Inbound integrations; earlier: an OAuth application registry entry) with a
JWT verifier map holding the keystore's certificate:

* Host: ``https://<instance>.service-now.com`` (the token endpoint ``/oauth_token.do`` is
  derived from it)
* Login: the application's client id; Password: its client secret
* Extra: ``{"preset": "servicenow", "key_file": "/path/to/servicenow.jks", "keystore_password": "...",
  "key_id": "<Key Id of the JWT verifier map>", "subject": "integration.user@example.com"}``
  (without ``key_id`` the assertion carries no ``kid`` and the task log warns)
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import pendulum
import requests
from airflow.sdk import DAG

from airflow_jwt_provider.operators.http import JwtBearerHttpOperator

LIMIT = 100


def next_offset(response: requests.Response) -> dict[str, Any] | None:
    """A full page means there may be more; the offset comes from the request just sent."""
    if len(response.json()["result"]) < LIMIT:
        return None
    sent = parse_qs(urlsplit(response.url).query)
    return {"query": {"sysparm_offset": int(sent.get("sysparm_offset", ["0"])[0]) + LIMIT}}


with DAG(
    dag_id="jwt_bearer_servicenow",
    description="ServiceNow Table API: active incidents",
    schedule=None,
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    tags=["jwt-bearer", "servicenow", "example"],
    doc_md=__doc__,
):
    JwtBearerHttpOperator(
        task_id="active_incidents",
        jwt_bearer_conn_id="servicenow_jwt",
        endpoint="api/now/table/incident",
        query={
            "sysparm_query": "active=true^ORDERBYnumber",
            "sysparm_fields": "number,short_description,state",
            "sysparm_limit": LIMIT,
            "sysparm_offset": 0,
        },
        headers={"Accept": "application/json"},
        pagination_function=next_offset,
        response_filter=lambda response: response.json()["result"],
    )
