"""Render a :class:`~edgekit.compile.build.BuildResult` for people (Rich).

``edgekit compress`` calls :func:`render_build_summary` after the build; the
full per-artifact reports are in the bundle's ``reports/``.
"""
from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{x:.0%}"


def render_build_summary(result: Any, console: Console | None = None) -> None:
    """A table of artifacts (size, ops/MACs on the accelerator, numeric check, accuracy), then problems."""
    console = console or Console()
    table = Table(title=f"bundle {result.path}")
    for col, just in (("target", "left"), ("variant", "left"), ("KiB", "right"), ("runs on", "left"),
                      ("ops", "right"), ("MACs", "right"), ("vs Keras", "right"), ("top-1", "right"), ("status", "left")):
        table.add_column(col, justify=just)
    for a in result.artifacts:
        c = a.compatibility or {}
        num = c.get("numeric") or {}
        check = "—" if not num else (f"ok {num['max_error']:.2g}" if num.get("ok") else f"[yellow]off {num['max_error']:.2g}[/]")
        top1 = f"{a.accuracy['top1']:.3f}" if a.accuracy else "—"
        status = a.status if a.status == "ok" else f"[yellow]{a.status}[/]"
        table.add_row(
            a.target, a.variant, f"{a.bytes / 1024:.1f}", c.get("accelerator", "—"),
            _pct(c.get("fraction_ops")), _pct(c.get("fraction_macs")), check, top1, status,
        )
    console.print(table)
    for target, rep in result.reports.items():
        if rep.split is not None:
            s = rep.split
            console.print(f"[yellow]{target}[/]: graph splits at op #{s['index']} {s['op']} ({s['reason']}); the rest runs on the CPU.")
        elif rep.status != "full":
            ops = ", ".join(sorted({g["op"] for g in rep.unsupported()}))
            console.print(f"{rep.headline()}; not on {rep.accelerator}: {ops}")
        comp = rep.extra.get("compiler")
        if comp and comp.get("status") != "compiled":
            console.print(f"[yellow]{target}[/]: {comp.get('message')}")
            console.print(f"  run: {comp.get('command')}", soft_wrap=True)
        elif comp:
            agree = "agrees with" if comp.get("agrees") else "[yellow]differs from[/]"
            console.print(f"{target}: edgetpu_compiler {comp.get('version')} mapped {comp.get('ops_on_tpu')} ops; {agree} the prediction.")
        for note in rep.notes:
            if note.startswith("WARNING"):
                console.print(f"[yellow]{target}[/]: {note}")
    for f in result.failures:
        console.print(f"[bold red]failed[/] {f['target']} ({f['stage']}): {f['reason']}", soft_wrap=True)
