"""Run a DAG with ``dag.test()`` in a process whose ``[metrics]`` and ``[traces]`` the caller set, keep the spans.

``python -m tests.e2e.telemetry_runner DAG_ID OUT.json``. With ``[traces] otel_on``, importing Airflow
installs its tracer provider (with the exporter ``OTEL_TRACES_EXPORTER`` names); an in-memory exporter
is added to that provider, and the spans it saw are written to ``OUT.json`` with the task states. The
metrics go wherever ``[metrics]`` says (the test's UDP listener); the process-cache hits at exit.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(dag_id: str, out: str) -> int:
    import airflow  # noqa: F401 -- Airflow's settings: [traces] otel_on installs the tracer provider
    from airflow.dag_processing.dagbag import DagBag
    from airflow.sdk import conf
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from tests.e2e.results import collect
    from tests.telemetry_support import span_dicts

    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        print(f"Airflow installed no tracer provider ({type(provider).__name__})", file=sys.stderr)
        return 3
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    bag = DagBag(dag_folder=conf.get("core", "dags_folder"))
    if bag.import_errors:
        print(json.dumps(bag.import_errors), file=sys.stderr)
        return 2
    # dag.test() runs tasks and triggers in this process without the task runner's worker.<task_id> span:
    # one is opened around the run, as the task runner opens it, to show the spans hang under it.
    task_runner_tracer = trace.get_tracer("airflow.sdk.execution_time.task_runner")
    with task_runner_tracer.start_as_current_span(f"worker.{dag_id}"):
        result = collect(bag.dags[dag_id].test())
    payload = {
        "states": result.states,
        "xcoms": [[list(key), value] for key, value in result.all_xcoms.items()],
        "spans": span_dicts(exporter.get_finished_spans()),
    }
    Path(out).write_text(json.dumps(payload, default=repr))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
