"""Where frames come from: cameras, streams, video files and images, through OpenCV.

Two behaviours, chosen by what the source is:

- **Files** (an image, a folder of images, a glob, a video file) are read in
  the caller's thread, in order, every frame: nothing is dropped. A frame that
  cannot be decoded is skipped and counted; the end of the file ends the run.
- **Live sources** (a camera index or ``/dev/videoN``, an RTSP/HTTP/... URL)
  are read on a capture thread into a small queue that drops the *oldest*
  frame when full: results stay current rather than complete. A read failure
  means the stream was lost: the thread reconnects with exponential backoff
  (:class:`ReconnectPolicy`) and gives up with a :class:`SourceError` when
  ``attempts`` reconnects in a row brought no new frame. A URL that serves a
  finite video (``http://host/clip.mp4``) ends cleanly at its last frame; a
  reopen replays it from the start, and the replayed frames are not delivered
  again.

:func:`open_source` turns a ``--source`` string into one of these. To add a
kind of source, subclass :class:`Source` and add a branch there.
"""
from __future__ import annotations

import abc
import atexit
import functools
import glob as _glob
import logging
import os
import queue
import re
import stat
import threading
import time
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from edgekit.errors import DataError, MissingExtraError, SourceError
from edgekit.preprocess import IMAGE_EXTENSIONS, is_image_name, list_images

log = logging.getLogger("edgekit.runtime")

URL_SCHEMES = ("rtsp", "rtsps", "rtmp", "http", "https", "udp", "tcp", "srt")
_URL = re.compile(rf"^({'|'.join(URL_SCHEMES)})://", re.I)
_GLOB_CHARS = re.compile(r"[*?\[]")
# Consecutive undecodable frames after which a video file is treated as ended.
_MAX_BAD_RUN = 25
# How long close() waits for a capture thread blocked in read(): the stream
# read timeout (5 s) plus a margin.
_JOIN_TIMEOUT_S = 8.0


def cv2_module() -> Any:
    """OpenCV, or a :class:`MissingExtraError` naming the extra to install."""
    try:
        import cv2
    except ImportError as e:
        raise MissingExtraError(
            f"OpenCV is not installed ({e}).", hint='Install the device runtime: pip install "edgekit[runtime]".'
        ) from e
    return cv2


@functools.lru_cache(maxsize=1)
def opencv_build_info() -> dict[str, str]:
    """The ``key: value`` lines of ``cv2.getBuildInformation()``, first occurrence of each key.

    Keys as OpenCV prints them: ``"GUI"``, ``"FFMPEG"``, ``"GStreamer"``, ``"v4l/v4l2"``, ...

    Raises:
        MissingExtraError: OpenCV is not installed.
    """
    info: dict[str, str] = {}
    for raw in cv2_module().getBuildInformation().splitlines():
        key, sep, value = raw.strip().partition(":")
        if sep and key:
            info.setdefault(key.strip(), value.strip())
    return info


@dataclass
class Frame:
    """One picture from a source, as decoded (uint8, BGR or gray)."""

    index: int  # position in the source; gaps mean dropped (live) or skipped frames
    image: np.ndarray
    source: str  # the file it came from, or the camera/stream name
    timestamp: float  # wall clock (time.time()) when it was captured
    capture_ms: float  # time spent reading and decoding it
    position_ms: float | None = None  # position in a video file


@dataclass(frozen=True)
class ReconnectPolicy:
    """How a live source retries: ``initial_delay * factor**n`` seconds, capped at ``max_delay``.

    ``attempts`` reconnections after a loss; ``open_attempts`` tries for the
    first open (kept short so a wrong camera index fails fast).
    """

    attempts: int = 5
    open_attempts: int = 3
    initial_delay: float = 0.5
    factor: float = 2.0
    max_delay: float = 8.0

    def __post_init__(self) -> None:
        if self.attempts < 0 or self.open_attempts < 1:
            raise ValueError("attempts must be >= 0 and open_attempts >= 1")
        if self.initial_delay < 0 or self.factor < 1 or self.max_delay < 0:
            raise ValueError("delays must be >= 0 and factor >= 1")

    def delay(self, attempt: int) -> float:
        """Seconds to wait before attempt ``attempt`` (1-based); the first waits nothing."""
        if attempt <= 1:
            return 0.0
        return min(self.initial_delay * self.factor ** (attempt - 2), self.max_delay)


