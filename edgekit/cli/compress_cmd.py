"""``edgekit compress MODEL --data D --out B``: prune, QAT, calibrate, evaluate, and build a bundle."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer
from rich.markup import escape

from edgekit.cli._common import console, err_console, print_json, run_command


@run_command
def compress(
    model: Path = typer.Argument(..., help="A .keras / .h5 file or a tf_keras SavedModel directory."),
    data: Path = typer.Option(..., "--data", "-d", help="Labelled images (one subfolder per class) or an .npz with x and y."),
    out: Path = typer.Option(..., "--out", "-o", help="The bundle folder to write (an earlier bundle there is replaced atomically)."),
    recipe: Optional[str] = typer.Option(
        None, "--recipe", "-r", help="A recipe .toml, or a shipped one: default, aggressive-size, latency. [default: default]"
    ),
    preprocess: Optional[str] = typer.Option(
        None,
        "--preprocess",
        help="Preprocessing preset (unit, raw, symmetric, imagenet) or a JSON spec file; default: MODEL.preprocess.json beside the model.",
    ),
    sparsity: Optional[float] = typer.Option(None, "--sparsity", help="Unstructured pruning: fraction of weights set to zero, in (0, 1)."),
    mn: Optional[str] = typer.Option(None, "--mn", help="M:N pruning, e.g. 2:4 (at most M non-zero weights in every N)."),
    structured: Optional[float] = typer.Option(None, "--structured", help="Fraction of Conv/Dense channels to remove, in (0, 1)."),
    prune_output_layer: Optional[bool] = typer.Option(
        None, "--prune-head/--dense-head", help="--sparsity/--mn also prune the layer producing the output (default: left dense)."
    ),
    prune_min_weights: Optional[int] = typer.Option(
        None, "--prune-min-weights", help="--sparsity/--mn leave kernels with fewer weights than this dense (default 1024)."
    ),
    qat: Optional[bool] = typer.Option(None, "--qat/--no-qat", help="Quantization-aware training (sparsity-preserving after pruning)."),
    distill: Optional[bool] = typer.Option(None, "--distill/--no-distill", help="Fine-tune with the original model as teacher."),
    epochs: Optional[int] = typer.Option(None, "--epochs", help="Fine-tuning epochs per phase."),
    calibration_samples: Optional[int] = typer.Option(None, "--calibration-samples", help="Representative images for int8 calibration."),
    batch_size: Optional[int] = typer.Option(
        None, "--batch-size", help="Fine-tuning batch per replica (a step under N GPUs/workers trains on N times as many). [recipe default: 32]"
    ),
    eval_samples: Optional[int] = typer.Option(
        None, "--eval-samples", help="Score every variant and the accuracy budget loop on at most this many held-out images (stratified). [default: all]"
    ),
    strategy: str = typer.Option(
        "auto", "--strategy", help="Fine-tuning on several devices with tf.distribute: auto, none, mirrored (every GPU), multiworker (TF_CONFIG)."
    ),
    max_accuracy_drop: Optional[float] = typer.Option(
        None, "--max-accuracy-drop", help="Top-1 points int8 may lose vs the original float model; error-prone layers stay float to meet it."
    ),
    targets: Optional[str] = typer.Option(None, "--targets", "-t", help="Comma-separated target names, e.g. cpu,gpu,edgetpu."),
    device: Optional[str] = typer.Option(None, "--device", help="A device profile (rpi4, rpi5, jetson-nano, jetson-orin-nano, coral-usb, coral-devboard) or .toml: build its targets."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Seed for the split, sampling and fine-tuning."),
    allow_unsafe: bool = typer.Option(False, "--allow-unsafe", help="Allow Lambda layers and custom objects (runs code from the file)."),
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON (progress and tables are left out)."),
) -> None:
    """Compress a trained Keras CNN (pruning, QAT, int8) and build a bundle with every variant's accuracy measured.

    Flags override the recipe; the recipe actually used is saved in the manifest.
    Exits 1 when --max-accuracy-drop cannot be met (the bundle then holds the closest variant)
    or when a target failed (the bundle then holds the targets that were built).
    """
    from edgekit.compress import compress as run

    overrides: dict[str, Any] = {
        "sparsity": sparsity,
        "mn": mn,
        "structured": structured,
        "prune_output_layer": prune_output_layer,
        "prune_min_weights": prune_min_weights,
        "qat": qat,
        "distill": distill,
        "epochs": epochs,
        "calibration_samples": calibration_samples,
        "batch_size": batch_size,
        "eval_samples": eval_samples,
        "max_accuracy_drop": max_accuracy_drop,
        "seed": seed,
    }
    target_list = [t.strip() for t in targets.split(",")] if targets is not None else None
    result = run(
        model,
        data,
        out,
        recipe=recipe,
        targets=target_list,
        device=device,
        preprocess=preprocess,
        overrides=overrides,
        allow_unsafe=allow_unsafe,
        progress=not json_out,
        strategy=strategy,
    )
    if json_out:
        print_json(result.to_dict())
    else:
        render(result)
    failed = result.build.failures if result.build is not None else []
    for f in failed:
        err_console.print(f"[bold red]target {f['target']} failed[/] ({f.get('stage', 'build')}): {escape(str(f['reason']))}", soft_wrap=True)
    if not result.budget_met:
        err_console.print(f"[bold red]accuracy budget not met:[/] {escape(result.reports['budget']['message'])}", soft_wrap=True)
    if failed or not result.budget_met:
        raise typer.Exit(1)


def render(result: Any) -> None:
    """Tables for people: the variants, then what each step did, the artifacts, warnings, and where the time went."""
    from edgekit.compile.summary import target_warnings
    from edgekit.compress.pipeline import describe_recipe
    from edgekit.tables import fit_tables

    r = result.recipe
    # The recipe's description may promise QAT; when tfmot could not apply it, the header says so.
    skipped = " [bold yellow](QAT not applied: see the note below)[/]" if r.qat and not result.reports.get("qat") else ""
    if result.reports.get("qat_int8_problem"):
        skipped = " [bold yellow](the QAT model gave no working int8 artifact; post-training int8 shipped: see the note below)[/]"
    console.print(
        f"compressed with recipe [bold]{describe_recipe(r)}[/]{skipped} in {result.timings.get('total', 0):.1f} s "
        f"→ bundle [bold]{result.bundle}[/]",
        soft_wrap=True,
    )
    data = result.reports["data"]
    console.print(
        f"data: {data['samples']} images ({data['train']} to fine-tune and calibrate, {data['held_out']} held out for every score below)"
    )
    header = ["variant", "top-1", "Δ top-1 pts", "F1", "KiB", "gzip KiB", "non-zero", "MMACs"]
    body = [
        [
            v["variant"],
            f"{v['top1']:.2%}",
            delta_points(v.get("drop")),
            f"{v['macro_f1']:.3f}",
            _kb(v["bytes"]),
            _kb(v["gzip_bytes"]),
            f"{v['nonzero_params']:,}" if v.get("nonzero_params") is not None else "",
            f"{v['macs'] / 1e6:,.2f}" if v.get("macs") is not None else "",
        ]
        for v in result.variants
    ]
    console.print(fit_tables("Variants, scored on the held-out split (.tflite through the interpreter; Δ: negative = a loss)", header, body))
    rep = result.reports
    if rep.get("structured"):
        s = rep["structured"]
        removed = [g for g in s["groups"] if g["channels_after"] < g["channels_before"]]
        coupled = sum(g["coupled"] for g in removed)
        console.print(
            f"structured: {len(removed)} channel groups pruned ({coupled} coupled through Add/Multiply); params "
            f"{s['params_before']:,} → {s['params_after']:,}, MACs {s['macs_before']:,} → {s['macs_after']:,} "
            f"({s['macs_reduction']:.2f}× fewer)"
        )
    if rep.get("pruning"):
        p = rep["pruning"]
        what = f"{p['mn']} (M:N)" if p["kind"] == "m:n" else "unstructured"
        pruned = [x for x in p["layers"] if x["pruned"]]
        console.print(
            f"pruning ({what}): {p['achieved']:.1%} of the weights in {len(pruned)} layers are zero (requested {p['requested']:.1%}); "
            f"non-zero params {p['params_before']:,} → {p['params_after_nonzero']:,}"
        )
        for x in p["layers"]:
            line = f"  {x['name']:<24} {x['type']:<16} {x['sparsity']:>6.1%} of {x['weights']:,}"
            console.print(line + (f"  [dim]({x['note']})[/]" if x["note"] else ""))
    if rep.get("qat"):
        q = rep["qat"]
        kept = f", sparsity {q['sparsity_before']:.1%} → {q['sparsity_after']:.1%}" if q.get("sparsity_before") is not None else ""
        console.print(f"QAT ({q['scheme']}): {len(q['quantized_layers'])} layers quantization-aware, {len(q['float_layers'])} left float{kept}")
    errors = [e for e in rep.get("layer_errors") or [] if e["layer"]][:3]
    if errors:
        worst = ", ".join(f"{e['layer']} ({e['op']}) {e['rmse_over_scale']:.2f}" for e in errors)
        console.print(
            f"largest per-layer int8 error (RMSE in quantization steps, {rep.get('layer_errors_of', 'float model')}): {worst}; "
            "all in reports/quant_layer_errors.json"
        )
    if rep.get("budget"):
        style = "green" if rep["budget"]["met"] else "red"
        console.print(f"[{style}]budget[/]: {escape(rep['budget']['message'])}")
    build = result.build
    if build is not None:
        for a in build.artifacts:
            acc = f"top-1 {a.accuracy['top1']:.2%}" if a.accuracy else "not scored here"
            console.print(f"artifact [bold]{a.file}[/] ({a.target}, {a.variant}, {a.bytes:,} bytes): {acc}, {a.status}")
        for line in target_warnings(build):
            console.print(f"[yellow]warning[/]: {escape(line)}", soft_wrap=True)
    for note in result.notes:
        console.print(f"[yellow]note[/]: {escape(note)}", soft_wrap=True)
    console.print(f"[dim]time: {phase_line(result.timings)}[/]", soft_wrap=True)
    peaks = result.reports.get("peak_rss_mb") or {}
    if any(v is not None for v in peaks.values()):
        shown = " · ".join(f"{k.replace('_', ' ')} {v:,} MB" for k, v in peaks.items() if v is not None)
        console.print(f"[dim]peak memory of this process after each phase: {shown}[/]", soft_wrap=True)


def delta_points(drop: float | None) -> str:
    """A row's top-1 change against the original float model, in points: negative = a loss (as bench shows it)."""
    if drop is None:
        return ""
    change = -float(drop)
    return f"{change:+.2f}" if round(change, 2) != 0 else "0.00"


def phase_line(timings: dict[str, float]) -> str:
    """Where the time went, e.g. "load 6.0 s · QAT 24.1 s · … · build 20.3 s (convert 9.8 s, …)"."""
    names = {"evaluate_float": "score float", "layer_errors": "per-layer error", "budget": "budget loop", "qat": "QAT"}
    parts = [f"{names.get(k, k)} {v:.1f} s" for k, v in timings.items() if "." not in k and k != "total"]
    stages = [f"{k.split('.', 1)[1]} {v:.1f} s" for k, v in timings.items() if k.startswith("build.")]
    text = " · ".join(parts)
    if stages:
        text += f" (build: {', '.join(stages)})"
    return f"{text}; total {timings.get('total', 0):.1f} s"


def _kb(n: int | None) -> str:
    return "" if n is None else f"{n / 1024:,.1f}"
