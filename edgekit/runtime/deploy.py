"""One deploy run: a bundle over a source, results to JSON Lines / video / window, a summary.

:func:`deploy` is what ``edgekit deploy`` calls. It checks everything that can
be checked before the first frame (window support, bundle, artifact, target,
source) and raises on those, so a bad command writes nothing. Once frames
flow, a lost stream or a full disk *stops* the run instead: the outputs are
closed with everything written so far, and the returned
:class:`DeployResult` carries the summary and the error. SIGINT and SIGTERM
stop the run the same way (a second Ctrl-C interrupts at once, still closing
the outputs).
"""
from __future__ import annotations

import logging
import os
import signal
import threading
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from edgekit.errors import EdgekitError
from edgekit.runtime.outputs import ConsoleLine, JsonlWriter, VideoSaver, Window
from edgekit.runtime.pipeline import FrameResult, Predictor
from edgekit.runtime.sources import ReconnectPolicy, Source, open_source
from edgekit.runtime.stats import RunStats

log = logging.getLogger("edgekit.runtime")


@dataclass
class DeployResult:
    """What a run did: the plan, the summary statistics, how it ended, and any error."""

    plan: dict[str, Any]
    source: str
    stats: RunStats
    stopped_by: str  # "end" | "max_frames" | "SIGINT" | "SIGTERM" | "window" | "error"
    error: EdgekitError | None = None
    outputs: dict[str, Any] = field(default_factory=dict)
    skipped_items: list[str] = field(default_factory=list)
    reconnects: int = 0

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "source": self.source,
            "stopped_by": self.stopped_by,
            "error": str(self.error) if self.error else None,
            "plan": self.plan,
            **self.stats.to_dict(),
            "reconnects": self.reconnects,
            "skipped_items": self.skipped_items,
            "outputs": self.outputs,
        }


class _Stop:
    """Set from a signal handler; the loop checks it between frames."""

    def __init__(self) -> None:
        self.reason: str | None = None
        self.source: Source | None = None

    def request(self, reason: str) -> None:
        if self.reason is not None and reason == "SIGINT":
            raise KeyboardInterrupt  # second Ctrl-C: stop now (outputs still close in finally)
        self.reason = reason
        if self.source is not None:
            self.source.request_stop()  # never blocks: the loop closes it properly


@contextmanager
def _signals(stop: _Stop) -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield  # handlers can only be set from the main thread; the caller stops us instead
        return
    names = {signal.SIGINT: "SIGINT", signal.SIGTERM: "SIGTERM"}
    previous = {s: signal.getsignal(s) for s in names}
    for s, name in names.items():
        signal.signal(s, lambda _sig, _frm, name=name: stop.request(name))
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def deploy(
    bundle: str | os.PathLike[str],
    source: str | int | os.PathLike[str] | Source,
    *,
    target: str = "auto",
    device: str | None = None,
    threads: int | None = None,
    delegate: str | None = None,
    strict: bool = False,
    top_k: int = 5,
    jsonl: str | os.PathLike[str] | Any | None = None,
    save: str | os.PathLike[str] | None = None,
    show: bool = False,
    max_frames: int | None = None,
    console: Any | None = None,
    policy: ReconnectPolicy | None = None,
    on_result: Callable[[FrameResult], None] | None = None,
) -> DeployResult:
    """Run a bundle over a source and write the results.

    Args:
        bundle: the bundle folder.
        source: a ``--source`` string (see :func:`~edgekit.runtime.sources.open_source`) or a Source.
        target, device, threads, delegate, strict, top_k: as :meth:`Predictor.from_bundle`.
        jsonl: write one JSON line per frame here (a path or a text file object).
        save: write an annotated video here (.mp4/.avi/...).
        show: show frames in a window (needs OpenCV with GUI and a display).
        max_frames: stop after this many classified frames.
        console: a Rich console for the live status line (None: no live line).
        policy: reconnection policy for live sources.
        on_result: called with every :class:`FrameResult` (after it is written).

    Returns:
        A :class:`DeployResult`; ``error`` is set when the run was stopped by a
        lost source or a failed write (everything written before is kept).

    Raises:
        EdgekitError: anything wrong before the first frame (bundle, integrity,
            target, delegate, source, --show, output paths).

    Example::

        result = deploy("bundle/", "photos/", jsonl="out.jsonl")
        print(result.stats.fps, result.stats.frames)
    """
    if max_frames is not None and max_frames < 1:
        from edgekit.errors import ConfigError

        raise ConfigError(f"--max-frames must be >= 1; received {max_frames}.")
    stop = _Stop()
    with ExitStack() as stack:
        window = Window() if show else None  # fail before loading anything when it cannot work
        if window is not None:
            stack.callback(window.close)
        predictor = Predictor.from_bundle(
            bundle, target=target, device=device, threads=threads, delegate=delegate, strict=strict, top_k=top_k
        )
        stack.callback(predictor.close)
        plan = predictor.describe()
        for note in predictor.plan.notes:
            log.info("auto passed over %s", note)
        log.info("running %s on %s (%s)", predictor.plan.entry.file, predictor.plan.via, plan["backend"])
        src = source if isinstance(source, Source) else open_source(source, policy=policy)
        stack.callback(src.close)
        stop.source = src
        saver = VideoSaver(save, fps=src.fps) if save is not None else None  # checks the path, writes nothing yet
        if saver is not None:
            stack.callback(saver.close)
        writer = JsonlWriter(jsonl) if jsonl is not None else None  # the first file created: last check
        if writer is not None:
            stack.callback(writer.close)
        total = min(src.total, max_frames) if src.total and max_frames else (src.total or max_frames)
        line = ConsoleLine(console, total, src.name, enabled=console is not None)
        stack.callback(line.close)

        stats = RunStats()
        error: EdgekitError | None = None
        stopped_by = "end"
        with _signals(stop):
            try:
                for result in predictor.run(src, max_frames=max_frames):
                    stats.add_frame(result.timings)
                    fps = stats.fps
                    if writer is not None:
                        writer.write(result.to_record())
                    if saver is not None:
                        saver.write(result.frame.image, result.prediction.topk, fps)
                    if window is not None:
                        window.show(result.frame.image, result.prediction.topk, fps)
                        if window.closed:
                            stopped_by = "window"
                            break
                    if on_result is not None:
                        on_result(result)
                    line.update(stats.frames, fps, sum(result.timings.values()), src.dropped, src.skipped)
                    if stop.reason:
                        break
                else:
                    if max_frames is not None and stats.frames >= max_frames:
                        stopped_by = "max_frames"
            except EdgekitError as e:
                error, stopped_by = e, "error"
                log.debug("run stopped: %s", e)
        if stop.reason and error is None:
            stopped_by = stop.reason
        stats.stop()
        stats.dropped, stats.skipped, stats.unread = src.dropped, src.skipped, src.unread
        stats.paused_s = src.waited_s
        total_ms = stats.stages["total"].summary()["mean"]
        line.update(stats.frames, stats.fps, total_ms, stats.dropped, stats.skipped, force=True)
        outputs: dict[str, Any] = {}
        if writer is not None:
            outputs["jsonl"] = {"path": writer.path, "lines": writer.lines}
        if saver is not None:
            outputs["video"] = {"path": str(saver.path), "frames": saver.frames}
        return DeployResult(
            plan=plan,
            source=src.name,
            stats=stats,
            stopped_by=stopped_by,
            error=error,
            outputs=outputs,
            skipped_items=list(src.skipped_items),
            reconnects=getattr(src, "reconnects", 0),
        )
