"""``edgekit targets``: the target and device profiles, and what each produces."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from edgekit.cli._common import console, print_json, run_command


@run_command
def targets(
    profiles: Optional[List[Path]] = typer.Argument(
        None, help="Your own profile files (.toml) to check and list with the built-ins."
    ),
    json_out: bool = typer.Option(False, "--json", help="Print the profiles as JSON."),
) -> None:
    """List the built-in targets and devices (and your own profile files)."""
    from edgekit.profiles import get_device, get_target, list_devices, list_targets, load_profile, resolve_targets

    tgts = [get_target(n) for n in list_targets()]
    devs = [get_device(n) for n in list_devices()]
    for path in profiles or []:
        prof = load_profile(path)
        if prof.kind == "device":
            resolve_targets(device=prof)  # its targets exist and its delegates cover them
        (tgts if prof.kind == "target" else devs).append(prof)
    if json_out:
        print_json({"targets": [t.to_dict() for t in tgts], "devices": [d.to_dict() for d in devs]})
        return
    _render(tgts, devs)


def _render(tgts, devs) -> None:  # noqa: ANN001 - profiles, imported lazily
    from rich.table import Table

    table = Table(title="Targets: one artifact each")
    for col in ("target", "artifact", "quantization", "I/O", "runs on", "then"):
        table.add_column(col)
    quant = {"int8": "full int8", "fp16": "fp16 weights", "fp32": "float32"}
    for t in tgts:
        table.add_row(
            t.name,
            t.artifact,
            quant[t.quantization] + (" (+float layers)" if t.float_fallback else ""),
            f"{t.io_dtype}, batch {t.batch}",
            t.accelerator or "cpu",
            t.adapter or "—",
        )
    console.print(table)
    table = Table(title="Devices: targets in preference order")
    for col in ("device", "targets", "threads", "delegate libraries"):
        table.add_column(col)
    for d in devs:
        libs = "; ".join(f"{k}: {', '.join(v)}" for k, v in d.delegates.items()) or "—"
        table.add_row(d.name, " → ".join(d.targets), str(d.threads or "all"), libs)
    console.print(table)
    console.print("Use a name with --targets/--device, or the path of your own .toml profile.")
