"""``edgekit quickstart``: the main job on the bundled example, end to end.

train the example → inspect it → compress it into a bundle for every target
→ deploy the bundle over real digit scans → benchmark every artifact.
Each step calls the same library function as its own command.
"""
from __future__ import annotations

from pathlib import Path

import typer

from edgekit.cli._common import console, err_console, run_command

# cpu-fp32 is the float reference the benchmark reports its ratios against.
QUICKSTART_TARGETS = ["cpu", "gpu", "edgetpu", "cpu-fp32"]


@run_command
def quickstart(
    workdir: Path = typer.Option(Path("edgekit-quickstart"), "--workdir", "-w", help="Folder for the model, bundle and results."),
    epochs: int = typer.Option(12, "--epochs", min=1, help="Training epochs for the example model."),
    bench_seconds: float = typer.Option(1.0, "--bench-seconds", min=0.0, help="Minimum timed seconds per artifact in the benchmark."),
) -> None:
    """Train the bundled digits example and take it through every edgekit step."""
    from edgekit.bench import BenchConfig, run_bench
    from edgekit.bench.report import print_result
    from edgekit.cli.compress_cmd import render as render_compress
    from edgekit.cli.deploy_cmd import render_summary
    from edgekit.cli.example_cmd import train_with_progress
    from edgekit.cli.inspect_cmd import render_report
    from edgekit.compress import compress
    from edgekit.intake import inspect_model
    from edgekit.resources import digits_dir
    from edgekit.runtime import deploy

    workdir.mkdir(parents=True, exist_ok=True)
    model_path = workdir / "digits_cnn.keras"
    bundle = workdir / "bundle"

    console.rule("1/5 train the example: real handwritten digits, Keras 3")
    result = train_with_progress(model_path, epochs=epochs, seed=0)
    console.print(
        f"saved {result.model_path}: held-out accuracy [bold]{result.holdout_accuracy:.2%}[/] "
        f"({result.n_holdout} unseen scans, trained in {result.train_seconds:.1f} s)"
    )

    console.rule("2/5 inspect it")
    render_report(inspect_model(model_path))

    console.rule(f"3/5 compress: QAT + int8 calibration, one artifact per target ({', '.join(QUICKSTART_TARGETS)})")
    compressed = compress(model_path, digits_dir(), bundle, recipe="default", targets=QUICKSTART_TARGETS)
    render_compress(compressed)

    console.rule("4/5 deploy the bundle over the 1,797 real digit scans (no TensorFlow on this path)")
    jsonl = workdir / "predictions.jsonl"
    deployed = deploy(bundle, str(digits_dir()), target="auto", jsonl=jsonl, console=err_console)
    render_summary(deployed.to_dict())
    if deployed.error is not None:
        raise deployed.error

    console.rule("5/5 benchmark every artifact on this machine")
    bench = run_bench(bundle, config=BenchConfig(min_seconds=bench_seconds), compare=True, model=model_path)
    print_result(bench, console)
    console.print(f"\ndone: bundle in {bundle}; run [bold]edgekit deploy {bundle} --source 0[/] on a device with a camera.")
