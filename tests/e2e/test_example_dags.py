"""Every DAG of ``dags/`` (and ``tests/dags/``) imports cleanly and says what connection it needs."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.slow

PRESET_DAGS = {
    "jwt_bearer_box": ("box_jwt", "folders/0/items"),
    "jwt_bearer_salesforce": ("salesforce_jwt", "/services/data/v62.0/query"),
    "jwt_bearer_google": ("google_jwt", "b"),
    "jwt_bearer_docusign": ("docusign_jwt", "v2.1/accounts/{{ params.account_id }}/envelopes"),
    "jwt_bearer_servicenow": ("servicenow_jwt", "api/now/table/incident"),
    "jwt_bearer_entra": ("entra_jwt", "v1.0/users"),
}


@pytest.mark.parametrize("folder", [REPO_ROOT / "dags", REPO_ROOT / "tests" / "dags"], ids=["dags", "tests-dags"])
def test_dag_files_import_without_errors(folder: Path) -> None:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(folder))
    assert bag.import_errors == {}
    assert bag.dags


def test_example_dags_are_manual_documented_and_tagged() -> None:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(REPO_ROOT / "dags"))
    assert set(bag.dags) == {"jwt_bearer_demo", *PRESET_DAGS}
    for dag_id, dag in bag.dags.items():
        assert type(dag.timetable).__name__ == "NullTimetable", f"{dag_id} must have schedule=None"
        assert "jwt-bearer" in dag.tags
        conn_id = PRESET_DAGS.get(dag_id, ("jwt_bearer_default",))[0]
        assert f"``{conn_id}``" in (dag.doc_md or ""), f"{dag_id}'s docstring must name its connection"
        assert "(type ``jwt_bearer``)" in (dag.doc_md or "")


@pytest.mark.parametrize(("dag_id", "expected"), PRESET_DAGS.items(), ids=list(PRESET_DAGS))
def test_preset_dag_calls_the_vendor_endpoint(dag_id: str, expected: tuple[str, str]) -> None:
    from airflow.dag_processing.dagbag import DagBag

    dag = DagBag(dag_folder=str(REPO_ROOT / "dags" / f"{dag_id}.py")).dags[dag_id]
    (task,) = dag.tasks
    assert (task.jwt_bearer_conn_id, task.endpoint) == expected
    assert task.pagination_function is not None
