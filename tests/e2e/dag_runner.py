"""Run one DAG with ``dag.test()`` in a fresh process and write what it left as JSON.

Used where the run must not share this test process's logging (DEBUG level, a fresh secret
masker): ``python -m tests.e2e.dag_runner DAG_ID OUT.json`` with the DAG folder and the
connections in the environment. The process output (the task logs, as ``dag.test()`` prints
them) is the caller's to capture.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(dag_id: str, out: str) -> int:
    from airflow.dag_processing.dagbag import DagBag
    from airflow.sdk import conf

    from tests.e2e.results import collect

    bag = DagBag(dag_folder=conf.get("core", "dags_folder"))
    if bag.import_errors:
        print(json.dumps(bag.import_errors), file=sys.stderr)
        return 2
    result = collect(bag.dags[dag_id].test())
    Path(out).write_text(
        json.dumps(
            {
                "states": result.states,
                "xcoms": [[list(key), value] for key, value in result.all_xcoms.items()],
                "rendered": [[list(key), value] for key, value in result.rendered.items()],
            },
            default=repr,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
