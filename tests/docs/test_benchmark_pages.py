"""The benchmark figures the pages show are drawn from the recorded runs at build time, not typed.

``docs/_ext/jwt_docs/plots.py`` turns ``docs/benchmarks/*.json`` into charts and tables; these tests
render them as the build does and fail when a page stops asking for them (a table typed by hand
again), when a recorded run is no longer shown, or when a row the page cannot name slips in.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from jwt_docs.plots import dpop_costs, dpop_costs_markdown

from tests.docs.conftest import DOCS


def _recorded(name: str) -> dict[str, Any]:
    return json.loads((DOCS / "benchmarks" / f"{name}.json").read_text(encoding="utf-8"))


# -- the DPoP costs of the bound-tokens page --------------------------------------------------------------


def test_the_bound_tokens_page_shows_the_recorded_dpop_costs() -> None:
    page = (DOCS / "bound-tokens.md").read_text(encoding="utf-8")
    assert "<!-- jwt-docs: dpop-costs -->" in page
    assert "\N{MULTIPLICATION SIGN}" not in page  # no cost typed by hand next to it
    table = dpop_costs(DOCS)
    data = _recorded("bench_dpop")
    for row in data["rows"]:
        assert f"{row['algorithm']} | {row['provider']['ratio']:.2f}x | {row['verified']['ratio']:.2f}x |" in table
    assert data["recorded"] in table


def test_the_page_is_right_that_a_generated_key_costs_the_least() -> None:
    """The page recommends ``generated`` because it costs the least per call: the recorded run must agree."""
    rows = _recorded("bench_dpop")["rows"]
    generated = [r["provider"]["ratio"] for r in rows if r["dpop_key"].startswith("generated")]
    signer = [r["provider"]["ratio"] for r in rows if r["dpop_key"].startswith("signer")]
    assert generated
    assert signer
    assert max(generated) < min(signer)


def test_a_row_that_names_no_dpop_key_setting_fails() -> None:
    data = _recorded("bench_dpop")
    data["rows"][0] = {**data["rows"][0], "dpop_key": "borrowed key"}
    with pytest.raises(ValueError, match="names no dpop_key setting"):
        dpop_costs_markdown(data)