class Source(abc.ABC):
    """Base class: iterate :meth:`frames`, read the counters, :meth:`close`."""

    name: str = ""
    live: bool = False
    total: int | None = None  # frames expected, when known (files)
    fps: float | None = None  # native frame rate, when known

    def __init__(self) -> None:
        self.dropped = 0
        self.skipped = 0
        self.unread = 0  # frames a file's header announced that could not be read at all (truncated file)
        self.waited_s = 0.0  # time spent waiting to reconnect (not part of the frame rate)
        self.skipped_items: list[str] = []  # first few skipped files/frames, for the summary
        self._closed = threading.Event()

    @abc.abstractmethod
    def frames(self) -> Iterator[Frame]:
        """Yield frames until the source ends, is closed, or gives up."""

    def request_stop(self) -> None:
        """Ask the source to stop at the next frame; never blocks (safe from a signal handler)."""
        self._closed.set()

    def close(self) -> None:
        """Stop producing frames and release the device/file (safe from another thread)."""
        self.request_stop()

    def count_skipped(self, what: str) -> None:
        """Record a frame that could not be decoded or preprocessed (and log it)."""
        self.skipped += 1
        if len(self.skipped_items) < 20:
            self.skipped_items.append(what)
        log.warning("skipped unreadable frame: %s", what, extra={"edgekit_event": "skipped"})

    def __enter__(self) -> "Source":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class ImageSource(Source):
    """Image files, in the given order; unreadable ones are skipped and counted."""

    def __init__(self, paths: list[Path], name: str):
        super().__init__()
        self.paths = paths
        self.name = name
        self.total = len(paths)

    def frames(self) -> Iterator[Frame]:
        from edgekit.preprocess import read_image  # the build side's reader: same pixels on both sides

        for i, path in enumerate(self.paths):
            if self._closed.is_set():
                return
            t0 = time.perf_counter()
            try:
                image = read_image(path)
            except DataError as e:  # over the pixel cap: skipped and said why, the run goes on
                log.warning("%s", e)
                image = None
            ms = (time.perf_counter() - t0) * 1e3
            if image is None:
                self.count_skipped(str(path))
                continue
            yield Frame(i, image, str(path), time.time(), ms)


