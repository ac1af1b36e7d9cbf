"""Charts and tables of the recorded benchmark runs (``docs/benchmarks/*.json``), drawn at build time.

The benchmark scripts write these files (``--json PATH``); the pages plot them with matplotlib
instead of quoting numbers by hand, so a new recorded run changes the charts, the tables and the
stated run conditions together. The charts go to ``docs/_generated/`` (not committed).
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

GENERATED = "_generated"


def _load(srcdir: Path, name: str) -> dict[str, Any]:
    return json.loads((srcdir / "benchmarks" / f"{name}.json").read_text(encoding="utf-8"))


def _figure(height: float, rows: int = 1, columns: int = 1) -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"svg.hashsalt": "jwt-docs", "font.size": 9, "svg.fonttype": "none"})
    fig, axes = plt.subplots(rows, columns, figsize=(8, height))
    return fig, (axes if rows * columns == 1 else list(axes.flat))  # several panels: a list, row by row


def _save(fig: Any, srcdir: Path, name: str) -> str:
    out = srcdir / GENERATED
    out.mkdir(exist_ok=True)
    fig.tight_layout()
    fig.savefig(out / f"{name}.svg", format="svg", metadata={"Date": None})
    import matplotlib.pyplot as plt

    plt.close(fig)
    return f"/{GENERATED}/{name}.svg"


def _conditions(data: dict[str, Any]) -> str:
    """Where a file's figures come from: the run the script recorded, or the page they were transcribed from.

    A file the script did not write must say where its figures come from (``source``); a file with
    neither that nor the script's record of the run fails the build rather than pass for a run.
    """
    where = f"file `docs/benchmarks/{data['benchmark']}.json`."
    if "source" in data:
        return f"{data['source']} They are kept in the {where}"
    if "python" not in data:
        raise ValueError(f"{data['benchmark']}.json: no record of the run (python, machine) and no source")
    quick = " (`--quick`: shorter runs)" if data.get("quick") else ""
    return f"Recorded {data['recorded']} on {data['machine']}, Python {data['python']}{quick}; {where}"


def _head(data: dict[str, Any], charts: dict[str, str], note: str = "") -> list[str]:
    """A section's first lines: where its figures come from (and ``note``), then each chart (alt text → file)."""
    lines = [_conditions(data) + note, ""]
    for alt, svg in charts.items():
        lines += [f"![{alt}]({svg})", ""]
    return lines


def _span(value: float | list[float]) -> tuple[float, float]:
    """A figure as (low, high): one run gives a number, a transcribed range of runs a pair."""
    if isinstance(value, list | tuple):
        low, high = value
        return float(low), float(high)
    return float(value), float(value)


def _number(value: float) -> str:
    """A figure as the pages write it: whole numbers and hundreds without decimals, others with one."""
    return f"{value:.0f}" if value.is_integer() or abs(value) >= 100 else f"{value:.1f}"


def _shown(value: float | list[float] | None) -> str:
    if value is None:
        return ""
    low, high = _span(value)
    return _number(low) if low == high else f"{_number(low)}\N{EN DASH}{_number(high)}"


def _ranged_bars(ax: Any, labels: list[str], values: list[float | list[float]], title: str, log: bool) -> None:
    """A bar to each figure's low end, a whisker to its high end (a range of runs), the figure written after it."""
    spans = [_span(v) for v in values]
    lows = [low for low, _ in spans]
    top = max(high for _, high in spans)
    ax.barh(labels, lows, color="#4c72b0")
    ax.errorbar(lows, range(len(spans)), xerr=[[0] * len(spans), [h - lo for lo, h in spans]], fmt="none", capsize=4)
    for index, (value, (_, high)) in enumerate(zip(values, spans, strict=True)):
        ax.text(high * 1.3 if log else high + top * 0.03, index, _shown(value), va="center", fontsize=8)
    if log:
        ax.set_xscale("log")
    ax.set_xlim(right=top * 8 if log else top * 1.3)
    ax.set_title(title, fontsize=9)
    ax.invert_yaxis()


