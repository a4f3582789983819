"""``edgekit doctor``: what this device can run (backend, accelerators, OpenCV, cameras)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer
from rich.markup import escape

from edgekit.cli._common import console, print_json, run_command


@run_command
def doctor(
    bundle: Optional[Path] = typer.Option(None, "--bundle", help="Also try each artifact of this bundle here."),
    json_out: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Report the interpreter backend, accelerators and delegates, OpenCV build and cameras."""
    from edgekit.runtime.doctor import diagnose

    report = diagnose(str(bundle) if bundle is not None else None)
    if json_out:
        print_json(report)
        return
    render(report)


def _yes(flag: Any) -> str:
    return "[green]yes[/]" if flag else "[dim]no[/]"


def render(r: dict[str, Any]) -> None:
    from rich.table import Table

    console.print(f"edgekit {r['edgekit']} · Python {r['python']} · {r['platform']} · {r.get('libc', 'libc unknown')}")
    for crash in r.get("native_crashes", []):
        console.print(
            f"[red]an earlier edgekit run (pid {crash['pid']}) died inside a native library:[/] {crash['reason']} "
            f"(its output: {crash['file']}; delete the file once read)"
        )
    b = r["backend"]
    if b.get("selected"):
        console.print(f"interpreter backend: [bold]{b['selected']} {b['version']}[/]")
    else:
        console.print(f"[red]interpreter backend: none[/] ({escape(str(b.get('error')))})")
    for name, why in b["skipped"].items():
        console.print(f"  skipped {name}: {escape(str(why))}")
    for name, state in b["others"].items():
        console.print(f"  {name}: {escape(str(state))}")

    a = r["accelerators"]
    t = Table(title="accelerators")
    for col in ("kind", "available", "details"):
        t.add_column(col)
    cpu = a["cpu"]
    # An ARM core's short feature list decides which accelerator libraries can load; x86's is long and not news.
    arm = cpu.get("features") and cpu["machine"] in ("aarch64", "arm64")
    feats = f"; features ({cpu['features_source']}): {' '.join(cpu['features'])}" if arm else ""
    t.add_row("cpu", _yes(True), f"{cpu['cores']} cores, {cpu['machine']}{feats}")
    g = a["gpu"]
    runtimes = ", ".join(f"{k} {'yes' if v else 'no'}" for k, v in g["runtimes"].items())
    delegates = ", ".join(f"{k}: {v or 'not found'}" for k, v in g["delegate_libraries"].items())
    t.add_row(
        "gpu",
        _yes(g["likely_available"]),
        f"LiteRT GPU accelerator libs: {', '.join(g['litert_accelerator_libraries']) or 'none'}"
        + (f" [yellow](not usable: {g['litert_accelerator_cpu_problem']})[/]" if g.get("litert_accelerator_cpu_problem") else "")
        + f"; drivers: {runtimes}; "
        f"devices: {', '.join(g['devices']) or 'none'}; {delegates}",
    )
    e = a["edgetpu"]
    t.add_row(
        "edgetpu",
        _yes(e["likely_available"]),
        f"libedgetpu: {e['library'] or 'not found'}; PCIe: {', '.join(e['pcie_devices']) or 'none'}; USB: {'yes' if e['usb_device'] else 'no'}",
    )
    console.print(t)
    for lib, why in a.get("library_cpu_problems", {}).items():
        console.print(f"[yellow]{escape(str(lib))} is not loaded on this CPU:[/] {escape(str(why))}")

    cv = r["opencv"]
    if not cv.get("installed"):
        console.print(f"[red]OpenCV: not installed[/] ({escape(str(cv.get('error')))}): pip install \"edgekit\\[runtime]\"")
    else:
        console.print(
            f"OpenCV {cv['version']}: GUI {cv['gui']} (--show {'works' if cv['show_window'] else 'unavailable: ' + cv['show_window_reason']}); "
            f"FFMPEG {cv['ffmpeg']}, GStreamer {cv['gstreamer']}, V4L2 {cv['v4l2']}"
        )
        console.print(f"  video backends: {', '.join(cv['video_backends'])}; cameras via: {', '.join(cv['camera_backends'])}")
    cams = r["cameras"]
    if cams:
        for c in cams:
            console.print(f"camera {c['device']} {c['name']}{'' if c['readable'] else ' [yellow](no read permission: add yourself to the video group)[/]'}")
    else:
        console.print("cameras: none (/dev/video* absent)")
    if "bundle" in r:
        bt = Table(title=f"bundle {r['bundle']['path']}")
        for col in ("target", "file", "accelerator", "runs here", "how / why not"):
            bt.add_column(col)
        for row in r["bundle"]["artifacts"]:
            bt.add_row(row["target"], row["file"], row["accelerator"], _yes(row["runs"]), row.get("via") or row.get("reason", ""))
        console.print(bt)
