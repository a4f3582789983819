"""``edgekit example``: train the bundled digits CNN (the model a new user starts from)."""
from __future__ import annotations

from pathlib import Path

import typer

from edgekit.cli._common import console, err_console, print_json, run_command


@run_command
def example(
    out: Path = typer.Option(Path("digits_cnn.keras"), "--out", "-o", help="Where to save the Keras 3 model."),
    epochs: int = typer.Option(12, "--epochs", min=1, help="Training epochs."),
    seed: int = typer.Option(0, "--seed", help="Random seed (weights, shuffling, split)."),
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Train the example CNN on the bundled real handwritten digits and save it as .keras."""
    result = train_with_progress(out, epochs=epochs, seed=seed, quiet=json_out)
    if json_out:
        print_json(result.to_dict())
        return
    console.print(
        f"saved [bold]{result.model_path}[/] (Keras 3) and its preprocessing spec {result.spec_path.name}\n"
        f"trained on {result.n_train} real digit scans in {result.train_seconds:.1f} s; "
        f"held-out accuracy [bold]{result.holdout_accuracy:.2%}[/] on {result.n_holdout} unseen scans"
    )


def train_with_progress(out: Path, *, epochs: int, seed: int, quiet: bool = False):  # noqa: ANN201 - ExampleResult, lazy
    from edgekit.example import train_example
    from edgekit.progress import NullProgress, RichProgress

    prog = NullProgress() if quiet else RichProgress(err_console)  # the reporter compress, build and bench use
    with prog.task("training digits CNN", epochs) as task:

        def on_epoch(epoch: int, logs: dict) -> None:
            task.update(completed=epoch, info=f"loss {logs.get('loss', 0):.3f} acc {logs.get('accuracy', 0):.3f}")

        return train_example(out, epochs=epochs, seed=seed, on_epoch=on_epoch)