class VideoFileSource(Source):
    """Every frame of a video file, in order; undecodable frames are skipped and counted."""

    def __init__(self, path: Path):
        super().__init__()
        cv2 = cv2_module()
        self.path = path
        self.name = str(path)
        self._started = False
        self._cap = cv2.VideoCapture(str(path))
        if not self._cap.isOpened():
            raise SourceError(
                f"cannot open video file {path}: OpenCV found no decoder for it (not a video, damaged, or an unsupported codec).",
                hint="Check the file plays elsewhere; 'edgekit doctor' lists this OpenCV's video backends.",
            )
        count = int(self._cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        self.total = count if count > 0 else None
        fps = float(self._cap.get(cv2.CAP_PROP_FPS) or 0)
        self.fps = fps if 0 < fps < 1000 else None

    def frames(self) -> Iterator[Frame]:
        cv2 = cv2_module()
        self._started = True
        index, bad_run = 0, 0
        try:
            while not self._closed.is_set():
                t0 = time.perf_counter()
                ok = self._cap.grab()
                if not ok:
                    # grab() fails at the end, or on a frame the demuxer cannot
                    # read; past the known length it is the end.
                    if self.total is None or index >= self.total:
                        return
                    if bad_run >= _MAX_BAD_RUN:
                        self._ended_early(index)
                        return
                    bad_run += 1
                    self.count_skipped(f"{self.path} frame {index}")
                    index += 1
                    continue
                ok, image = self._cap.retrieve()
                ms = (time.perf_counter() - t0) * 1e3
                if not ok or image is None or image.size == 0:
                    bad_run += 1
                    self.count_skipped(f"{self.path} frame {index}")
                    index += 1
                    if bad_run >= _MAX_BAD_RUN:
                        self._ended_early(index)
                        return
                    continue
                bad_run = 0
                pos = float(self._cap.get(cv2.CAP_PROP_POS_MSEC))
                yield Frame(index, image, self.name, time.time(), ms, position_ms=pos)
                index += 1
        finally:
            self._cap.release()

    def _ended_early(self, index: int) -> None:
        # The header promised more frames than the file holds (a truncated
        # copy): count them, so read + skipped + unread = the header's total.
        if self.total is not None and index < self.total:
            self.unread = self.total - index
            log.warning(
                "%s ends early: %d of the %d frames its header announces could not be read (truncated or damaged file)",
                self.path, self.unread, self.total,
            )

    def close(self) -> None:
        # Only flag it while frames() runs (close may come from a signal handler
        # between grab and retrieve); frames() releases the file on its way out.
        super().close()
        if not self._started:
            self._cap.release()


class LiveSource(Source):
    """A camera or network stream read on a capture thread, newest frames first.

    Args:
        name: how the source is named in messages and results.
        opener: returns a fresh, opened capture object (``isOpened``, ``read``,
            ``release``: a ``cv2.VideoCapture``); called again to reconnect.
        policy: reconnection backoff and limits.
        queue_size: frames buffered between capture and inference; when full,
            the oldest is dropped and counted.
        hint: one line appended to open/give-up errors (e.g. which cameras exist).
    """

    live = True

    def __init__(
        self,
        name: str,
        opener: Callable[[], Any],
        *,
        policy: ReconnectPolicy | None = None,
        queue_size: int = 2,
        hint: str | None = None,
    ):
        super().__init__()
        if queue_size < 1:
            raise ValueError("queue_size must be >= 1")
        self.name = name
        self.policy = policy or ReconnectPolicy()
        self.reconnects = 0  # successful reconnections
        self._opener = opener
        self._hint = hint
        self._queue: queue.Queue = queue.Queue(maxsize=queue_size)
        self._thread: threading.Thread | None = None
        self._cap = self._connect(self.policy.open_attempts)
        cv2 = cv2_module()
        fps = float(self._cap.get(cv2.CAP_PROP_FPS) or 0) if hasattr(self._cap, "get") else 0.0
        self.fps = fps if 0 < fps < 1000 else None

    # -- connection -------------------------------------------------------

    def _try_open(self) -> tuple[Any, str]:
        try:
            cap = self._opener()
        except Exception as e:  # noqa: BLE001 - an opener may raise anything; it is one failed attempt
            return None, f"{type(e).__name__}: {e}"
        if cap is not None and cap.isOpened():
            return cap, ""
        if cap is not None:
            cap.release()
        return None, "OpenCV could not open it"

    def _connect(self, attempts: int) -> Any:
        """The first open: ``attempts`` tries, then a :class:`SourceError`."""
        started = time.monotonic()
        reason = ""
        for attempt in range(1, attempts + 1):
            wait = self.policy.delay(attempt)
            if wait and self._closed.wait(wait):
                return None
            cap, reason = self._try_open()
            if cap is not None:
                return cap
            log.warning("%s: open attempt %d/%d failed: %s", self.name, attempt, attempts, reason)
        took = time.monotonic() - started
        raise SourceError(f"cannot open {self.name} ({reason}; {attempts} attempts over {took:.1f} s).", hint=self._hint)

    def _reconnect(self, loss: "_Loss") -> Any:
        """Reopen after a loss, spending the loss's budget; a :class:`SourceError` when it is spent.

        The budget (``policy.attempts``) is reset only by a *new* frame, so a
        stream that reopens but then fails again at once (flapping) or only
        replays what was already delivered gives up instead of looping.
        """
        while loss.attempts < self.policy.attempts:
            loss.attempts += 1
            wait = self.policy.delay(loss.attempts)
            t0 = time.monotonic()
            try:
                if wait and self._closed.wait(wait):
                    return None
                cap, reason = self._try_open()
            finally:
                self.waited_s += time.monotonic() - t0  # not part of the frame rate
            if cap is not None:
                loss.reopened += 1
                return cap
            loss.reason = reason
            log.warning("%s: reconnect attempt %d/%d failed: %s", self.name, loss.attempts, self.policy.attempts, reason)
        took = time.monotonic() - loss.started
        why = loss.reason or "the stream failed right after opening"
        if loss.reopened:
            why = f"{loss.reopened} reopen(s) succeeded but delivered no new frame; last failure: {why}"
        raise SourceError(
            f"lost {self.name} and gave up after {self.policy.attempts} reconnect attempts over {took:.1f} s ({why}); "
            "results written so far are kept.",
            hint=self._hint,
        )

    # -- capture thread ---------------------------------------------------

    def _put(self, item: Any) -> None:
        while True:
            try:
                self._queue.put_nowait(item)
                return
            except queue.Full:
                try:
                    old = self._queue.get_nowait()
                except queue.Empty:
                    continue
                if isinstance(old, Frame):
                    self.dropped += 1

    def _capture(self) -> None:
        cap, index = self._cap, 0
        loss: _Loss | None = None  # set from a loss until the next new frame
        # A finite stream (a video file over http/rtsp) has a frame count and
        # positions: its end is not a loss, and a reopen replays it from the
        # start, so frames at or before the furthest position reached are not new.
        furthest = 0.0
        corrupt = 0  # frames of this connection that failed to decode (the read after them worked)
        failed = False  # the previous read failed: a corrupt frame, the end, or a loss
        try:
            while not self._closed.is_set():
                t0 = time.perf_counter()
                try:
                    ok, image = cap.read()
                except Exception as e:  # noqa: BLE001 - a driver error is a lost stream
                    log.warning("%s: read failed: %s", self.name, e)
                    ok, image = False, None
                ms = (time.perf_counter() - t0) * 1e3
                if self._closed.is_set():
                    break
                count, pos = _frame_count(cap), _position(cap)
                if ok and image is not None and image.size > 0:
                    after_failure, failed = failed, False
                    if after_failure:  # the read before this one was a corrupt frame, not a loss
                        corrupt += 1
                    if count is not None and pos is not None and pos <= furthest:
                        continue  # replayed after a reopen: delivered already
                    if after_failure:
                        self.count_skipped(f"{self.name} frame {index}")
                        index += 1
                    loss = None
                    if pos is not None:
                        furthest = max(furthest, pos)
                    self._put(Frame(index, image, self.name, time.time(), ms))
                    index += 1
                    continue
                if ok:  # a frame arrived but is empty: corrupt, skip it
                    self.count_skipped(f"{self.name} frame {index}")
                    index += 1
                    continue
                if count is not None and pos is not None and pos + corrupt >= count:
                    log.info("%s: end of stream after %d frames", self.name, index)
                    break
                if count is not None and not failed:
                    failed = True  # maybe one undecodable frame: read on before calling it lost
                    continue
                log.warning("%s: stream lost after frame %d; reconnecting", self.name, index)
                cap.release()
                cap = None
                loss = loss or _Loss(time.monotonic())
                cap = self._reconnect(loss)
                if cap is None:  # closed while waiting
                    break
                corrupt, failed = 0, False
                self.reconnects += 1
        except SourceError as e:
            self._put(e)
        except BaseException as e:  # noqa: BLE001 - hand any crash to the consumer rather than die silently
            self._put(e)
        finally:
            if cap is not None:
                cap.release()
            self._put(_END)

    def frames(self) -> Iterator[Frame]:
        if self._thread is None:
            self._thread = threading.Thread(target=self._capture, name=f"capture:{self.name}", daemon=True)
            _LIVE.add(self)
            self._thread.start()
        while True:
            try:
                item = self._queue.get(timeout=0.1)
            except queue.Empty:
                if self._closed.is_set():
                    return
                continue
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def close(self) -> None:
        """Stop the capture thread and wait for it to release the capture.

        A daemon thread still inside OpenCV's read() when the interpreter exits
        aborts the process ("FATAL: exception not rethrown", exit 134/139), so
        the thread is joined here (it notices the flag after at most one read
        timeout), and once more at exit for sources nobody closed.
        """
        super().close()
        thread = self._thread
        if thread is None:
            if self._cap is not None:
                self._cap.release()
                self._cap = None
            return
        if thread is not threading.current_thread() and thread.is_alive():
            thread.join(_JOIN_TIMEOUT_S)
            if thread.is_alive():
                log.warning("%s: the capture thread did not stop within %.0f s", self.name, _JOIN_TIMEOUT_S)
        _LIVE.discard(self)


_END = object()
_LIVE: "weakref.WeakSet[LiveSource]" = weakref.WeakSet()


@atexit.register
def _close_live_sources() -> None:
    for src in list(_LIVE):
        src.close()


@dataclass
class _Loss:
    """One loss of a live source, from the failed read until the next new frame."""

    started: float  # time.monotonic() of the failed read
    attempts: int = 0  # reconnect attempts spent
    reopened: int = 0  # of those, opens that worked (and then delivered nothing new)
    reason: str = ""  # why the last open failed


def _frame_count(cap: Any) -> int | None:
    """Frames in a finite stream (a video file served over a URL); None for a live one."""
    if not hasattr(cap, "get"):
        return None
    count = cap.get(cv2_module().CAP_PROP_FRAME_COUNT)  # live: 0, -1 or a huge negative number
    return int(count) if count and 0 < count < 2**53 else None


def _position(cap: Any) -> float | None:
    """Frames decoded so far (CAP_PROP_POS_FRAMES), when the capture says."""
    if not hasattr(cap, "get"):
        return None
    pos = cap.get(cv2_module().CAP_PROP_POS_FRAMES)
    return float(pos) if pos is not None and pos >= 0 else None


# ------------------------------------------------------------------- parsing


def _camera_hint() -> str:
    devices = sorted(_glob.glob("/dev/video*"))
    if devices:
        return f"Cameras present: {', '.join(devices)}."
    return "No /dev/video* devices exist: is the camera plugged in and its driver loaded?"


def _camera_opener(index: int | str) -> Callable[[], Any]:
    def open_() -> Any:
        return cv2_module().VideoCapture(index)

    return open_


def _stream_opener(url: str, timeout_ms: int = 5000) -> Callable[[], Any]:
    def open_() -> Any:
        cv2 = cv2_module()
        # Without timeouts a stalled RTSP server blocks read() for ~30 s.
        params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, timeout_ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, timeout_ms]
        return cv2.VideoCapture(url, cv2.CAP_FFMPEG, params)

    return open_


