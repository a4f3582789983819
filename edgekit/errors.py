"""One error hierarchy for edgekit.

Every error a user can cause is an :class:`EdgekitError` whose message says
what was expected, what was received and what to do. The CLI turns these into
a one-line message and a non-zero exit code in one place
(:func:`edgekit.cli._common.run_command`); anything else is a bug and keeps its
traceback.
"""
from __future__ import annotations

import re


class EdgekitError(Exception):
    """Base class: a user-facing failure with an actionable message."""

    exit_code = 2

    def __init__(self, message: str, *, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message} {self.hint}"
        return self.message


class MissingExtraError(EdgekitError):
    """An optional dependency group is not installed."""


class ModelLoadError(EdgekitError):
    """The model file cannot be read: corrupt, truncated, or not a model."""


class UnsupportedModelError(EdgekitError):
    """The model is readable but uses something edgekit cannot handle."""


class UnsafeModelError(EdgekitError):
    """Loading the model would run code stored in the file."""


class BridgeError(EdgekitError):
    """The Keras 3 -> tf_keras rebuild did not reproduce the model's outputs."""


class DataError(EdgekitError):
    """A data set is missing, empty, unreadable or inconsistent with the model."""


class ConfigError(EdgekitError):
    """A recipe, profile or preprocessing spec has a wrong key, type or value."""


class BundleError(EdgekitError):
    """A bundle is missing, malformed, or lacks what was asked for."""


class IntegrityError(BundleError):
    """An artifact's sha256 does not match its manifest: it was changed."""


class TargetError(EdgekitError):
    """An unknown target/device, or a target whose requirements are not met."""


class SourceError(EdgekitError):
    """An input source (camera, video, stream, images) cannot be opened or read."""


class OutputError(EdgekitError):
    """Results could not be written (disk full, no permission, no display)."""


class GateError(EdgekitError):
    """A benchmark or accuracy gate failed (regression past the threshold)."""

    exit_code = 1


def first_line(e: BaseException, *, marker: str | None = None, limit: int = 300) -> str:
    """One line from an exception's text, for a one-line error message.

    Args:
        e: the exception (often a RuntimeError/ValueError with C++ or MLIR text).
        marker: if a line contains it (the MLIR converter's ``"error:"``), the
            text after it on the first such line is used.
        limit: at most this many characters.

    Returns:
        The first non-empty line, or the exception's type name when it has no text.

    Example:
        >>> first_line(RuntimeError("\\n  bad input\\nsee the log"))
        'bad input'
        >>> first_line(ValueError())
        'ValueError'
        >>> first_line(RuntimeError("failed to create XNNPACK runtimefailed to create XNNPACK runtimeNode number 3 failed"))
        'failed to create XNNPACK runtime; Node number 3 failed'
    """
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    if marker:
        for line in lines:
            if marker in line:
                found = line.split(marker, 1)[1].strip()
                if found:
                    return _unglue(found[: 8 * limit])[:limit]
    return _unglue(lines[0][: 8 * limit])[:limit] if lines else type(e).__name__


# TFLite's error reporter appends each native message to the last without a
# separator: "failed to create XNNPACK runtimefailed to create XNNPACK runtime…
# Node number 12 (TfLiteXNNPackDelegate) failed to prepare."
_REPEATED = re.compile(r"(.{8,80}?)\1+")
_GLUED = re.compile(r"(?<=[a-z0-9.)])(?=(?:Node number|Failed to|Restored original|Didn't find|Encountered unresolved) )")


def _unglue(text: str) -> str:
    # Only a repeated phrase (words and a space) collapses: "xxxx…" or "0000…" stays as it is.
    def once(m: re.Match[str]) -> str:
        unit = m.group(1)
        return unit if " " in unit.strip() and any(c.isalpha() for c in unit) else m.group(0)

    return _GLUED.sub("; ", _REPEATED.sub(once, text))
