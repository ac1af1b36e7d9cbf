"""Microsoft Graph: list users, app-only, with a certificate registered in Microsoft Entra ID.

Connection ``entra_jwt`` (type ``jwt_bearer``), from an app registration with the
application permission ``User.Read.All`` (admin consent granted) and the keystore's
certificate uploaded under "Certificates & secrets":

* Host: ``https://graph.microsoft.com``
* Login: the application (client) id
* Extra: ``{"preset": "entra", "auth_url": "https://login.microsoftonline.com/<tenant id>/oauth2/v2.0/token",
  "key_file": "/path/to/entra.p12", "keystore_password": "...", "scope": "https://graph.microsoft.com/.default"}``

The preset sends the JWT as a client assertion (``client_credentials`` with ``private_key_jwt``),
signed PS256 with the ``x5t#S256`` certificate thumbprint header, as Microsoft's current page asks.
"""

from __future__ import annotations

from typing import Any

import pendulum
import requests
from airflow.sdk import DAG

from airflow_jwt_provider.operators.http import JwtBearerHttpOperator


def next_link(response: requests.Response) -> dict[str, Any] | None:
    """``@odata.nextLink`` is an absolute URL carrying every parameter: it replaces endpoint and query."""
    link = response.json().get("@odata.nextLink")
    return {"endpoint": link, "query": None} if link else None


with DAG(
    dag_id="jwt_bearer_entra",
    description="Microsoft Graph: list users (app-only token from Entra ID)",
    schedule=None,
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    tags=["jwt-bearer", "microsoft", "entra", "example"],
    doc_md=__doc__,
):
    JwtBearerHttpOperator(
        task_id="list_users",
        jwt_bearer_conn_id="entra_jwt",
        endpoint="v1.0/users",
        query={"$select": "id,displayName,userPrincipalName", "$top": 100},
        pagination_function=next_link,
        response_filter=lambda response: response.json()["value"],
    )
