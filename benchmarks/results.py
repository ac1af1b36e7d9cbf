"""What the benchmark scripts share about their results: where ``--json`` writes them, and in what shape.

Every results file starts with the same fields (``benchmark``, ``recorded``, ``python``, ``machine``), which
the documentation states under each chart it draws from the file (``docs/_ext/jwt_docs/plots.py``); the
benchmark's own figures follow.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import sys
from pathlib import Path
from typing import Any


def json_path(argv: list[str]) -> Path | None:
    """The file named after ``--json``, if any (the docs draw their charts from such files)."""
    if "--json" not in argv:
        return None
    index = argv.index("--json")
    if index + 1 >= len(argv):
        raise SystemExit("--json needs a file name")
    return Path(argv[index + 1])


def write_results(path: Path, benchmark: str, **figures: Any) -> None:
    """Write one run to ``path``: when, with which Python, on what machine, then ``figures``."""
    document = {
        "benchmark": benchmark,
        "recorded": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "python": sys.version.split()[0],
        "machine": f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores",
        **figures,
    }
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    print(f"results written to {path}")
