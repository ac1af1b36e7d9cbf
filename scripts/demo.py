"""Run the demo DAG end to end on this machine, with nothing to configure (``scripts/demo`` runs this).

1. writes a keystore (keytool, or cryptography when Java is absent) into a temporary folder;
2. starts the local authorization server and its protected API on 127.0.0.1 (a thread here);
3. sets up a throw-away Airflow (``AIRFLOW_HOME`` in the temporary folder, SQLite, migrated);
4. defines the ``jwt_bearer_default`` connection (an environment variable) pointing at it;
5. runs ``dags/jwt_bearer_demo.py`` with ``dag.test()`` and prints what happened.

Exits non-zero when any task did not succeed. Nothing outside the temporary folder is touched.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
DAGS_FOLDER = REPO_ROOT / "dags"
DAG_ID = "jwt_bearer_demo"
CONN_ID = "jwt_bearer_default"
CLIENT_ID = "demo-client"

sys.path.insert(0, str(REPO_ROOT))  # devserver/ is not part of the installed package


def isolate_airflow(home: Path, verbose: bool) -> None:
    """Point Airflow at ``home`` (must run before Airflow is imported: it reads the config then)."""
    for name in [n for n in os.environ if n.startswith(("AIRFLOW__", "AIRFLOW_CONN_", "AIRFLOW_VAR_"))]:
        del os.environ[name]
    os.environ.update(
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__DAGS_FOLDER=str(DAGS_FOLDER),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{home / 'airflow.db'}",
        AIRFLOW__LOGGING__LOGGING_LEVEL="INFO" if verbose else "WARNING",
    )


def migrate_database() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"], capture_output=True, text=True, env=os.environ.copy()
    )
    if result.returncode != 0:
        sys.stderr.write(result.stdout + result.stderr)
        raise SystemExit(f"airflow db migrate failed (exit {result.returncode})")


def define_connection(server: Any, keystore: Any) -> None:
    os.environ[f"AIRFLOW_CONN_{CONN_ID.upper()}"] = json.dumps(
        {
            "conn_type": "jwt_bearer",
            "host": server.api_url,
            "login": CLIENT_ID,
            "extra": {
                "auth_url": server.token_url,
                "key_file": str(keystore.path),
                "keystore_password": keystore.store_password,
                "subject": "alice",
            },
        }
    )


def run_demo_dag() -> Any:
    from airflow.dag_processing.dagbag import DagBag

    # Third-party deprecation notices (Airflow's in-process API client) are not the demo's business.
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    bag = DagBag(dag_folder=str(DAGS_FOLDER / f"{DAG_ID}.py"))
    if bag.import_errors:
        raise SystemExit(f"the demo DAG does not import: {bag.import_errors}")
    return bag.dags[DAG_ID].test()


def summarize(dag_run: Any, server: Any, seconds: float) -> bool:
    """Print the outcome; True when every task succeeded."""
    tis = sorted(dag_run.get_task_instances(), key=lambda ti: (ti.task_id, ti.map_index))
    ok = str(dag_run.state) == "success" and all(str(ti.state) == "success" for ti in tis)
    print(f"\nDAG {DAG_ID}: {dag_run.state} in {seconds:.1f} s")
    for ti in tis:
        name = ti.task_id if ti.map_index < 0 else f"{ti.task_id}[{ti.map_index}]"
        print(f"  {name:<26} {ti.state}")
    tokens = server.token_requests
    issued = Counter(r["issued_sub"] for r in tokens if r["success"])
    print(f"Token requests: {len(tokens)} ({sum(issued.values())} tokens issued: {dict(issued)})")
    for result in server.results:
        print(f"Items fetched: {result.get('items_fetched')} in {result.get('pages')} pages (posted to /api/results)")
    calls = Counter((r["path"], r["subject"]) for r in server.api_requests)
    print("API calls by path and subject the server saw:")
    for (path, subject), count in sorted(calls.items()):
        print(f"  {path:<30} {subject or '-':<8} x{count}")
    print("OK" if ok else "FAILED: see the task logs above")
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="show Airflow's INFO logs")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (Airflow home, keystore)")
    args = parser.parse_args(argv)

    workdir = Path(tempfile.mkdtemp(prefix="jwt-bearer-demo-"))
    isolate_airflow(workdir / "airflow-home", args.verbose)
    from devserver.keystores import have_keytool, make_keystore_with_fallback
    from devserver.server import LocalAuthorizationServer

    started = time.monotonic()
    keystore = make_keystore_with_fallback(
        workdir / "keys", "demo", store_password=secrets.token_urlsafe(12), alias="demo-signing"
    )
    print(
        f"Keystore: {keystore.path.name} ({keystore.store_type}, by {'keytool' if have_keytool() else 'cryptography'})"
    )
    server = LocalAuthorizationServer().start()
    try:
        server.register_client(CLIENT_ID, certificate_pem=keystore.certificate_pem)
        print(f"Authorization server and API: {server.url} (token endpoint {server.token_url})")
        print("Migrating the demo Airflow database (SQLite)...")
        migrate_database()
        define_connection(server, keystore)
        print(f"Running {DAG_ID} with dag.test()...")
        dag_run = run_demo_dag()
        ok = summarize(dag_run, server, time.monotonic() - started)
    finally:
        server.stop()
        if args.keep:
            print(f"Kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
