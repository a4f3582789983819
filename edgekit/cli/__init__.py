"""The ``edgekit`` command line: a thin Typer layer over the Python API.

One module per command; each parses its arguments, calls one library function
and renders the result. Commands are registered here, in a fixed order, and
only once they work. Importing this package must stay cheap: no TensorFlow,
no OpenCV, no LiteRT at import time.
"""
from __future__ import annotations

import typer

from edgekit import __version__

app = typer.Typer(
    name="edgekit",
    help="From a trained Keras CNN to a verified, benchmarked artifact per edge device.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"edgekit {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Show the version and exit."),
) -> None:
    """From a trained Keras CNN to a verified, benchmarked artifact per edge device."""


def _register() -> None:
    from edgekit.cli import commands

    for name, fn in commands.COMMANDS:
        app.command(name)(fn)


_register()


def main() -> None:
    """Console-script entry point."""
    app()
