"""``edgekit deploy BUNDLE --source SRC``: run a bundle on a camera, stream, video or images."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Optional

import typer
from rich.markup import escape

from edgekit.cli._common import console, err_console, print_json, run_command


@run_command
def deploy(
    bundle: Path = typer.Argument(..., help="The bundle folder (from 'edgekit compress')."),
    source: str = typer.Option(..., "--source", "-s", help="Camera index (0), /dev/videoN, rtsp/http URL, image, folder, glob or video file."),
    target: str = typer.Option("auto", "--target", "-t", help="cpu | gpu | edgetpu | auto, or a target name in the bundle."),
    device: Optional[str] = typer.Option(None, "--device", help="Device profile (e.g. rpi4): target preference and threads."),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, help="CPU threads (default: the profile's, else all cores)."),
    top_k: int = typer.Option(5, "--top-k", "-k", min=1, help="Labels kept per frame."),
    jsonl: Optional[Path] = typer.Option(None, "--jsonl", help="Write one JSON line per frame here."),
    save: Optional[Path] = typer.Option(None, "--save", help="Write an annotated video here (.mp4 or .avi)."),
    show: bool = typer.Option(False, "--show", help="Show annotated frames in a window (needs OpenCV with GUI)."),
    strict: bool = typer.Option(False, "--strict", help="Fail instead of falling back to the CPU when the accelerator is missing."),
    max_frames: Optional[int] = typer.Option(None, "--max-frames", min=1, help="Stop after this many frames."),
    delegate: Optional[str] = typer.Option(None, "--delegate", help="Path of an external TFLite delegate library (.so)."),
    json_out: bool = typer.Option(False, "--json", help="Print the summary as JSON on stdout."),
) -> None:
    """Classify frames from a source with a bundle: JSON Lines, video, window, summary.

    Ctrl-C or SIGTERM stops cleanly: results written so far are kept, the
    summary is printed, and the exit code is 130 (SIGINT) or 143 (SIGTERM).
    ``--jsonl -`` writes the JSON Lines to stdout (the summary then goes to stderr).
    """
    import os

    # OpenCV and FFmpeg print their own warnings for every retry and damaged
    # frame; edgekit reports those itself, once. Set before cv2 is imported;
    # a user's own setting wins.
    os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
    from edgekit.errors import ConfigError
    from edgekit.runtime.deploy import deploy as run_deploy

    to_stdout = jsonl is not None and str(jsonl) == "-"
    if to_stdout and json_out:
        raise ConfigError("--jsonl - and --json both want standard output.", hint="Write the JSON Lines to a file, or drop --json.")
    shown: list[dict[str, Any]] = []  # the first few predictions, printed when the run is that short

    def keep(result: Any) -> None:
        if len(shown) < _SHOW_PREDICTIONS + 1:
            shown.append(result.to_record())

    handler = _ConsoleLogHandler()
    logger = logging.getLogger("edgekit.runtime")
    logger.addHandler(handler)
    old_level, logger.propagate = logger.level, False
    logger.setLevel(logging.INFO)
    try:
        result = run_deploy(
            bundle,
            source,
            target=target,
            device=device,
            threads=threads,
            delegate=delegate,
            strict=strict,
            top_k=top_k,
            jsonl=jsonl,
            save=save,
            show=show,
            max_frames=max_frames,
            console=err_console,
            on_result=keep,
        )
    except KeyboardInterrupt:
        # A second Ctrl-C, or a signal while the bundle loads; outputs were closed on the way out.
        from edgekit.interrupts import exit_code, received

        err_console.print("[yellow]interrupted[/]: results written so far are kept.")
        raise typer.Exit(exit_code(received())) from None
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
        logger.propagate = True
    summary = result.to_dict()
    if json_out:
        print_json(summary)
    else:
        if len(shown) <= _SHOW_PREDICTIONS:
            render_predictions(shown, err_console if to_stdout else console)
        render_summary(summary, out=err_console if to_stdout else None)
    if result.error is not None:
        # One line, as run_command would print it; the JSON summary above already carries it.
        err_console.print(f"[bold red]error:[/] {escape(' '.join(str(result.error).split()))}", soft_wrap=True)
        raise typer.Exit(result.error.exit_code)
    if result.stopped_by in ("SIGINT", "SIGTERM"):
        from edgekit.interrupts import exit_code

        raise typer.Exit(exit_code(result.stopped_by))  # 130 / 143, as the shell reports a signal


class _ConsoleLogHandler(logging.Handler):
    """edgekit.runtime's warnings as one yellow line each; info dim. Repeats of skipped frames are capped."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self._skips = 0

    def emit(self, record: logging.LogRecord) -> None:
        msg = " ".join(record.getMessage().split())
        if getattr(record, "edgekit_event", None) == "skipped":
            self._skips += 1
            if self._skips > 5:
                if self._skips == 6:
                    err_console.print("[yellow]warning:[/] more unreadable frames skipped; the summary counts them all.")
                return
        if record.levelno >= logging.WARNING:
            err_console.print(f"[yellow]warning:[/] {msg}", soft_wrap=True, markup=True, highlight=False)
        else:
            err_console.print(f"[dim]{escape(msg)}[/]", soft_wrap=True)


_STOPPED = {
    "end": "the source ended",
    "max_frames": "stopped at --max-frames",
    "SIGINT": "stopped by Ctrl-C",
    "SIGTERM": "stopped by SIGTERM",
    "window": "the window was closed",
    "error": "stopped by an error",
}


_SHOW_PREDICTIONS = 10  # a run of at most this many frames lists each prediction


def _unread(d: dict[str, Any]) -> str:
    return f", {d['unread']} unread (the file ends early)" if d.get("unread") else ""


def render_predictions(records: list[dict[str, Any]], out: Any) -> None:
    """One line per frame: where it came from and its top labels with scores."""
    for r in records:
        top = ", ".join(f"{t['label']} {t['score']:.3f}" for t in r["topk"][:3])
        out.print(f"{r['source']} frame {r['frame']}: [bold]{r['topk'][0]['label']}[/] ({top})", soft_wrap=True, highlight=False)


def render_summary(d: dict[str, Any], out: Any = None) -> None:
    from rich.table import Table

    plan = d["plan"]
    out = out or (err_console if d.get("error") else console)
    out.print(
        f"[bold]{d['frames']}[/] frames from {d['source']} in {d['elapsed_s']:.1f} s: "
        f"[bold]{d['fps']:.1f} fps[/], {d['dropped']} dropped, {d['skipped']} skipped"
        f"{_unread(d)}; "
        f"{plan['file']} on {plan['via']}; {_STOPPED.get(d['stopped_by'], 'stopped by ' + str(d['stopped_by']))}.",
        soft_wrap=True,
    )
    table = Table(title="latency per frame (ms)")
    for col in ("stage", "p50", "p90", "p99", "mean", "max"):
        table.add_column(col, justify="left" if col == "stage" else "right")
    for stage, s in d["latency_ms"].items():
        if s["n"]:
            table.add_row(stage, *(f"{s[k]:.2f}" for k in ("p50", "p90", "p99", "mean", "max")))
    if d["frames"]:
        out.print(table)
    for name, o in d["outputs"].items():
        count = o.get("lines", o.get("frames"))
        out.print(f"{name}: {o['path']} ({count} {'lines' if name == 'jsonl' else 'frames'})", soft_wrap=True)
    if d["skipped_items"]:
        shown = ", ".join(d["skipped_items"][:3])
        more = f" and {d['skipped'] - 3} more" if d["skipped"] > 3 else ""
        out.print(f"skipped: {shown}{more}", soft_wrap=True)
