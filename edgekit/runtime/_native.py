"""Keeping native libraries' log spam off the console, but not their reasons.

LiteRT and its delegates print INFO/WARNING lines straight to file
descriptor 2 from C++. A device's console should show edgekit's one-line
decision instead, so probes run inside :func:`captured_stderr`, and the
captured text is used to explain a failure (e.g. "No adapters found").
"""
from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
from typing import Iterator


class Captured:
    text: str = ""

    def reason(self, fallback: str) -> str:
        """The most telling line of what the library printed, else ``fallback``."""
        return native_reason(self.text) or fallback


@contextlib.contextmanager
def captured_stderr() -> Iterator[Captured]:
    """Redirect fd 2 to a temp file for the block; the text lands in ``.text``.

    Falls back to doing nothing where fd 2 cannot be duplicated (some embedded
    interpreters), so callers never depend on the capture for correctness.
    """
    cap = Captured()
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):
        yield cap
        return
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield cap
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            cap.text = tmp.read().decode("utf-8", "replace")


_REASON_PATTERNS = (
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
