"""Where the shipped data lives: ``targets/`` and ``calibration/``.

In a source checkout (editable install) they sit at the repository root, beside
the package. A wheel carries them as ``edgekit/_data/...`` (see
``pyproject.toml``). Both layouts resolve here, so callers never care.
"""
from __future__ import annotations

from pathlib import Path

_PKG = Path(__file__).resolve().parent


def _find(name: str) -> Path:
    for candidate in (_PKG / "_data" / name, _PKG.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(
        f"edgekit's shipped '{name}/' folder is missing (looked in {_PKG / '_data'} and {_PKG.parent}); "
        "reinstall edgekit."
    )


def targets_dir() -> Path:
    """The folder of built-in target and device profiles."""
    return _find("targets")


def calibration_dir() -> Path:
    """The folder of shipped calibration data sets and recipes."""
    return _find("calibration")


def digits_dir() -> Path:
    """The bundled labelled digits image set (one subfolder per class)."""
    return calibration_dir() / "digits"


def recipes_dir() -> Path:
    """The shipped compression recipes."""
    return calibration_dir() / "recipes"
