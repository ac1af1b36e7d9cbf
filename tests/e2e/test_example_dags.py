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


#: Example DAGs scheduled on an asset a watcher of the provider fires (event-driven), not run by hand.
EVENT_DAGS = {"jwt_bearer_export_ready"}


def test_example_dags_are_manual_documented_and_tagged() -> None:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(REPO_ROOT / "dags"))
    assert set(bag.dags) == {"jwt_bearer_demo", *PRESET_DAGS, *EVENT_DAGS}
    for dag_id, dag in bag.dags.items():
        expected = "AssetTriggeredTimetable" if dag_id in EVENT_DAGS else "NullTimetable"
        assert type(dag.timetable).__name__ == expected, f"{dag_id} must have schedule=None (or its watched asset)"
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


def test_the_event_driven_example_watches_its_asset_with_the_event_trigger() -> None:
    import runpy

    from airflow.dag_processing.dagbag import DagBag

    from airflow_jwt_provider.triggers.event import JwtBearerHttpEventTrigger

    path = REPO_ROOT / "dags" / "jwt_bearer_export_ready.py"
    dag = DagBag(dag_folder=str(path)).dags["jwt_bearer_export_ready"]
    asset = runpy.run_path(str(path))["VENDOR_EXPORT"]
    assert [scheduled.name for scheduled in dag.timetable.asset_condition.objects] == [asset.name]
    (watcher,) = asset.watchers
    assert isinstance(watcher.trigger, JwtBearerHttpEventTrigger)
    assert watcher.trigger.jwt_bearer_conn_id == "jwt_bearer_default"
    assert dag.is_paused_upon_creation is not False  # an example starts paused: its watcher too
