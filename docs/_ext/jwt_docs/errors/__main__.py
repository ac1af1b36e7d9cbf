"""``python -m jwt_docs.errors INDEX RESULT``: produce ``CASES[INDEX]`` in this new process, write it to RESULT.

What :func:`jwt_docs.errors.produce` runs for a case that needs a process of its own (SoftHSM2 reads its
configuration once per process). The result is a JSON object, ``exception`` and ``message``; no file is
written when the case raised nothing, and the parent reports this process's error output.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from jwt_docs import _quiet_airflow
from jwt_docs.errors import CASES, produce


def main(argv: list[str]) -> int:
    index, result = int(argv[0]), Path(argv[1])
    _quiet_airflow()
    produced = produce(CASES[index], here=True)
    result.write_text(json.dumps({"exception": produced.exception, "message": produced.message}), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
