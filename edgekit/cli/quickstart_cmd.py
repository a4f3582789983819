"""``edgekit quickstart``: the main job on the bundled example, end to end.

It grows with the product: train the example → inspect it → (compress →
bundle per target → deploy over real images → benchmark) as those land.
"""
from __future__ import annotations

from pathlib import Path

import typer

from edgekit.cli._common import console, run_command


@run_command
def quickstart(
    workdir: Path = typer.Option(Path("edgekit-quickstart"), "--workdir", "-w", help="Folder for the model, bundle and results."),
    epochs: int = typer.Option(12, "--epochs", min=1, help="Training epochs for the example model."),
) -> None:
    """Train the bundled digits example and take it through every edgekit step."""
    from edgekit.cli.example_cmd import train_with_progress
    from edgekit.cli.inspect_cmd import render_report
    from edgekit.intake import inspect_model

    workdir.mkdir(parents=True, exist_ok=True)
    console.rule("1. train the example (real handwritten digits, Keras 3)")
    result = train_with_progress(workdir / "digits_cnn.keras", epochs=epochs, seed=0)
    console.print(
        f"saved {result.model_path}: held-out accuracy [bold]{result.holdout_accuracy:.2%}[/] "
        f"({result.n_holdout} unseen scans, trained in {result.train_seconds:.1f} s)"
    )
    console.rule("2. inspect it")
    render_report(inspect_model(result.model_path))
