"""The benchmark figures the pages show are drawn from the recorded runs at build time, not typed.

``docs/_ext/jwt_docs/plots.py`` turns ``docs/benchmarks/*.json`` into charts and tables; these tests
render them as the build does and fail when a page stops asking for them (a table typed by hand
again), when a recorded run is no longer shown, or when a row the page cannot name slips in.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest
from jwt_docs.plots import _shown, bench_cluster, bench_triggerer, dpop_costs, dpop_costs_markdown

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


# -- the cluster and the triggerer ----------------------------------------------------------------------


@pytest.fixture
def srcdir(tmp_path: Path) -> Path:
    """A copy of the recorded results, so that a test may change one and the charts go to a temporary place.

    Drawing needs matplotlib, of the ``[docs]`` extra: ``./scripts/test`` has it; the version matrix does not.
    """
    pytest.importorskip("matplotlib", reason="the [docs] extra is not installed")
    shutil.copytree(DOCS / "benchmarks", tmp_path / "benchmarks")
    return tmp_path


def _rewrite(srcdir: Path, name: str, change: Callable[[dict[str, Any]], None]) -> None:
    path = srcdir / "benchmarks" / f"{name}.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    change(data)
    path.write_text(json.dumps(data), encoding="utf-8")


def test_the_benchmarks_page_draws_the_cluster_and_triggerer_runs() -> None:
    page = (DOCS / "benchmarks.md").read_text(encoding="utf-8")
    for marker in ("bench-tokens", "bench-dpop", "bench-cluster", "bench-triggerer"):
        assert f"<!-- jwt-docs: {marker} -->" in page
    assert "| memory | 48.7 s" not in page  # the tables typed by hand are gone
    assert "| token requests | 0 (static header)" not in page


def test_the_cluster_section_shows_every_recorded_run(srcdir: Path) -> None:
    section = bench_cluster(srcdir)
    data = _recorded("bench_cluster")
    for run in data["runs"]:
        assert f"| {run['token_cache']} | {run['seconds']} s | {run['token_requests']} |" in section
    assert data["source"] in section  # transcribed figures say so
    assert (srcdir / "_generated" / "bench_cluster.svg").is_file()


def test_the_triggerer_section_shows_both_sides(srcdir: Path) -> None:
    section = bench_triggerer(srcdir)
    for contender in _recorded("bench_triggerer")["contenders"]:
        assert contender["name"] in section
    polling = [c["windows"][-1] for c in _recorded("bench_triggerer")["contenders"]]
    lags = " | ".join(f"{_shown(w['lag_p50_ms'])} / {_shown(w['lag_p99_ms'])} ms" for w in polling)
    assert f"| event-loop lag p50 / p99, all polling | {lags} |" in section
    assert (srcdir / "_generated" / "bench_triggerer.svg").is_file()


def test_a_results_file_that_says_nothing_of_its_run_fails(srcdir: Path) -> None:
    """Neither the script's record of the run nor a source: the build refuses to show it as a run."""
    _rewrite(srcdir, "bench_cluster", lambda data: data.pop("source"))
    with pytest.raises(ValueError, match="no record of the run"):
        bench_cluster(srcdir)


def test_the_charts_read_what_the_scripts_write(srcdir: Path) -> None:
    """A file as ``--json`` writes it (the scripts' own field names, one number per figure) is drawn too."""
    from benchmarks.bench_triggerer import Contender, Window
    from benchmarks.results import write_results

    def window(label: str, triggers: int, lag_p99_ms: float) -> Window:
        return Window(label, triggers, 30.0, 450.0, 40.0, 0.5, lag_p99_ms, lag_p99_ms, 300)

    def side(name: str, watchers: int, polling: Window) -> Contender:
        contender = Contender(name, 50, watchers, token_requests=min(watchers, 1), api_requests=250)
        contender.windows = [window("idle (probe only)", 1, 2.0), polling]
        contender.seconds_to_all_fired, contender.firing_lag_p99_ms, contender.rss_per_trigger_kib = 10.5, 70.0, 95.0
        contender.rss_per_sensor_kib = 95.0
        return contender

    sides = [side("peer", 0, window("50 peers", 50, 300.0)), side("provider", 5, window("55 triggers", 55, 4.2))]
    figures = {"sensors": 50, "watchers": 5, "poll_interval": 10.0, "window_seconds": 30.0, "token_target_met": True}
    contenders = [asdict(contender) for contender in sides]
    write_results(srcdir / "benchmarks" / "bench_triggerer.json", "bench_triggerer", **figures, contenders=contenders)
    section = bench_triggerer(srcdir)
    assert section.startswith("Recorded ")
    assert "| event-loop lag p50 / p99, all polling | 0.5 / 300 ms | 0.5 / 4.2 ms |" in section

    runs = [{"token_cache": "redis", "state": "success", "seconds": 50.1, "token_requests": 1}]
    hot_path = {"hot_path_calls": 400, "hot_path_ms": {"plain": 1.0, "redis": 1.05}}
    write_results(
        srcdir / "benchmarks" / "bench_cluster.json", "bench_cluster", stack_start_seconds=70.0, **hot_path, runs=runs
    )
    assert "| redis | 50.1 s | 1 |" in bench_cluster(srcdir)
