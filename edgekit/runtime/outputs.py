"""Where results go: JSON Lines, an annotated video, a window, a live console line.

Every writer keeps what it has written when something goes wrong: JSON Lines
are flushed one whole line at a time and a failed write is cut back to the
last complete line, so a full disk, Ctrl-C or a crash leaves a file every
line of which parses. Errors become :class:`OutputError` with a one-line
message; the run stops and reports, it does not lose results.
"""
from __future__ import annotations

import errno
import json
import os
import sys
import time
from pathlib import Path
from typing import IO, Any

import numpy as np

from edgekit.errors import OutputError
from edgekit.runtime.sources import cv2_module, opencv_build_info


def _describe_oserror(e: OSError, path: str) -> str:
    if e.errno == errno.ENOSPC:
        return f"the disk holding {path} is full"
    if e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"no permission to write {path}"
    return f"writing {path} failed: {e.strerror or e}"


class JsonlWriter:
    """One JSON object per line, each line on disk before the next frame; stops cleanly on a write error.

    A path is written unbuffered, so no half line can linger in a buffer and
    land later; after a failed write the file is cut back to its last
    complete line.

    Args:
        target: a path, or an open text file object (e.g. for tests or stdout).
    """

    def __init__(self, target: str | os.PathLike[str] | IO[str]):
        self.lines = 0
        self._good = 0  # bytes of complete lines (for a path); tell() for a file object
        self._stream: IO[str] | None = None
        self._raw = None
        if not hasattr(target, "write") and str(target) == "-":
            import sys

            target = sys.stdout  # the usual convention: '-' is standard output, not a file named '-'
        if hasattr(target, "write"):
            self._stream = target  # type: ignore[assignment]
            self.path = str(getattr(target, "name", "<stream>"))
            self._good = self._tell()
        else:
            self.path = str(target)
            try:
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
                self._raw = open(self.path, "wb", buffering=0)
            except OSError as e:
                raise OutputError(f"cannot write JSON Lines: {_describe_oserror(e, self.path)}.") from e

    def _tell(self) -> int | None:
        try:
            return self._stream.tell()  # type: ignore[union-attr]
        except (OSError, ValueError, AttributeError):
            return None

    def write(self, record: dict[str, Any]) -> None:
        """Append one record as a line.

        Raises:
            OutputError: the line could not be written (e.g. disk full); the
                file keeps every complete line written before it.
        """
        line = json.dumps(record, separators=(",", ":"), ensure_ascii=False) + "\n"
        try:
            if self._raw is not None:
                data = memoryview(line.encode("utf-8"))
                while data:
                    n = self._raw.write(data)
                    data = data[n:]
            else:
                self._stream.write(line)  # type: ignore[union-attr]
                self._stream.flush()  # type: ignore[union-attr]
        except OSError as e:
            self._cut_back()
            raise OutputError(
                f"stopped: {_describe_oserror(e, self.path)}; the {self.lines} lines written before are kept.",
                hint="Free space or write --jsonl elsewhere, then run again.",
            ) from e
        self.lines += 1
        if self._raw is not None:
            self._good += len(line.encode("utf-8"))
        else:
            self._good = self._tell()

    def _cut_back(self) -> None:
        # Drop a half-written last line so every line in the file parses;
        # truncating frees space, so it works on a full disk.
        if self._good is None:
            return
        f = self._raw if self._raw is not None else self._stream
        try:
            if self._stream is not None:
                self._stream.truncate(self._good)
        except (OSError, ValueError):
            pass
        try:
            os.ftruncate(f.fileno(), self._good)  # type: ignore[union-attr]
        except (OSError, ValueError, AttributeError):
            pass  # /dev/full, pipes: nothing to cut

    def close(self) -> None:
        if self._raw is not None:
            self._raw.close()
            self._raw = None


_FOURCC = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".avi": "MJPG", ".mkv": "MJPG"}


