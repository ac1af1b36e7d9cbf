"""Box: list the items of the root folder of the enterprise (or of an app user).

Connection ``box_jwt`` (type ``jwt_bearer``), from the Box developer console's JWT app
(Configuration → App Settings JSON, and the key pair whose public key you added there):

* Host: ``https://api.box.com/2.0``
* Login: the app's client id; Password: its client secret (Box wants both)
* Extra: ``{"preset": "box", "key_file": "/path/to/box-key.pem", "keystore_password": "<passphrase>",
  "key_id": "<public key id>", "subject": "<enterprise id>", "claims": {"box_sub_type": "enterprise"}}``

The app must be authorized in the Box Admin Console. Paging uses ``offset``/``limit``.
"""

from __future__ import annotations

from typing import Any

import pendulum
import requests
from airflow.sdk import DAG

from airflow_jwt_provider.operators.http import JwtBearerHttpOperator

LIMIT = 100


def next_offset(response: requests.Response) -> dict[str, Any] | None:
    body = response.json()
    offset = body["offset"] + body["limit"]
    return {"query": {"offset": offset}} if offset < body["total_count"] else None


with DAG(
    dag_id="jwt_bearer_box",
    description="Box: list the root folder with a JWT app",
    schedule=None,
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    tags=["jwt-bearer", "box", "example"],
    doc_md=__doc__,
):
    JwtBearerHttpOperator(
        task_id="list_root_folder",
        jwt_bearer_conn_id="box_jwt",
        endpoint="folders/0/items",
        query={"limit": LIMIT, "offset": 0, "fields": "id,type,name"},
        pagination_function=next_offset,
        response_filter=lambda response: [
            {"id": entry["id"], "type": entry["type"], "name": entry["name"]} for entry in response.json()["entries"]
        ],
    )
