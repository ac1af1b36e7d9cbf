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


def _figure(height: float) -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"svg.hashsalt": "jwt-docs", "font.size": 9, "svg.fonttype": "none"})
    return plt.subplots(figsize=(8, height))


def _save(fig: Any, srcdir: Path, name: str) -> str:
    out = srcdir / GENERATED
    out.mkdir(exist_ok=True)
    fig.tight_layout()
    fig.savefig(out / f"{name}.svg", format="svg", metadata={"Date": None})
    import matplotlib.pyplot as plt

    plt.close(fig)
    return f"/{GENERATED}/{name}.svg"


def _conditions(data: dict[str, Any]) -> str:
    quick = " (`--quick`: shorter runs)" if data.get("quick") else ""
    return (
        f"Recorded {data['recorded']} on {data['machine']}, Python {data['python']}{quick}; "
        f"file `docs/benchmarks/{data['benchmark']}.json`."
    )


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
        _conditions(data),
        "",
        f"![DAG-parsing import cost]({imports_svg})",
        "",
        f"![provider vs raw libraries]({ratios_svg})",
        "",
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
        _conditions(data) + f" {data['calls']} alternating calls per row.",
        "",
        f"![DPoP cost per key]({svg})",
        "",
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


def benchmark_section(srcdir: Path, name: str) -> str:
    return bench_tokens(srcdir) if name == "bench-tokens" else bench_dpop(srcdir)
