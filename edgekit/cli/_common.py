"""What every command shares: consoles, JSON output, and turning errors into exit codes."""
from __future__ import annotations

import functools
import json
import logging
import sys
import warnings
from typing import Any, Callable, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from edgekit.bundle import json_default
from edgekit.errors import EdgekitError

F = TypeVar("F", bound=Callable[..., Any])

# Human output goes to stderr when --json owns stdout, so a pipe gets pure JSON.
console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)


def run_command(fn: F) -> F:
    """Decorate a command: user errors become one red line and a non-zero exit.

    This is the one place where :class:`EdgekitError` turns into an exit code.
    With ``--json`` the error is also printed on stdout as a JSON object
    (``{"ok": false, "error": {...}}``), so a pipe always gets JSON. SIGINT and
    SIGTERM are recorded (:mod:`edgekit.interrupts`) and end the command with
    130 / 143, even when something inside swallowed the KeyboardInterrupt.
    A stack or memory exhaustion (a config nested 100 000 deep, a huge frame)
    is one line too. Anything else is a bug in edgekit and keeps its traceback.
    """
    from edgekit import interrupts

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        json_out = bool(kwargs.get("json_out"))
        with interrupts.catch_signals(), _warnings_as_lines(), _edgekit_log_lines():
            try:
                result = fn(*args, **kwargs)
                interrupts.checkpoint()
                return result
            except EdgekitError as e:
                _fail(_one_line(str(e)), type(e).__name__, e.exit_code, json_out)
            except OSError as e:
                import errno

                if e.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EROFS):
                    raise  # anything else is a bug: keep its traceback
                where = f" writing {e.filename}" if e.filename else ""
                _fail(f"{e.strerror or e}{where}; nothing partial was kept.", "OutputError", 2, json_out)
            except (RecursionError, MemoryError) as e:
                what = "nesting too deep to process" if isinstance(e, RecursionError) else "out of memory"
                _fail(f"{what} ({type(e).__name__}); the input is too large or too deeply nested for this machine.",
                      type(e).__name__, 2, json_out)
            except KeyboardInterrupt:
                name = interrupts.received() or "SIGINT"
                code = interrupts.exit_code(name)
                err_console.print(f"[yellow]interrupted[/] ({name}): nothing partial was kept.")
                if json_out:
                    print_json({"ok": False, "error": {"type": "Interrupted", "signal": name, "message": f"interrupted by {name}", "exit_code": code}})
                raise typer.Exit(code) from None

    return wrapper  # type: ignore[return-value]


def _fail(message: str, kind: str, code: int, json_out: bool) -> None:
    err_console.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)
    if json_out:
        print_json({"ok": False, "error": {"type": kind, "message": message, "exit_code": code}})
    raise typer.Exit(code) from None


class _LineHandler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        err_console.print(f"[yellow]warning:[/] {escape(_one_line(record.getMessage()))}", soft_wrap=True)


class _edgekit_log_lines:  # noqa: N801 - used like a function
    """edgekit's own warnings (e.g. stale folders cleaned) as one yellow line each, for the command's duration."""

    names = ("edgekit.bundle",)

    def __enter__(self) -> None:
        self.handler = _LineHandler(logging.WARNING)
        for n in self.names:
            logging.getLogger(n).addHandler(self.handler)

    def __exit__(self, *exc: Any) -> None:
        for n in self.names:
            logging.getLogger(n).removeHandler(self.handler)


class _warnings_as_lines:  # noqa: N801 - used like a function
    """Python warnings as one line without source paths (``file.py:123: UserWarning`` helps no user)."""

    def __enter__(self) -> None:
        self.ctx = warnings.catch_warnings()
        self.ctx.__enter__()

        def show(message: Any, category: type, filename: str, lineno: int, file: Any = None, line: Any = None) -> None:
            err_console.print(f"[yellow]warning:[/] {escape(_one_line(str(message)))}", soft_wrap=True)

        warnings.showwarning = show

    def __exit__(self, *exc: Any) -> None:
        self.ctx.__exit__(*exc)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def print_json(payload: Any) -> None:
    """Write machine-readable output to stdout, one JSON document."""
    sys.stdout.write(json.dumps(payload, indent=2, default=json_default) + "\n")
    sys.stdout.flush()
