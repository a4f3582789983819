"""``edgekit verify BUNDLE``: check every artifact's sha256 and size and every report.

``--adopt-compiled`` first adds an ``edgetpu_compiler`` output compiled by hand
inside the bundle to its manifest (:func:`edgekit.compile.edgetpu_compiler.adopt_compiled`).
"""
from __future__ import annotations

from pathlib import Path

import typer

from edgekit.cli._common import console, print_json, run_command


@run_command
def verify(
    bundle: Path = typer.Argument(..., help="The bundle folder (or its manifest.json)."),
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
    adopt_compiled: bool = typer.Option(
        False, "--adopt-compiled",
        help="First add the *_edgetpu.tflite that edgetpu_compiler wrote into the bundle to its manifest (hashed, atomically).",
    ),
) -> None:
    """Verify a bundle's integrity; exit code 1 if any check fails."""
    from edgekit.bundle import load_bundle, verify_bundle

    adopted = None
    if adopt_compiled:
        from edgekit.compile.edgetpu_compiler import adopt_compiled as adopt

        adopted = adopt(bundle)
    result = verify_bundle(bundle)
    manifest = load_bundle(bundle).manifest
    if json_out:
        payload = result.to_dict()
        payload["build_failures"] = manifest.failures
        if adopted is not None:
            payload["adopted"] = adopted
        print_json(payload)
    else:
        for a in adopted or []:
            agrees = {True: "agrees with", False: "DIFFERS from", None: "not compared with"}[a["agrees"]]
            console.print(f"adopted {a['file']} (compiled from {a['compiled_from']}); its op mapping {agrees} the prediction", soft_wrap=True)
            for d in a["differences"]:
                console.print(f"  {d['op']}: predicted {d['predicted_on_tpu']} on the Edge TPU, compiler mapped {d['compiler_on_tpu']}")
        _render(result, manifest)
    if not result.ok:
        raise typer.Exit(1)


def _render(result, manifest) -> None:  # noqa: ANN001 - VerifyResult, Manifest
    from rich.table import Table

    table = Table(title=f"bundle {result.path} (schema {manifest.schema_version}, built {manifest.created})")
    for col in ("file", "target", "check", "detail"):
        table.add_column(col)
    for c in result.checks:
        mark = "[green]ok[/]" if c["ok"] else "[bold red]FAIL[/]"
        table.add_row(c["file"], c["target"] or "—", mark, c["detail"])
    console.print(table)
    for f in manifest.failures:
        console.print(f"[yellow]note[/]: target {f.get('target')} was not built ({f.get('stage')}): {f.get('reason')}", soft_wrap=True)
    bad = sum(not c["ok"] for c in result.checks)
    if bad:
        console.print(f"[bold red]{bad} check(s) failed[/]: do not deploy this bundle; rebuild or re-copy it.")
    else:
        console.print(f"[green]all {len(result.checks)} checks passed[/]")
