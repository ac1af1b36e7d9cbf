"""What a ``dag.test()`` run left, read back from the metadata database.

Kept apart from the fixtures (``conftest.py``) so that a DAG run in another process
(:mod:`tests.e2e.dag_runner`) can use it without the test session's environment set-up.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class DagRunResult:
    """What a ``dag.test()`` run left: task states, XComs, rendered fields, and the output."""

    dag_id: str
    run_id: str
    state: str
    states: dict[str, str]
    output: str = ""
    _xcoms: dict[tuple[str, int], Any] = field(default_factory=dict)
    rendered: dict[tuple[str, int], dict[str, Any]] = field(default_factory=dict)

    def xcom(self, task_id: str, map_index: int = -1) -> Any:
        return self._xcoms[(task_id, map_index)]

    @property
    def all_xcoms(self) -> dict[tuple[str, int], Any]:
        return dict(self._xcoms)


def collect(dag_run: Any) -> DagRunResult:
    from airflow.models.renderedtifields import RenderedTaskInstanceFields
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        tis = dag_run.get_task_instances(session=session)
        states = {_key(ti.task_id, ti.map_index): str(ti.state) for ti in tis}
        xcoms = {
            (row.task_id, row.map_index): XComModel.deserialize_value(row)
            for row in session.scalars(
                select(XComModel).where(
                    XComModel.dag_id == dag_run.dag_id,
                    XComModel.run_id == dag_run.run_id,
                    XComModel.key == "return_value",
                )
            )
        }
        rendered = {
            (row.task_id, row.map_index): dict(row.rendered_fields)
            for row in session.scalars(
                select(RenderedTaskInstanceFields).where(
                    RenderedTaskInstanceFields.dag_id == dag_run.dag_id,
                    RenderedTaskInstanceFields.run_id == dag_run.run_id,
                )
            )
        }
    return DagRunResult(
        dag_id=dag_run.dag_id,
        run_id=dag_run.run_id,
        state=str(dag_run.state),
        states=states,
        _xcoms=xcoms,
        rendered=rendered,
    )


def _key(task_id: str, map_index: int) -> str:
    return task_id if map_index < 0 else f"{task_id}[{map_index}]"
