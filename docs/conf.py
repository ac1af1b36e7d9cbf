"""Sphinx configuration of the airflow-jwt-provider documentation (built by ./scripts/docs).

Everything is made on this machine at build time: no intersphinx inventories are fetched and no
diagram is rendered by a web service. The references that must follow the code (the connection's
extra keys, the CLI, the ``[jwt_bearer]`` section, the presets' rules, the error messages, the
benchmark charts) are rendered by the local extension ``docs/_ext/jwt_docs`` from the code itself.
"""

from __future__ import annotations

import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS / "_ext"))
sys.path.insert(0, str(DOCS.parent))  # the provider, devserver/ and scripts/ of this checkout

project = "airflow-jwt-provider"
author = "airflow-jwt-provider maintainers"
copyright = "airflow-jwt-provider maintainers"

extensions = ["myst_parser", "sphinx.ext.graphviz", "jwt_docs"]
source_suffix = {".md": "markdown"}
exclude_patterns = ["_build", "_generated", "benchmarks/*.json", "diagrams"]
root_doc = "index"

# MyST: headings get anchors (links like keys.md#rotating-a-key), ::: fences for directives.
myst_heading_anchors = 3
myst_enable_extensions = ["colon_fence", "deflist"]

# Graphviz: SVG made by the local `dot` (Debian's graphviz; scripts/install-system-deps).
graphviz_output_format = "svg"
graphviz_dot_args = ["-Gfontname=Helvetica", "-Nfontname=Helvetica", "-Efontname=Helvetica"]

html_theme = "furo"
html_title = "airflow-jwt-provider"
html_static_path = ["_static"]
# Offline: nothing is looked up on other sites.
intersphinx_mapping: dict[str, tuple[str, str | None]] = {}
linkcheck_ignore = [r".*"]
