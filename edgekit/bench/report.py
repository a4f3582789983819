"""Showing a bench result: Rich tables for people, a latency plot, a self-contained HTML report.

matplotlib is imported only by :func:`plot_latency` (Agg backend, no display
needed); the HTML embeds that plot as a base64 PNG, so the file travels alone
(a CI artifact, an e-mail).
"""
from __future__ import annotations

import base64
import html
import io
import os
from pathlib import Path
from typing import Any

from edgekit.bench.schema import write_output
from edgekit.errors import MissingExtraError

_STAGE_ORDER = ("capture", "preprocess", "invoke", "postprocess")


def _ms(v: Any) -> str:
    if v is None:
        return "-"
    v = float(v)
    return f"{v:.3f}" if v < 10 else f"{v:.1f}" if v < 1000 else f"{v:,.0f}"


def _size(n: Any) -> str:
    if n is None:
        return "-"
    n = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return "-"


def _pct(v: Any, signed: bool = True) -> str:
    if v is None:
        return "-"
    return f"{v * 100:+.1f}%" if signed else f"{v * 100:.1f}%"


def _top1(row: dict[str, Any]) -> str:
    from edgekit.bench.compare import top1

    t = top1(row.get("accuracy"))
    return "-" if t is None else f"{t * 100:.2f}%"


def _ratio(v: Any) -> str:
    return "-" if v is None else f"{v:.2f}×"


# ------------------------------------------------------------------- tables


