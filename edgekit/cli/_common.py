"""What every command shares: consoles, JSON output, and turning errors into exit codes."""
from __future__ import annotations

import functools
import json
import sys
from typing import Any, Callable, TypeVar

import typer
from rich.console import Console

from edgekit.bundle import json_default
from edgekit.errors import EdgekitError

F = TypeVar("F", bound=Callable[..., Any])

# Human output goes to stderr when --json owns stdout, so a pipe gets pure JSON.
console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)


def run_command(fn: F) -> F:
    """Decorate a command: user errors become one red line and a non-zero exit.

    This is the one place where :class:`EdgekitError` turns into an exit code.
    Anything else is a bug in edgekit and keeps its traceback.
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except EdgekitError as e:
            err_console.print(f"[bold red]error:[/] {_one_line(str(e))}", soft_wrap=True)
            raise typer.Exit(e.exit_code) from None
        except KeyboardInterrupt:
            err_console.print("[yellow]interrupted[/]: nothing partial was kept.")
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


def _one_line(text: str) -> str:
    return " ".join(text.split())


def print_json(payload: Any) -> None:
    """Write machine-readable output to stdout, one JSON document."""
    sys.stdout.write(json.dumps(payload, indent=2, default=json_default) + "\n")
    sys.stdout.flush()

