"""Keeping native libraries' log spam off the console, but not their reasons.

LiteRT and its delegates print INFO/WARNING lines straight to file
descriptor 2 from C++. A device's console should show edgekit's one-line
decision instead, so probes run inside :func:`captured_stderr`, and the
captured text is used to explain a failure (e.g. "No adapters found").

A native library can also kill the process (SIGILL, abort) inside such a
block, and then the hidden text is the only explanation there is. So the
capture goes to a named file, ``<tmp>/edgekit-native-<uid>/stderr-<pid>-<n>.log``,
with Python's fault handler writing the stack there too: a clean exit from
the block deletes it, a crash leaves it behind, and ``edgekit doctor`` names
the files that dead processes left (:func:`crash_traces`). With
``EDGEKIT_DEBUG=1`` every capture is kept and its path printed on the real
stderr before the native call, so it is the last line before a crash.
"""
from __future__ import annotations

import contextlib
import faulthandler
import itertools
import os
import re
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

_END = "edgekit: block ended normally\n"
_SEQ = itertools.count(1)  # blocks nest (doctor -> open_plan -> engine): one file each


class Captured:
    text: str = ""
    path: Path | None = None  # where the text was kept (EDGEKIT_DEBUG=1), else None

    def reason(self, fallback: str) -> str:
        """The most telling line of what the library printed, else ``fallback``."""
        return native_reason(self.text) or fallback


def debug_enabled() -> bool:
    return os.environ.get("EDGEKIT_DEBUG", "").strip().lower() not in ("", "0", "false", "no")


def trace_dir() -> Path:
    """Where captured native output is written while a native call runs."""
    uid = os.getuid() if hasattr(os, "getuid") else 0
    return Path(os.environ.get("EDGEKIT_TRACE_DIR") or Path(tempfile.gettempdir()) / f"edgekit-native-{uid}")


def _open_trace(what: str):
    d = trace_dir()
    d.mkdir(parents=True, exist_ok=True)
    path = d / f"stderr-{os.getpid()}-{next(_SEQ)}.log"
    f = open(path, "w+b")  # noqa: SIM115 - closed by the caller
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
    argv = " ".join(sys.argv[:4])
    f.write(f"edgekit: pid {os.getpid()} at {stamp} ({argv}): {what}\n".encode())
    f.flush()
    return path, f


@contextlib.contextmanager
def captured_stderr(what: str = "a native library call") -> Iterator[Captured]:
    """Redirect fd 2 to a trace file for the block; the text lands in ``.text``.

    Args:
        what: what the block does, written at the top of the trace file.

    Falls back to doing nothing where fd 2 cannot be duplicated (some embedded
    interpreters), or to an anonymous temp file where the trace folder cannot
    be written, so callers never depend on the capture for correctness.
    """
    cap = Captured()
    keep = debug_enabled()
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):
        yield cap
        return
    try:
        path, f = _open_trace(what)
    except OSError:
        path, f = None, tempfile.TemporaryFile(mode="w+b")
    if keep and path is not None:
        os.write(saved, f"edgekit: native output of {what} goes to {path}\n".encode())
    fault_was_on = faulthandler.is_enabled()
    try:
        faulthandler.enable(file=f)  # a fatal signal in the block leaves the Python stack in the trace
    except (ValueError, RuntimeError, OSError):
        fault_was_on = None
    os.dup2(f.fileno(), 2)
    try:
        yield cap
    finally:
        # Reached on an exception too (a failed load is the common case); only a dead process skips it.
        os.dup2(saved, 2)
        os.close(saved)
        if fault_was_on is not None:
            faulthandler.disable()
            if fault_was_on:
                faulthandler.enable(file=sys.__stderr__ or sys.stderr)
        with f:
            f.seek(0)
            raw = f.read().decode("utf-8", "replace")
            cap.text = raw.split("\n", 1)[-1] if path is not None else raw
            if keep and path is not None:
                f.write(_END.encode())
                cap.path = path
        if path is not None and not keep:
            with contextlib.suppress(OSError):
                path.unlink()


@dataclass(frozen=True)
class CrashTrace:
    """What a process that died inside :func:`captured_stderr` left behind."""

    path: Path
    pid: int
    reason: str  # the library's most telling line, else the block's description

    def to_dict(self) -> dict[str, object]:
        return {"file": str(self.path), "pid": self.pid, "reason": self.reason}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def crash_traces(directory: Path | None = None) -> list[CrashTrace]:
    """Trace files of processes that died inside a native call, newest first."""
    d = directory or trace_dir()
    out = []
    for p in d.glob("stderr-*.log"):
        try:
            pid = int(p.stem.split("-")[1])
            text = p.read_text(errors="replace")
        except (ValueError, OSError):
            continue
        if pid == os.getpid() or _alive(pid) or text.endswith(_END):
            continue
        header, _, body = text.partition("\n")
        what = header.split("): ", 1)[-1] if "): " in header else header
        out.append(CrashTrace(p, pid, native_reason(body) or f"died during {what}"))
    out.sort(key=lambda t: t.path.stat().st_mtime if t.path.exists() else 0, reverse=True)
    return out


_REASON_PATTERNS = (
    re.compile(r"FATAL ERROR: ([^\n]+?)(?: \(go/[\w-]+\))?\.?$", re.M),
    re.compile(r"(Fatal Python error: [^\n]+)"),
    re.compile(r"(No adapters found)"),
    re.compile(r"(Couldn't load \w+: [^\n]+)"),
    re.compile(r"(cannot open shared object file[^\n]*)"),
    re.compile(r"Failed to [^\n]*?: (INTERNAL: [^\n]+)"),
    re.compile(r"^E\d{4} [^\]]*\] ([^\n]+)", re.M),
    re.compile(r"^ERROR: ([^\n]+)", re.M),
)


def native_reason(text: str) -> str:
    for pattern in _REASON_PATTERNS:
        m = pattern.search(text)
        if m:
            return " ".join(m.group(1).split())[:160]
    return ""