class VideoSaver:
    """Writes frames annotated with the top-k and the frame rate to a video file.

    The size is fixed by the first frame; later frames of another size (an
    image folder) are resized to it.
    """

    def __init__(self, path: str | os.PathLike[str], fps: float | None = None):
        self.path = Path(path)
        ext = self.path.suffix.lower()
        if ext not in _FOURCC:
            raise OutputError(
                f"--save {self.path}: expected a video file ending in {', '.join(sorted(_FOURCC))}; received {ext or 'no extension'}."
            )
        self.fps = fps if fps and fps > 0 else 10.0
        self.frames = 0
        # Refuse an unwritable place now, before the run, not at the first frame.
        existing = next(p for p in (self.path.parent, *self.path.parent.parents) if p.exists())
        if not os.access(existing, os.W_OK) or (self.path.exists() and not os.access(self.path, os.W_OK)):
            raise OutputError(f"cannot write the video: no permission to write {self.path}.")
        self._writer = None
        self._size: tuple[int, int] | None = None
        self._fourcc = _FOURCC[ext]

    def _open(self, w: int, h: int) -> None:
        cv2 = cv2_module()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise OutputError(f"cannot write the video: {_describe_oserror(e, str(self.path))}.") from e
        writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter_fourcc(*self._fourcc), self.fps, (w, h))
        if not writer.isOpened():
            raise OutputError(
                f"cannot write video {self.path}: this OpenCV build has no {self._fourcc} encoder for {self.path.suffix} "
                "or the folder is not writable.",
                hint="Try --save out.avi (MJPG); 'edgekit doctor' lists the video backends.",
            )
        self._writer, self._size = writer, (w, h)

    def write(self, image: np.ndarray, topk: list[tuple[str, float]], fps: float | None = None) -> None:
        cv2 = cv2_module()
        frame = image if image.ndim == 3 and image.shape[2] == 3 else cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
        if self._writer is None:
            h, w = frame.shape[:2]
            # Tiny inputs (digits) would be unreadable; scale up, keeping pixels sharp.
            factor = max(1, int(np.ceil(240 / max(h, 1))))
            self._open(w * factor, h * factor)
        assert self._size is not None
        if frame.shape[1::-1] != self._size:
            frame = cv2.resize(frame, self._size, interpolation=cv2.INTER_NEAREST)
        else:
            frame = frame.copy()
        annotate(frame, topk, fps)
        self._writer.write(frame)
        self.frames += 1
        # VideoWriter reports no errors; a vanished or full disk shows here.
        if self.frames % 30 == 1 and not self._has_space():
            raise OutputError(f"stopped: the disk holding {self.path} is full; the video so far is kept.")

    def _has_space(self) -> bool:
        try:
            st = os.statvfs(self.path.parent)
        except (OSError, AttributeError):
            return True
        return st.f_bavail * st.f_frsize > 1 << 20

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()
            self._writer = None


def annotate(frame: np.ndarray, topk: list[tuple[str, float]], fps: float | None = None) -> None:
    """Draw the top-k labels and FPS onto a BGR frame, in place."""
    cv2 = cv2_module()
    h = frame.shape[0]
    scale = max(0.5, min(h / 480, 1.5))
    line = int(22 * scale) + 4
    rows = [f"{label} {score:.2f}" for label, score in topk[:3]]
    if fps is not None:
        rows.append(f"{fps:.1f} fps")
    for i, text in enumerate(rows):
        y = (i + 1) * line
        cv2.putText(frame, text, (6, y), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 3, cv2.LINE_AA)
        cv2.putText(frame, text, (6, y), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 255, 0), 1, cv2.LINE_AA)


def gui_available() -> tuple[bool, str]:
    """Whether ``--show`` can open a window here, and why not."""
    gui = opencv_build_info().get("GUI", "")
    if not gui or gui.upper() == "NONE":
        return False, "this OpenCV build has no GUI support (opencv-python-headless)"
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return False, "no display: DISPLAY and WAYLAND_DISPLAY are unset"
    return True, f"OpenCV GUI: {gui}"


class Window:
    """An OpenCV window showing annotated frames; closing it or pressing q/Esc stops the run."""

    def __init__(self, title: str = "edgekit"):
        ok, why = gui_available()
        if not ok:
            raise OutputError(
                f"--show needs a window but {why}.",
                hint="Install opencv-python (with GUI) instead of opencv-python-headless and run on a desktop, or drop --show.",
            )
        self.title = title
        self.closed = False

    def show(self, image: np.ndarray, topk: list[tuple[str, float]], fps: float | None = None) -> None:
        cv2 = cv2_module()
        frame = image.copy() if image.ndim == 3 else cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
        annotate(frame, topk, fps)
        cv2.imshow(self.title, frame)
        key = cv2.waitKey(1) & 0xFF
        if key in (ord("q"), 27):
            self.closed = True

    def close(self) -> None:
        try:
            cv2_module().destroyWindow(self.title)
        except Exception:  # noqa: BLE001 - the window may already be gone
            pass


class ConsoleLine:
    """The live status line (frames, FPS, latency) as a Rich progress bar on a terminal.

    When stderr is not a terminal (a pipe, a log, a test) it prints nothing:
    the summary at the end says it all.
    """

    def __init__(self, console: Any, total: int | None, label: str, enabled: bool = True):
        self._progress = None
        self._last = 0.0
        if not enabled or not getattr(console, "is_terminal", False):
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        columns = [SpinnerColumn(), TextColumn("[bold]{task.description}")]
        if total:
            columns += [BarColumn(), MofNCompleteColumn()]
        columns += [TextColumn("{task.fields[status]}"), TimeElapsedColumn()]
        self._progress = Progress(*columns, console=console, transient=False)
        self._task = self._progress.add_task(label, total=total, status="")
        self._progress.start()

    def update(self, frames: int, fps: float, latency_ms: float, dropped: int, skipped: int, *, force: bool = False) -> None:
        if self._progress is None:
            return
        now = time.monotonic()
        if not force and now - self._last < 0.25:  # redrawing every frame would cost more than a small model
            return
        self._last = now
        status = f"{fps:5.1f} fps  {latency_ms:6.1f} ms/frame  dropped {dropped}  skipped {skipped}"
        self._progress.update(self._task, completed=frames, status=status)

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
