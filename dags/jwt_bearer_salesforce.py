"""Salesforce: run a SOQL query as the integration user (OAuth 2.0 JWT bearer flow).

Connection ``salesforce_jwt`` (type ``jwt_bearer``), from an external client app (or a connected
app made before Spring '26) with "Use digital signatures" (its certificate is the keystore's) and
the user pre-authorized:

* Host: leave empty: the API base is the ``instance_url`` returned with the token
  (or set it to ``https://<my-domain>.my.salesforce.com``)
* Login: the app's consumer key
* Extra: ``{"preset": "salesforce", "key_file": "/path/to/salesforce.p12", "keystore_password": "...",
  "subject": "integration.user@example.com"}``; to request the token from your My Domain add
  ``"auth_url": "https://<my-domain>.my.salesforce.com/services/oauth2/token"`` (``aud`` stays
  ``https://login.salesforce.com``, as Salesforce documents); for a sandbox,
  ``https://test.salesforce.com/services/oauth2/token`` or the sandbox's My Domain.

Salesforce returns no ``expires_in``: the provider refreshes on the first 401.
"""

from __future__ import annotations

from typing import Any

import pendulum
import requests
from airflow.sdk import DAG

from airflow_jwt_provider.operators.http import JwtBearerHttpOperator

API_VERSION = "v62.0"


def next_records(response: requests.Response) -> dict[str, Any] | None:
    """``nextRecordsUrl`` is a path with its own cursor: it replaces the endpoint and the query."""
    url = response.json().get("nextRecordsUrl")
    return {"endpoint": url, "query": None} if url else None


with DAG(
    dag_id="jwt_bearer_salesforce",
    description="Salesforce: SOQL query with the JWT bearer flow",
    schedule=None,
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    params={"soql": "SELECT Id, Name FROM Account ORDER BY Name LIMIT 200"},
    tags=["jwt-bearer", "salesforce", "example"],
    doc_md=__doc__,
):
    JwtBearerHttpOperator(
        task_id="soql_query",
        jwt_bearer_conn_id="salesforce_jwt",
        endpoint=f"/services/data/{API_VERSION}/query",
        query={"q": "{{ params.soql }}"},
        pagination_function=next_records,
        response_filter=lambda response: response.json()["records"],
    )
