"""``edgekit inspect MODEL``: what the model is, what it costs, what will compress."""
from __future__ import annotations

from pathlib import Path

import typer

from edgekit.cli._common import console, print_json, run_command


@run_command
def inspect(
    model: Path = typer.Argument(..., help="A .keras / .h5 file or a tf_keras SavedModel directory."),
    json_out: bool = typer.Option(False, "--json", help="Print the report as JSON."),
    allow_unsafe: bool = typer.Option(False, "--allow-unsafe", help="Allow Lambda layers and custom objects (runs code from the file)."),
) -> None:
    """Show a model's format, shapes, per-layer params/MACs, and a compression audit."""
    from edgekit.intake import inspect_model

    report = inspect_model(model, allow_unsafe=allow_unsafe)
    if json_out:
        print_json(report.to_dict())
        return
    render_report(report)


def render_report(report) -> None:  # noqa: ANN001 - ModelReport, imported lazily
    from edgekit.tables import fit_tables

    d = report.to_dict()
    console.print(f"[bold]{d['path']}[/]: {d['description']}")
    console.print(f"input {_shape(d['input_shape'])} → output {_shape(d['output_shape'])} (batch dimension left out)")
    if d["bridge"]:
        b = d["bridge"]
        console.print(
            f"Keras 3 → tf_keras bridge: outputs match, max relative deviation {b['max_relative_deviation']:.1e} "
            f"(tolerance {b['tolerance']:.0e}, {b['samples']} random inputs)"
        )
    audit = {a["name"]: a for a in d["audit"]}
    body = []
    for row in d["layers"]:
        a = audit.get(row["name"])
        body.append([
            row["name"], row["type"], _shape(row["output_shape"]), f"{row['params']:,}", f"{row['macs']:,}",
            _mark(a["prunable"]) if a else "", _mark(a["quantizable"]) if a else "",
        ])  # fmt: skip
    # A narrow terminal gets the columns in more than one table, each led by the layer name, which folds
    # rather than losing its end ("base/block_1_expand_relu" is how reports name it).
    console.print(fit_tables("Layers", ["layer", "type", "output shape", "params", "MACs", "prune", "QAT"], body,
                             justify=["left", "left", "left", "right", "right", "center", "center"]))  # fmt: skip
    t = d["totals"]
    console.print(f"total: {t['params']:,} params, {t['macs']:,} MACs per image, {t['float32_bytes'] / 1e6:.2f} MB as float32")
    blockers = [a for a in d["audit"] if a["blocks_qat"] or a["blocks_int8"]]
    if not blockers:
        console.print("audit: every layer can be quantization-aware trained and converted to full int8.")
    for a in blockers:
        if a["blocks_qat"]:
            console.print(f"[yellow]QAT[/]  {a['name']} ({a['type']}): {a['blocks_qat']}")
        if a["blocks_int8"]:
            console.print(f"[yellow]int8[/] {a['name']} ({a['type']}): {a['blocks_int8']}")
    for p in d["preprocessing"]:
        console.print(f"preprocessing: {p['name']} ({p['type']}) kept in the graph; the bundle's input spec feeds it raw pixels")
    for note in d["notes"]:
        console.print(f"[yellow]note[/]: {note}")


def _shape(shape: list) -> str:
    # The batch dimension is always open; leave it out so the table stays narrow.
    return "×".join(str(d) for d in shape[1:]) or "scalar"


def _mark(flag: bool) -> str:
    return "yes" if flag else "—"