def summary_rows(result: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """The main table as plain strings: header and one row per result (also used by the HTML)."""
    header = ["variant", "runs on", "size", "init ms", "first ms", "p50 ms", "p90 ms", "p99 ms", "mean±std ms", "FPS", "process peak RSS", "top-1"]
    body = []
    for r in result["results"]:
        if r["status"] != "ok":
            body.append([r["name"], "skipped (below)", _size(r.get("bytes"))] + ["-"] * 8 + [_top1(r)])
            continue
        lat = r["latency_ms"]
        runs_on = r.get("via") or r.get("accelerator") or "-"
        if r.get("requested") and r.get("accelerator") and r["accelerator"] != r["requested"]:
            runs_on += f" (built for {r['requested']})"
        body.append(
            [
                r["name"],
                runs_on,
                _size(r.get("bytes")),
                _ms(r.get("init_ms")),
                _ms(r.get("first_ms")),
                _ms(lat["p50"]),
                _ms(lat["p90"]),
                _ms(lat["p99"]),
                f"{_ms(lat['mean'])}±{_ms(lat['std'])}",
                f"{r['fps']:.1f}",
                "-" if r.get("rss_peak_mb") is None else f"{r['rss_peak_mb']:.0f} MB",
                _top1(r),
            ]
        )
    return header, body


def stage_rows(result: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    header = ["variant", "stage", "p50 ms", "p90 ms", "p99 ms", "max ms"]
    body = []
    for r in result["results"]:
        stages = r.get("stages_ms") or {}
        for name in sorted(stages, key=lambda s: _STAGE_ORDER.index(s) if s in _STAGE_ORDER else 99):
            s = stages[name]
            body.append([r["name"], name, _ms(s["p50"]), _ms(s["p90"]), _ms(s["p99"]), _ms(s["max"])])
    return header, body


def comparison_rows(result: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    c = result.get("comparison") or {}
    header = ["variant", "speed-up p50", "speed-up p90", "smaller by", "top-1", "Δ top-1 pts", "within budget", "recommended"]
    recommended = set((c.get("recommended") or {}).values())
    body = []
    for row in c.get("rows", []):
        within = {True: "yes", False: "no", None: "-"}[row["within_budget"]]
        body.append(
            [
                row["name"],
                _ratio(row["speedup_p50"]),
                _ratio(row["speedup_p90"]),
                _ratio(row["size_ratio"]),
                "-" if row["top1"] is None else f"{row['top1'] * 100:.2f}%",
                "-" if row["accuracy_delta_pts"] is None else f"{row['accuracy_delta_pts']:+.2f}",
                within,
                "★" if row["name"] in recommended else "",
            ]
        )
    for v in c.get("variants", []):
        body.append([str(v.get("variant")), "-", "-", "-", "-" if v.get("top1") is None else f"{v['top1'] * 100:.2f}%", "-", "-", v["note"]])
    return header, body


def mlperf_rows(result: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Per measured row: its fewest queries and shortest time over repeats, p90, and whether both meet MLPerf's rules."""
    from edgekit.bench.measure import PROFILES

    rules = PROFILES["mlperf"]
    header = ["variant", "queries", "seconds", "p90 ms (result)", "valid"]
    body = []
    for r in result["results"]:
        if r["status"] != "ok" or not r.get("repeats"):
            continue
        queries = min(int(rep["latency_ms"]["n"]) for rep in r["repeats"])
        seconds = min(rep["latency_ms"]["n"] / rep["fps"] if rep["fps"] else 0.0 for rep in r["repeats"])
        valid = queries >= rules.runs and seconds >= rules.min_seconds
        why = "" if valid else f" (< {rules.runs} queries or < {rules.min_seconds:g} s)"
        body.append([r["name"], f"{queries:,}", f"{seconds:.1f}", _ms(r["latency_ms"]["p90"]), ("yes" if valid else "no") + why])
    return header, body


def memory_note(result: dict[str, Any]) -> str | None:
    """What the RSS column measures, in words, with each artifact's own growth."""
    grown = [f"{r['name']} +{r['rss_increase_mb']:.0f} MB" for r in result["results"] if r.get("rss_increase_mb") is not None]
    if not grown and not any(r.get("rss_peak_mb") is not None for r in result["results"]):
        return None
    tf = (result.get("environment_after") or {}).get("tensorflow_loaded")
    scope = (
        "TensorFlow was loaded in it, so it includes TensorFlow's memory, which a device running only the runtime does not have"
        if tf
        else "TensorFlow was not loaded"
        if tf is False
        else "it includes everything else the process held"
    )
    return f"process peak RSS is the whole bench process's ({scope}); opening and running each artifact added: " + ", ".join(grown)


def gate_rows(gate: dict[str, Any], *, only_failing: bool = False) -> tuple[list[str], list[list[str]]]:
    header = ["variant", "metric", "baseline", "current", "change", "spread", "verdict"]
    want = {"regressed", "too_noisy"} if only_failing else None
    body = []
    for r in gate["rows"]:
        if want is not None and r["status"] not in want:
            continue
        fmt = (lambda v: "-" if v is None else f"{v:,.0f}") if r["metric"] == "bytes" else (
            (lambda v: "-" if v is None else f"{v * 100:.2f}%") if r["metric"] == "top1" else _ms
        )
        body.append([r["name"], r["metric"], fmt(r["baseline"]), fmt(r["current"]), _pct(r["change"]), _pct(r["spread"], False), r["status"]])
    return header, body


def environment_line(env: dict[str, Any]) -> str:
    parts = [
        env.get("device_model") or env.get("cpu_model") or "unknown CPU",
        f"{env.get('cpu_cores_usable')} cores",
        f"governor {env.get('governor') or 'n/a'}",
        f"{env['temperature_c']} °C" if env.get("temperature_c") is not None else "temp n/a",
        f"load {env['load_average'][0]}" if env.get("load_average") else None,
        env.get("os"),
        f"Python {env.get('python')}",
        f"{env.get('backend')} {env.get('backend_version')}",
    ]
    return " · ".join(p for p in parts if p)


def print_result(result: dict[str, Any], console: Any) -> None:
    """Rich tables: summary, per-stage, comparison and gate (when present).

    Free text (reasons, notes) is escaped: a hint such as ``pip install "edgekit[compress]"`` is not markup.
    """
    from rich.markup import escape

    from edgekit.tables import fit_tables

    def table(title: str, header: list[str], body: list[list[str]]) -> Any:
        # Split over several tables rather than cut a number (80-column terminals and CI logs).
        return fit_tables(title, header, body, key_columns=2 if len(header) > 1 and header[1] == "stage" else 1,
                          justify=["left" if i < 2 else "right" for i in range(len(header))])  # fmt: skip

    mode = "end to end over " + str(result["config"]["source"]) if result["mode"] == "end_to_end" else "per frame"
    cfg = result["config"]
    profile = cfg.get("profile", "default")
    title = (
        f"edgekit bench · {Path(result['bundle']['path']).name} · {mode} · "
        f"≥{cfg['runs']} runs & ≥{cfg['min_seconds']:g} s × {cfg['repeats']} repeat(s)"
        + (f" · profile {profile}" if profile != "default" else "")
    )
    header, body = summary_rows(result)
    if console.width >= 140:
        console.print(table(title, header, body))
    else:  # a Pi's SSH terminal: latency first, then the costs, each fitting 80 columns
        lat = [0, 1, 5, 6, 7, 8, 9]
        cost = [0, 2, 3, 4, 10, 11]
        console.print(table(title, [header[i] for i in lat], [[row[i] for i in lat] for row in body]))
        console.print(table("size, start-up, memory, accuracy", [header[i] for i in cost], [[row[i] for i in cost] for row in body]))
    note = memory_note(result)
    if note:
        console.print(f"[dim]{escape(note)}[/]")
    if profile == "mlperf":
        console.print(table("MLPerf single-stream (the result is p90; valid with ≥1024 queries and ≥60 s)", *mlperf_rows(result)))
    header, body = stage_rows(result)
    if body:
        console.print(table("per stage", header, body))
    if result.get("comparison"):
        c = result["comparison"]
        ref = c["reference"] or "none"
        console.print(table(f"compare · ratios against {ref} · accuracy budget {c['accuracy_budget']:g} pts", *comparison_rows(result)))
        for target, name in c["recommended"].items():
            console.print(f"recommended for [bold]{target}[/]: [green]{name}[/]")
        for note in c["notes"]:
            console.print(f"[dim]note: {escape(note)}[/]")
    for r in result["results"]:
        if r["status"] != "ok":
            console.print(f"[yellow]{escape(r['name'])} skipped[/]: {escape(str(r['reason']))}")
        if r.get("fallback"):
            console.print(f"[yellow]{escape(r['name'])}[/]: {escape(str(r['fallback']))}")
        for note in r.get("notes") or []:
            console.print(f"[dim]{escape(r['name'])}: {escape(note)}[/]")
    console.print(f"[dim]{escape(environment_line(result['environment']))}[/]")
    if result.get("gate"):
        print_gate(result["gate"], console)


def print_gate(gate: dict[str, Any], console: Any) -> None:
    from rich.markup import escape

    from edgekit.tables import fit_tables

    header, body = gate_rows(gate)
    colour = {"pass": "green", "regressed": "red", "too_noisy": "yellow"}[gate["outcome"]]
    styles = [{"regressed": "bold red", "too_noisy": "yellow", "improved": "green"}.get(row[-1]) for row in body]
    console.print(fit_tables(
        f"gate vs {gate['baseline']} · max regression {gate['max_regression'] * 100:g}% · [{colour}]{gate['outcome']}[/]",
        header, body, justify=["left" if i < 2 else "right" for i in range(len(header))], row_styles=styles,
    ))  # fmt: skip
    for w in gate["warnings"]:
        console.print(f"[yellow]warning:[/] {escape(w)}")


# -------------------------------------------------------------------- plot


def _matplotlib() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")  # no display on a CI runner or a headless Pi
        import matplotlib.pyplot as plt
    except ImportError as e:
        raise MissingExtraError(f"--plot and --html need matplotlib ({e}).", hint="pip install matplotlib") from e
    return plt


def plot_png(result: dict[str, Any]) -> bytes:
    """The latency distribution of every measured row (box + points, p50/p90 marked) as PNG bytes."""
    plt = _matplotlib()
    rows = [r for r in result["results"] if r["status"] == "ok" and r["samples_ms"]]
    fig, ax = plt.subplots(figsize=(9, 1.2 + 0.7 * max(len(rows), 1)), dpi=110)
    try:
        if not rows:
            ax.text(0.5, 0.5, "nothing was measured", ha="center", va="center")
            ax.set_axis_off()
        else:
            data = [r["samples_ms"] for r in rows]
            labels = [r["name"] for r in rows]
            ax.boxplot(data, vert=False, showfliers=False, widths=0.5)
            ax.invert_yaxis()  # first result on top, as in the tables
            ax.set_yticks(range(1, len(rows) + 1), labels)
            for i, r in enumerate(rows, start=1):
                jitter = [i + 0.18 * ((k * 7919) % 97 / 97 - 0.5) for k in range(len(r["samples_ms"]))]
                ax.scatter(r["samples_ms"], jitter, s=4, alpha=0.35, color="tab:blue", linewidths=0)
                ax.scatter([r["latency_ms"]["p90"]], [i], marker="|", s=300, color="tab:red", zorder=3)
            spread_ratio = max(max(d) for d in data) / max(min(min(d) for d in data), 1e-9)
            if spread_ratio > 30:
                ax.set_xscale("log")
            ax.set_xlabel("per-frame latency, ms (box: quartiles, red bar: p90)")
            mode = "end to end" if result["mode"] == "end_to_end" else "per frame"
            ax.set_title(f"{Path(result['bundle']['path']).name} · {mode} · {result['environment'].get('cpu_model') or ''}", fontsize=9)
            ax.grid(axis="x", alpha=0.3)
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
        return buf.getvalue()
    finally:
        plt.close(fig)


def plot_latency(result: dict[str, Any], path: str | os.PathLike[str], *, png: bytes | None = None) -> Path:
    """Write :func:`plot_png` (or the given ``png``) to ``path``, atomically."""
    return write_output(path, png if png is not None else plot_png(result))


# -------------------------------------------------------------------- html

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2rem;color:#222;max-width:1200px}
h1{font-size:1.4rem}h2{font-size:1.1rem;margin-top:2rem}
table{border-collapse:collapse;font-size:.85rem;margin:.5rem 0}
th,td{border:1px solid #ddd;padding:.25rem .5rem;text-align:right}
th:first-child,td:first-child,th:nth-child(2),td:nth-child(2){text-align:left}
th{background:#f4f4f4}tr.bad td{background:#fde2e2}tr.noisy td{background:#fff4d6}tr.good td{background:#e3f6e3}
.note{color:#666;font-size:.85rem}img{max-width:100%;border:1px solid #eee}
"""


def _html_table(header: list[str], body: list[list[str]], row_class: Any = None) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    rows = []
    for row in body:
        cls = row_class(row) if row_class else None
        attr = f' class="{cls}"' if cls else ""
        rows.append(f"<tr{attr}>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def html_report(result: dict[str, Any], *, plot: bytes | None = None) -> str:
    """The whole result as one self-contained HTML page (tables, plot, environment, config)."""
    esc = html.escape
    name = Path(result["bundle"]["path"]).name
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>edgekit bench · {esc(name)}</title><style>{_CSS}</style></head><body>",
        f"<h1>edgekit bench · {esc(name)}</h1>",
        f"<p class='note'>{esc(result['created'])} · edgekit {esc(result['edgekit_version'])} · mode {esc(result['mode'])} · "
        f"{esc(environment_line(result['environment']))}</p>",
        "<h2>Latency</h2>",
        _html_table(*summary_rows(result)),
    ]
    for r in result["results"]:
        if r["status"] != "ok":
            parts.append(f"<p class='note'>{esc(r['name'])} skipped: {esc(str(r['reason']))}</p>")
        if r.get("fallback"):
            parts.append(f"<p class='note'>{esc(r['name'])}: {esc(r['fallback'])}</p>")
    header, body = stage_rows(result)
    if body:
        parts += ["<h2>Per stage</h2>", _html_table(header, body)]
    if plot is None:
        plot = plot_png(result)
    parts += ["<h2>Latency distribution</h2>", f"<img alt='latency distribution' src='data:image/png;base64,{base64.b64encode(plot).decode()}'>"]
    c = result.get("comparison")
    if c:
        parts += [f"<h2>Comparison (against {esc(str(c['reference']))}, budget {c['accuracy_budget']:g} pts)</h2>", _html_table(*comparison_rows(result))]
        for target, rec in c["recommended"].items():
            parts.append(f"<p>Recommended for <b>{esc(target)}</b>: <b>{esc(rec)}</b></p>")
        parts += [f"<p class='note'>{esc(n)}</p>" for n in c["notes"]]
    g = result.get("gate")
    if g:
        classes = {"regressed": "bad", "too_noisy": "noisy", "improved": "good"}
        parts += [
            f"<h2>Gate: {esc(g['outcome'])} (max regression {g['max_regression'] * 100:g}% vs {esc(g['baseline'])})</h2>",
            _html_table(*gate_rows(g), row_class=lambda row: classes.get(row[-1])),
        ]
        parts += [f"<p class='note'>warning: {esc(w)}</p>" for w in g["warnings"]]
    env_rows = [[k, "-" if v is None else str(v)] for k, v in result["environment"].items()]
    env_rows += [[f"{k} (after)", "-" if v is None else str(v)] for k, v in result["environment_after"].items()]
    parts += ["<h2>Environment</h2>", _html_table(["key", "value"], env_rows)]
    parts += ["<h2>Configuration</h2>", _html_table(["key", "value"], [[k, str(v)] for k, v in result["config"].items()])]
    parts.append("</body></html>\n")
    return "".join(parts)


def write_html(result: dict[str, Any], path: str | os.PathLike[str], *, plot: bytes | None = None) -> Path:
    """Write :func:`html_report` to ``path`` (atomically)."""
    return write_output(path, html_report(result, plot=plot).encode("utf-8"))
