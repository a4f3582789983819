"""Render a :class:`~edgekit.compile.build.BuildResult` for people (Rich).

``edgekit compress`` prints :func:`target_warnings` (one line per target whose
graph splits, leaves ops off the accelerator or keeps float ops) and the
failures; :func:`render_build_summary` adds a table of the artifacts. The full
per-artifact reports are in the bundle's ``reports/``.
"""
from __future__ import annotations

from typing import Any

from rich.console import Console


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{x:.0%}"


def target_warnings(result: Any) -> list[str]:
    """One line per built target that will not run whole on its accelerator (or keeps float ops in int8).

    Returns:
        Plain-text lines, e.g. ``"edgetpu: graph splits at op #2 LEAKY_RELU (...): 2 of 8 ops on Edge TPU, the rest on the CPU"``.
    """
    lines = []
    for target, rep in result.reports.items():
        parts = []
        if rep.split is not None:
            s = rep.split
            parts.append(f"graph splits at op #{s['index']} {s['op']} ({s['reason']}): {rep.ops_on} of {rep.ops_total} ops on "
                         f"{rep.accelerator}, the rest on {rep.fallback}")  # fmt: skip
        elif rep.status != "full" and rep.ops_total and not _cpu_leftovers_only(rep):
            ops = ", ".join(sorted({g["op"] for g in rep.unsupported()}))
            parts.append(f"{rep.ops_on} of {rep.ops_total} ops on {rep.accelerator} ({rep.fraction_macs:.0%} of MACs); "
                         f"not on it: {ops}")  # fmt: skip
        floats = [n for n in rep.notes if "run in float inside this int8 artifact" in n]
        if floats:
            parts.append(floats[0].rstrip("."))
        numeric = [n for n in rep.notes if n.startswith("WARNING")]
        if numeric:
            parts.append(numeric[0].removeprefix("WARNING: ").rstrip("."))
        if parts:
            lines.append(f"{target}: " + "; ".join(parts) + ".")
    return lines


def _cpu_leftovers_only(rep: Any) -> bool:
    # XNNPACK leaves some ops (an int8 classifier's final SOFTMAX) to TFLite's
    # own kernels on the same CPU: no transfer, no other device, and under 1 %
    # of the MACs is no latency worth a warning on every build. The report
    # still lists them.
    return rep.accelerator == "XNNPACK" and rep.fraction_macs is not None and rep.fraction_macs >= 0.99


def render_build_summary(result: Any, console: Console | None = None) -> None:
    """A table of artifacts (size, ops/MACs on the accelerator, numeric check, accuracy), then problems."""
    from edgekit.tables import fit_tables

    console = console or Console()
    header = ["target", "variant", "KiB", "runs on", "ops", "MACs", "vs Keras", "top-1", "status"]
    body = []
    for a in result.artifacts:
        c = a.compatibility or {}
        num = c.get("numeric") or {}
        check = "—" if not num else (f"ok {num['max_error']:.2g}" if num.get("ok") else f"[yellow]off {num['max_error']:.2g}[/]")
        top1 = f"{a.accuracy['top1']:.2%}" if a.accuracy else "—"
        status = a.status if a.status == "ok" else f"[yellow]{a.status}[/]"
        body.append([a.target, a.variant, f"{a.bytes / 1024:,.1f}", c.get("accelerator", "—"),
                     _pct(c.get("fraction_ops")), _pct(c.get("fraction_macs")), check, top1, status])  # fmt: skip
    console.print(fit_tables(f"bundle {result.path}", header, body, key_columns=1,
                             justify=["left", "left", "right", "left", "right", "right", "right", "right", "left"]))  # fmt: skip
    for line in target_warnings(result):
        console.print(f"[yellow]warning[/]: {line}", soft_wrap=True)
    for target, rep in result.reports.items():
        comp = rep.extra.get("compiler")
        if comp and comp.get("status") != "compiled":
            console.print(f"[yellow]{target}[/]: {comp.get('message')}", soft_wrap=True)
            console.print(f"  run: {comp.get('command')}", soft_wrap=True)
        elif comp:
            agree = "agrees with" if comp.get("agrees") else "[yellow]differs from[/]"
            console.print(f"{target}: edgetpu_compiler {comp.get('version')} mapped {comp.get('ops_on_tpu')} ops; {agree} the prediction.")
    for f in result.failures:
        console.print(f"[bold red]failed[/] {f['target']} ({f['stage']}): {f['reason']}", soft_wrap=True)
