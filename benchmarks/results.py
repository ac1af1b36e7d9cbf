"""What the benchmark scripts share about their results: where ``--json`` writes them."""

from __future__ import annotations

from pathlib import Path


def json_path(argv: list[str]) -> Path | None:
    """The file named after ``--json``, if any (the docs draw their charts from such files)."""
    if "--json" not in argv:
        return None
    index = argv.index("--json")
    if index + 1 >= len(argv):
        raise SystemExit("--json needs a file name")
    return Path(argv[index + 1])
