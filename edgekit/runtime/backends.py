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
        try:
            module = backend.load()
            version = backend.version()
        except Exception as e:  # noqa: BLE001 - a broken wheel raises anything (tflite_runtime + numpy 2: AttributeError)
            skipped[backend.name] = f"{type(e).__name__}: {first_line(e, limit=200)}"
            continue
        return LoadedBackend(backend, module, version, skipped)
    tried = "; ".join(f"{k}: {v}" for k, v in skipped.items())
    raise MissingExtraError(
        f"no TFLite interpreter backend could be imported ({tried}).",
        hint='Install the device runtime: pip install "edgekit[runtime]" (ai-edge-litert).',
    )