def bench_tokens(srcdir: Path) -> str:
    data = _load(srcdir, "bench_tokens")
    imports = [r for r in data["rows"] if "import_ms" in r]
    ratios = [r for r in data["rows"] if "ratio" in r]

    fig, ax = _figure(0.45 * len(imports) + 1)
    labels = [r["label"] for r in imports]
    ax.barh(
        labels, [r["import_ms"] for r in imports], color=["#4c72b0" if r["target_ms"] else "#999999" for r in imports]
    )
    ax.axvline(30, color="#c44e52", linestyle="--", label="target: 30 ms")
    ax.set_xlabel("extra import time over airflow.sdk + requests (ms)")
    ax.invert_yaxis()
    ax.legend(loc="lower right")
    imports_svg = _save(fig, srcdir, "bench_tokens_imports")

    fig, ax = _figure(0.6 * len(ratios) + 1)
    labels = [textwrap.fill(f"{r['section']}: {r['label']}", 38) for r in ratios]
    ax.barh(labels, [r["ratio"] for r in ratios], color="#4c72b0")
    ax.axvline(1.0, color="#333333", linewidth=0.8)
    for index, row in enumerate(ratios):
        if row["target"]:
            ax.plot([row["target"]] * 2, [index - 0.4, index + 0.4], color="#c44e52", linewidth=2)
    ax.set_xscale("log")
    ax.set_xlabel(
        "provider time / raw-library time, log scale\n(red: the row's target; below 1: the provider is faster)"
    )
    ax.invert_yaxis()
    ratios_svg = _save(fig, srcdir, "bench_tokens_ratios")

    lines = [
        *_head(data, {"DAG-parsing import cost": imports_svg, "provider vs raw libraries": ratios_svg}),
        "| section | what | provider | raw | ratio | target | last/first |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in imports:
        target = f"≤ {r['target_ms']:.0f} ms" if r["target_ms"] else ""
        lines.append(f"| {r['section']} | {r['label']} | +{r['import_ms']:.1f} ms | | | {target} | |")
    for r in ratios:
        target = f"≤ {r['target']:.2f}x" if r["target"] else ""
        flat = f"{r['last_over_first']:.2f}" if r["last_over_first"] else ""
        lines.append(
            f"| {r['section']} | {r['label'].replace('|', '/')} | {r['provider_ms']:.3f} ms | {r['raw_ms']:.3f} ms "
            f"| {r['ratio']:.3f}x | {target} | {flat} |"
        )
    missed = ", ".join(data["missed"]) or "none"
    return "\n".join([*lines, "", f"Missed targets in this run: {missed}.", ""])


def bench_dpop(srcdir: Path) -> str:
    data = _load(srcdir, "bench_dpop")
    rows = data["rows"]
    labels = [f"{r['dpop_key']} {r['algorithm']}" for r in rows]
    fig, ax = _figure(0.5 * len(rows) + 1.2)
    positions = range(len(rows))
    ax.barh([p - 0.2 for p in positions], [r["provider"]["ratio"] for r in rows], 0.4, label="endpoint checks nothing")
    ax.barh([p + 0.2 for p in positions], [r["verified"]["ratio"] for r in rows], 0.4, label="proof verified")
    ax.set_yticks(list(positions), labels)
    ax.axvline(1.0, color="#333333", linewidth=0.8)
    ax.axvline(data["target"], color="#c44e52", linestyle="--", label=f"target (generated ES256): {data['target']}x")
    ax.set_xlabel("hook.run with a DPoP-bound token / the same call with a bearer token (medians)")
    ax.invert_yaxis()
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=3, frameon=False)
    svg = _save(fig, srcdir, "bench_dpop")
    lines = [
        *_head(data, {"DPoP cost per key": svg}, f" {data['calls']} alternating calls per row."),
        "| DPoP key | alg | DPoP (checks nothing) | bearer | ratio | DPoP (verified) | bearer | ratio |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        p, v = r["provider"], r["verified"]
        lines.append(
            f"| {r['dpop_key']} | {r['algorithm']} | {p['dpop_ms']:.2f} ms | {p['bearer_ms']:.2f} ms | "
            f"{p['ratio']:.2f}x | {v['dpop_ms']:.2f} ms | {v['bearer_ms']:.2f} ms | {v['ratio']:.2f}x |"
        )
    proofs = data["proofs"]
    return "\n".join([*lines, "", f"Proofs the server verified: {proofs['verified']} of {proofs['sent']}.", ""])


def dpop_setting(label: str) -> tuple[str, str]:
    """A row's ``dpop_key`` label as (the setting's value, which key): ``"signer: SoftHSM2"`` → ``signer``.

    An unknown label fails the build: the table would otherwise name a setting value that does not exist.
    """
    setting, _, where = label.partition(":")
    if setting == "generated key" and not where:
        return "generated", "a generated key"
    if setting == "signer" and where.strip():
        return "signer", where.strip()
    raise ValueError(f"bench_dpop.json: a row's dpop_key {label!r} names no dpop_key setting")


def dpop_costs_markdown(data: dict[str, Any]) -> str:
    """The bound-tokens page's cost table: one row per recorded key, the two ratios of the run."""
    lines = [
        "| `dpop_key` | the key that signs the proofs | API call vs bearer: server checks nothing "
        "| server verifies the proof |",
        "|---|---|---|---|",
    ]
    for row in data["rows"]:
        setting, where = dpop_setting(row["dpop_key"])
        ratios = f"{row['provider']['ratio']:.2f}x | {row['verified']['ratio']:.2f}x"
        lines.append(f"| `{setting}` | {where}, {row['algorithm']} | {ratios} |")
    note = f"Medians of {data['calls']} alternating calls per row. {_conditions(data)}"
    return "\n".join([*lines, "", f"{note} Chart and milliseconds: [Benchmarks](benchmarks.md#dpop).", ""])


def dpop_costs(srcdir: Path) -> str:
    return dpop_costs_markdown(_load(srcdir, "bench_dpop"))


def bench_cluster(srcdir: Path) -> str:
    """The cluster DAG's wall time and token requests per token cache, and an API call's cost with each."""
    data = _load(srcdir, "bench_cluster")
    runs = data["runs"]
    caches = [f"token_cache {r['token_cache']}" for r in runs]
    fig, (left, right) = _figure(0.5 * len(runs) + 1.3, 1, 2)
    _ranged_bars(left, caches, [r["seconds"] for r in runs], "DAG run wall time (s)", log=False)
    _ranged_bars(right, caches, [r["token_requests"] for r in runs], "token requests, whole stack (log)", log=True)
    right.set_yticks([])
    svg = _save(fig, srcdir, "bench_cluster")
    lines = [
        *_head(data, {"the cluster DAG per token cache": svg}),
        "| token_cache | DAG run wall time | token requests |",
        "|---|---|---|",
        *(f"| {r['token_cache']} | {_shown(r['seconds'])} s | {r['token_requests']} |" for r in runs),
        "",
    ]
    per_call = data["hot_path_ms"]
    plain = per_call["plain"]
    caches_ms = "; ".join(
        f"`{cache}` {ms:.3f} ms ({ms / plain:.2f}x)" for cache, ms in per_call.items() if cache != "plain"
    )
    lines.append(
        f"An API call with the token in memory (median of {data['hot_path_calls']} GETs): a plain "
        f"`requests.Session` with a bearer auth object {plain:.3f} ms; the hook's session with {caches_ms}."
    )
    return "\n".join([*lines, ""])


def bench_triggerer(srcdir: Path) -> str:
    """One triggerer's event-loop lag, CPU and memory with the http provider's sensors and with the provider's."""
    data = _load(srcdir, "bench_triggerer")
    sides = data["contenders"]
    names = [textwrap.fill(c["name"], 22, break_long_words=False) for c in sides]
    panels = [
        ("event-loop lag p99, all polling (ms, log)", [c["windows"][-1]["lag_p99_ms"] for c in sides], True),
        ("event-loop lag p99 while all fire (ms, log)", [c["firing_lag_p99_ms"] for c in sides], True),
        ("triggerer CPU, all polling (%)", [c["windows"][-1]["cpu_percent"] for c in sides], False),
        ("RSS per trigger (KiB)", [c["rss_per_trigger_kib"] for c in sides], False),
    ]
    fig, axes = _figure(4.2, 2, 2)
    for index, (ax, (title, values, log)) in enumerate(zip(axes, panels, strict=True)):
        _ranged_bars(ax, names, values, title, log)
        if index % 2:
            ax.set_yticks([])
    svg = _save(fig, srcdir, "bench_triggerer")

    def row(label: str, cells: list[str]) -> str:
        return f"| {label} | " + " | ".join(cells) + " |"

    idle, polling = [c["windows"][0] for c in sides], [c["windows"][-1] for c in sides]
    lines = [
        *_head(data, {"one triggerer, the http provider's sensors vs the provider's": svg}),
        row(f"one triggerer, polls every {data['poll_interval']:g} s", [c["name"] for c in sides]),
        "|---|" + "---|" * len(sides),
        row("token requests", [_shown(c["token_requests"]) for c in sides]),
        row(
            "event-loop lag p50 / p99, idle",
            [f"{_shown(w['lag_p50_ms'])} / {_shown(w['lag_p99_ms'])} ms" for w in idle],
        ),
        row(
            "event-loop lag p50 / p99, all polling",
            [f"{_shown(w['lag_p50_ms'])} / {_shown(w['lag_p99_ms'])} ms" for w in polling],
        ),
        row("event-loop lag p99 while all fire", [f"{_shown(c['firing_lag_p99_ms'])} ms" for c in sides]),
        row("triggerer CPU, all polling", [f"{_shown(w['cpu_percent'])} %" for w in polling]),
        row("triggerer RSS, idle", [f"{_shown(w['rss_mib'])} MiB" for w in idle]),
        row(
            "RSS per trigger (per sensor; per watcher)",
            [
                f"{_shown(c['rss_per_trigger_kib'])} KiB ({_shown(c['rss_per_sensor_kib'])}"
                + (f"; {_shown(c['rss_per_watcher_kib'])}" if c.get("rss_per_watcher_kib") else "")
                + ")"
                for c in sides
            ],
        ),
        row("ready → every task instance out of deferred", [f"{_shown(c['seconds_to_all_fired'])} s" for c in sides]),
    ]
    target = "met" if data["token_target_met"] else "MISSED"
    return "\n".join([*lines, "", f"Token target (1 request per token lifetime for the triggerer): {target}.", ""])


SECTIONS = {
    "bench-tokens": bench_tokens,
    "bench-dpop": bench_dpop,
    "bench-cluster": bench_cluster,
    "bench-triggerer": bench_triggerer,
}


def benchmark_section(srcdir: Path, name: str) -> str:
    return SECTIONS[name](srcdir)
