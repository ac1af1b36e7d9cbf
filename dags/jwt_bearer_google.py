"""Google Cloud: list the Cloud Storage buckets of a project with a service account key.

Connection ``google_jwt`` (type ``jwt_bearer``), from a service account JSON key file (the
service account needs e.g. ``roles/storage.objectViewer`` / ``storage.buckets.list``):

* Host: ``https://storage.googleapis.com/storage/v1``
* Extra: ``{"preset": "google", "key_file": "/path/to/service-account.json",
  "scope": "https://www.googleapis.com/auth/devstorage.read_only"}``
  (the client email and token URI are read from the key file; ``subject`` only for
  domain-wide delegation).

Set the DAG param ``project`` to your project id when triggering.
"""

from __future__ import annotations

from typing import Any

import pendulum
import requests
from airflow.sdk import DAG

from airflow_jwt_provider.operators.http import JwtBearerHttpOperator


def next_page_token(response: requests.Response) -> dict[str, Any] | None:
    token = response.json().get("nextPageToken")
    return {"query": {"pageToken": token}} if token else None


with DAG(
    dag_id="jwt_bearer_google",
    description="Google Cloud Storage: list buckets with a service account",
    schedule=None,
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    params={"project": "my-project-id"},
    tags=["jwt-bearer", "google", "example"],
    doc_md=__doc__,
):
    JwtBearerHttpOperator(
        task_id="list_buckets",
        jwt_bearer_conn_id="google_jwt",
        endpoint="b",
        query={"project": "{{ params.project }}", "maxResults": 100, "fields": "items(name,location),nextPageToken"},
        pagination_function=next_page_token,
        response_filter=lambda response: response.json().get("items", []),
    )
