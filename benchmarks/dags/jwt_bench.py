"""The cluster test's DAG once per token cache, for ``benchmarks/bench_cluster.py``.

``jwt_bench_memory``, ``jwt_bench_file`` and ``jwt_bench_redis`` call the API through the connection
of the same name, which the benchmark defines as the compose connection with that ``token_cache``.
"""

from __future__ import annotations

from airflow.sdk import DAG  # also what Airflow's DAG discovery looks for in a file
from jwt_cluster import build  # the cluster test's DAG file, linked next to this one in the dags folder

BENCH_DAGS: list[DAG] = [build(f"jwt_bench_{cache}", f"jwt_bench_{cache}") for cache in ("memory", "file", "redis")]