def _redact(url: str) -> str:
    # rtsp://user:password@host -> rtsp://user:***@host: names go into logs and results.
    return re.sub(r"(://[^:/@]+:)[^@/]+@", r"\1***@", url)


def open_source(
    source: str | int | os.PathLike[str],
    *,
    policy: ReconnectPolicy | None = None,
    queue_size: int = 2,
) -> Source:
    """Open a ``--source``: camera index, ``/dev/videoN``, URL, image, folder, glob or video file.

    A folder is searched recursively for images as the build side does
    (:func:`edgekit.preprocess.list_images`: image extensions, hidden files
    and folders left out, sorted by path); a glob's matches are read as images.

    Raises:
        SourceError: it does not exist, matches nothing, or cannot be opened
            (the message names it).
        MissingExtraError: OpenCV is not installed.

    Example::

        with open_source("photos/") as src:
            for frame in src.frames():
                ...
    """
    cv2_module()
    text = str(source).strip()
    if isinstance(source, int) or re.fullmatch(r"\d+", text):
        index = int(text)
        return LiveSource(f"camera {index}", _camera_opener(index), policy=policy, queue_size=queue_size, hint=_camera_hint())
    if _URL.match(text):
        return LiveSource(_redact(text), _stream_opener(text), policy=policy, queue_size=queue_size,
                          hint="Check the URL, the network and that the stream is up.")
    path = Path(text).expanduser()
    if path.exists():
        mode = path.stat().st_mode
        if stat.S_ISCHR(mode):  # /dev/video0
            return LiveSource(f"camera {text}", _camera_opener(text), policy=policy, queue_size=queue_size, hint=_camera_hint())
        if path.is_dir():
            images = list_images(path)
            if not images:
                raise SourceError(
                    f"source folder {path} has no images ({', '.join(sorted(IMAGE_EXTENSIONS))}).",
                    hint="Point --source at a folder of pictures, a video file, a camera index or a URL.",
                )
            return ImageSource(images, str(path))
        if is_image_name(path):
            return ImageSource([path], str(path))
        return VideoFileSource(path)
    if _GLOB_CHARS.search(text):
        matches = sorted(Path(p) for p in _glob.glob(os.path.expanduser(text), recursive=True) if os.path.isfile(p))
        if not matches:
            raise SourceError(f"source pattern {text!r} matches no files.", hint="Check the pattern; quote it so the shell does not expand it.")
        return ImageSource(matches, text)
    raise SourceError(
        f"source {text!r} does not exist: expected a camera index (0), /dev/videoN, an rtsp/http URL, "
        "an image, a folder of images, a glob or a video file.",
    )
