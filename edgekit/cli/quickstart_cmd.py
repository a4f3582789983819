"""``edgekit quickstart``: the main job on the bundled example, end to end.

train the example → inspect it → compress it into a bundle for every target
→ deploy the bundle over real digit scans → benchmark every artifact.
Each step calls the same library function as its own command. Deploy and
bench (the device side) run as ``edgekit deploy`` / ``edgekit bench`` in a fresh
process where importing TensorFlow fails, as on a device: that proves the path
needs no TensorFlow, and bench's memory figures are the runtime's, not those of
the process that trained and compressed the model.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import typer

from edgekit.cli._common import console, err_console, run_command

# cpu-fp32 is the float reference the benchmark reports its ratios against.
QUICKSTART_TARGETS = ["cpu", "gpu", "edgetpu", "cpu-fp32"]

# A device-side edgekit command in a fresh interpreter where `import tensorflow` raises ImportError.
_DEVICE_SIDE = "import sys; sys.modules['tensorflow'] = None; sys.argv[0] = 'edgekit'; from edgekit.cli import main; main()"


def run_device_side(args: list[str]) -> int:
    """Run ``edgekit ARGS`` in a new process without TensorFlow; its stdout is printed here, its stderr passes through.

    Returns:
        The command's exit code.
    """
    import edgekit

    root = str(Path(edgekit.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p),
           "COLUMNS": str(console.width)}  # fmt: skip
    proc = subprocess.run([sys.executable, "-c", _DEVICE_SIDE, *args], stdout=subprocess.PIPE, text=True, env=env, check=False)
    console.file.write(proc.stdout)
    console.file.flush()
    return proc.returncode


@run_command
def quickstart(
    workdir: Path = typer.Option(Path("edgekit-quickstart"), "--workdir", "-w", help="Folder for the model, bundle and results."),
    epochs: int = typer.Option(12, "--epochs", min=1, help="Training epochs for the example model."),
    bench_seconds: float = typer.Option(1.0, "--bench-seconds", min=0.0, help="Minimum timed seconds per artifact in the benchmark."),
) -> None:
    """Train the bundled digits example and take it through every edgekit step."""
    from edgekit.cli.compress_cmd import render as render_compress
    from edgekit.cli.example_cmd import train_with_progress
    from edgekit.cli.inspect_cmd import render_report
    from edgekit.compress import compress
    from edgekit.intake import inspect_model
    from edgekit.resources import digits_dir

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

    console.rule("4/5 deploy the bundle over the 1,797 real digit scans (a new process in which TensorFlow cannot be imported)")
    jsonl = workdir / "predictions.jsonl"
    code = run_device_side(["deploy", str(bundle), "--source", str(digits_dir()), "--target", "auto", "--jsonl", str(jsonl)])
    if code != 0:
        err_console.print(f"[bold red]error:[/] edgekit deploy exited with {code}.")
        raise typer.Exit(code)

    console.rule("5/5 benchmark every artifact (a new process without TensorFlow: memory is the runtime's, as on a device)")
    code = run_device_side(["bench", str(bundle), "--compare", "--min-seconds", f"{bench_seconds:g}"])
    if code != 0:
        err_console.print(f"[bold red]error:[/] edgekit bench exited with {code}.")
        raise typer.Exit(code)
    console.print(
        f"\ndone: bundle in {bundle}; run [bold]edgekit deploy {bundle} --source 0[/] on a device with a camera. "
        f"To compare with plain tf.lite and ONNX Runtime (needs TensorFlow): "
        f"[bold]edgekit bench {bundle} --compare --model {model_path}[/]",
        soft_wrap=True,
    )
