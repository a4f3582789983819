"""TFLite interpreter backends, tried in a fixed order, never TensorFlow first.

Order: ``ai_edge_litert`` (LiteRT, the maintained package) →
``tflite_runtime`` (legacy; 2.14 breaks with numpy 2) → ``tensorflow.lite``
(works, but drags TensorFlow onto the device: last resort). All three expose
the same ``Interpreter`` and ``load_delegate``.

To add a backend, append a :class:`Backend` to ``_BACKENDS``.
"""
from __future__ import annotations

import importlib
import os
import platform
import re
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Callable

from edgekit.errors import MissingExtraError, first_line


@dataclass(frozen=True)
class Backend:
    """One importable TFLite interpreter implementation."""

    name: str
    module: str  # module that holds Interpreter and load_delegate
    version_module: str

    def load(self) -> ModuleType:
        return importlib.import_module(self.module)

    def version(self) -> str:
        mod = importlib.import_module(self.version_module)
        return str(getattr(mod, "__version__", getattr(mod, "VERSION", "unknown")))


_BACKENDS: tuple[Backend, ...] = (
    Backend("ai_edge_litert", "ai_edge_litert.interpreter", "ai_edge_litert"),
    Backend("tflite_runtime", "tflite_runtime.interpreter", "tflite_runtime"),
    Backend("tensorflow", "tensorflow.lite.python.interpreter", "tensorflow"),
)

BACKEND_NAMES = tuple(b.name for b in _BACKENDS)

# An ai-edge-litert whose aarch64 libraries need no more than glibc 2.30
# (objdump -T on the cp311 wheels: 1.4.0 and 2.1.0 need GLIBC_2.30; 2.1.6,
# 2.2.0 and 2.3.0 need GLIBC_2.34 despite their manylinux_2_27 tag).
LITERT_FOR_OLD_GLIBC = "ai-edge-litert<2.1.1"
LITERT_OLD_GLIBC_NEEDS = "2.30"


def _dist_version(dist: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _major(version: str | None) -> int | None:
    m = re.match(r"(\d+)", version or "")
    return int(m.group(1)) if m else None


def tflite_runtime_numpy_problem(tflite_runtime_version: str | None, numpy_version: str | None) -> str | None:
    """Why this tflite-runtime cannot work with this numpy, or None.

    tflite-runtime 2.14 (the last release) is built against numpy 1.x: with
    numpy 2 it may even import, then fails on the first model with
    "returned a result with an exception set".

    >>> tflite_runtime_numpy_problem("2.14.0", "1.26.4") is None
    True
    """
    if not tflite_runtime_version or not numpy_version or (_major(numpy_version) or 0) < 2:
        return None
    if tuple(map(int, re.findall(r"\d+", tflite_runtime_version)[:2])) > (2, 14):
        return None
    return (
        f"tflite-runtime {tflite_runtime_version} is built against numpy 1.x and this is numpy {numpy_version}; "
        'install "numpy<2" or use ai-edge-litert (pip install "edgekit[runtime]")'
    )


def known_incompatibility(name: str) -> str | None:
    """Why backend ``name`` cannot work here, known before importing it; None if nothing is known."""
    if name == "tflite_runtime":
        return tflite_runtime_numpy_problem(_dist_version("tflite-runtime"), _dist_version("numpy"))
    return None


def explain_import_error(name: str, error: BaseException, *, glibc: str | None = None, version: str | None = None) -> str:
    """The reason a backend failed to import, with the way out where the cause is known.

    Args:
        name: the backend's name (``ai_edge_litert``...).
        error: what importing it raised.
        glibc, version: this system's glibc and the backend's package version
            (default: read from this system).
    """
    text = f"{type(error).__name__}: {first_line(error, limit=200)}"
    needs = re.search(r"version [`'\"]?GLIBC_(\d+\.\d+)[`'\"]? not found", str(error))
    if needs:
        have = glibc or platform.libc_ver()[1] or "older"
        dist = {"ai_edge_litert": "ai-edge-litert", "tflite_runtime": "tflite-runtime"}.get(name, name)
        version = version if version is not None else _dist_version(dist) or ""
        fix = (
            f'install an older one (pip install "{LITERT_FOR_OLD_GLIBC}", which needs glibc {LITERT_OLD_GLIBC_NEEDS}) '
            "or upgrade the OS (Debian 12 / Raspberry Pi OS bookworm, Ubuntu 22.04, JetPack 6)"
            if name == "ai_edge_litert"
            else "upgrade the OS or install a build of it for this glibc"
        )
        return f"{dist} {version} needs glibc {needs.group(1)} and this system has glibc {have}: {fix}".replace("  ", " ")
    if name == "tflite_runtime" and re.search(r"numpy|_ARRAY_API|exception set", str(error), re.I):
        return known_incompatibility(name) or text
    return text


@dataclass(frozen=True)
class LoadedBackend:
    backend: Backend
    module: ModuleType
    version: str
    # why earlier backends in the order were not used: name -> reason
    skipped: dict[str, str]

    @property
    def name(self) -> str:
        return self.backend.name

    @property
    def Interpreter(self) -> Callable[..., Any]:  # noqa: N802 (mirrors the library's name)
        return self.module.Interpreter

    def load_delegate(self, library: str, options: dict | None = None) -> Any:
        return self.module.load_delegate(library, options or {})


def select_backend(preferred: str | None = None) -> LoadedBackend:
    """Import the first working interpreter backend.

    Args:
        preferred: a name from ``BACKEND_NAMES`` to use instead of the order
            (also read from ``EDGEKIT_BACKEND``).

    Raises:
        MissingExtraError: no backend imports.
    """
    preferred = preferred or os.environ.get("EDGEKIT_BACKEND") or None
    if preferred is not None and preferred not in BACKEND_NAMES:
        raise MissingExtraError(
            f"unknown interpreter backend {preferred!r}; expected one of {', '.join(BACKEND_NAMES)}."
        )
    order = [b for b in _BACKENDS if preferred in (None, b.name)]
    skipped: dict[str, str] = {}
    for backend in order:
        known = known_incompatibility(backend.name)
        if known:
            skipped[backend.name] = known
            continue
        try:
            module = backend.load()
            version = backend.version()
        except Exception as e:  # noqa: BLE001 - a broken wheel raises anything (tflite_runtime + numpy 2: AttributeError)
            skipped[backend.name] = explain_import_error(backend.name, e)
            continue
        return LoadedBackend(backend, module, version, skipped)
    tried = "; ".join(f"{k}: {v}" for k, v in skipped.items())
    known = next((v for v in skipped.values() if "needs glibc" in v or "numpy 1.x" in v), None)
    raise MissingExtraError(
        f"no TFLite interpreter backend could be imported ({tried}).",
        hint=f"The way out: {known.split(': ', 1)[-1].split('; ', 1)[-1]}."
        if known
        else 'Install the device runtime: pip install "edgekit[runtime]" (ai-edge-litert).',
    )
