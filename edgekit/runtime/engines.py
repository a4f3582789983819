"""Execution engines: one loaded artifact that turns an input tensor into an output tensor.

Two kinds, one small interface (``input``, ``output``, ``invoke``, ``close``):

- :class:`InterpreterEngine`: the classic ``Interpreter`` of whichever backend
  :func:`~edgekit.runtime.backends.select_backend` found, on the CPU
  (XNNPACK) or with TFLite delegates (Edge TPU, an external ``.so``).
- :class:`CompiledModelEngine`: LiteRT's ``CompiledModel`` with a hardware
  accelerator (the GPU). Only the ``ai_edge_litert`` backend has it.

Opening an engine either works or raises :class:`EngineUnavailable` with a
one-line reason; deciding what to do about that (fall back or stop) is the
policy in :mod:`edgekit.runtime.accelerators`.
"""
from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from edgekit.errors import first_line
from edgekit.runtime._native import captured_stderr
from edgekit.runtime.backends import LoadedBackend
from edgekit.runtime.tensors import TensorInfo


class EngineUnavailable(Exception):
    """An engine could not be opened here; ``str(e)`` is the one-line reason."""


@contextlib.contextmanager
def _quiet_unraisable() -> Iterator[None]:
    # A failed load_delegate leaves a half-built Delegate whose __del__ raises
    # AttributeError ("no attribute '_library'") during garbage collection;
    # that is LiteRT's bug and noise on the console, not information.
    old = sys.unraisablehook
    sys.unraisablehook = lambda _unraisable: None
    try:
        yield
    finally:
        import gc

        gc.collect()
        sys.unraisablehook = old


def load_delegate(backend: LoadedBackend, library: str, options: dict | None = None) -> Any:
    """``backend.load_delegate`` with failures turned into :class:`EngineUnavailable`."""
    with _quiet_unraisable(), captured_stderr():
        try:
            return backend.load_delegate(library, options)
        except Exception as e:  # noqa: BLE001 - OSError (dlopen), AttributeError (not a delegate), ValueError (create failed)
            # Only the text is kept: the traceback holds the half-built
            # Delegate, which must be collected inside the quiet block.
            detail = first_line(e)
            if isinstance(e, AttributeError) and "tflite_plugin_create_delegate" in str(e):
                detail = "the library is not a TFLite delegate (no tflite_plugin_create_delegate)"
    raise EngineUnavailable(f"delegate {library} could not be loaded: {detail}")


def _model_source(path: str | Path, content: bytes | None) -> dict[str, Any]:
    # The bytes whose sha256 was checked, when given: re-opening the path could read another file.
    return {"model_content": content} if content is not None else {"model_path": str(path)}


def read_io(backend: LoadedBackend, path: str | Path, content: bytes | None = None) -> tuple[TensorInfo, TensorInfo]:
    """The artifact's single input and output, read without allocating it."""
    with captured_stderr():
        try:
            interp = backend.Interpreter(**_model_source(path, content))
        except Exception as e:  # noqa: BLE001 - ValueError/RuntimeError from the C++ loader
            raise EngineUnavailable(f"{Path(path).name} is not a loadable model: {first_line(e)}") from None
    ins, outs = interp.get_input_details(), interp.get_output_details()
    if len(ins) != 1 or len(outs) != 1:
        raise EngineUnavailable(f"{Path(path).name} has {len(ins)} inputs and {len(outs)} outputs; edgekit runs classifiers with one of each")
    return TensorInfo.from_detail(ins[0]), TensorInfo.from_detail(outs[0])


class InterpreterEngine:
    """An artifact in the backend's ``Interpreter``, optionally with delegates."""

    def __init__(
        self,
        path: str | Path,
        backend: LoadedBackend,
        *,
        threads: int | None = None,
        delegates: Sequence[Any] = (),
        accelerator: str = "cpu",
        content: bytes | None = None,
    ):
        self.path = Path(path)
        self._content = content  # the verified bytes (kept alive as long as the interpreter)
        self.accelerator = accelerator
        self.backend = backend
        self._delegates = list(delegates)  # keep them alive as long as the interpreter
        with captured_stderr() as cap:
            try:
                self._interp = backend.Interpreter(
                    **_model_source(self.path, content),
                    num_threads=threads,
                    experimental_delegates=self._delegates or None,
                )
                self._interp.allocate_tensors()
            except Exception as e:  # noqa: BLE001 - the backends raise RuntimeError/ValueError with C++ text
                err = e
            else:
                err = None
        if err is not None:
            first = first_line(err)
            # "ERROR: [file:line] ..." or no text at all: the reason is in what LiteRT printed.
            reason = first if str(err).strip() and not first.startswith("ERROR: [") else cap.reason(first)
            raise EngineUnavailable(f"{self.path.name} did not load on {accelerator}: {reason}") from err
        self.input = TensorInfo.from_detail(self._interp.get_input_details()[0])
        self.output = TensorInfo.from_detail(self._interp.get_output_details()[0])
        # The interpreter's raw-access function: each call is a numpy view on
        # the input tensor's own memory, so the per-frame path writes there
        # instead of filling a copy for set_tensor.
        self._input_tensor = self._interp.tensor(self.input.index)

    @property
    def interpreter(self) -> Any:
        """The allocated interpreter (for :func:`~edgekit.runtime.tensors.run_batch`)."""
        return self._interp

    def invoke(self, x: np.ndarray) -> np.ndarray:
        """Run one input already in the input tensor's dtype and shape; returns the raw output."""
        self._interp.set_tensor(self.input.index, x)
        self._interp.invoke()
        return self._interp.get_tensor(self.output.index)

    def input_view(self) -> np.ndarray:
        """The input tensor's memory as a writable (H, W, C) array, for :meth:`run`.

        Drop the view before calling :meth:`run`: the interpreter refuses to
        run while a view on its buffers is alive (its buffers may move).
        """
        return self._input_tensor()[0]

    def run(self) -> np.ndarray:
        """Invoke on what was written through :meth:`input_view`; returns the raw output (a small copy)."""
        self._interp.invoke()
        return self._interp.get_tensor(self.output.index)

    def close(self) -> None:
        self._interp = None
        self._input_tensor = None
        self._delegates = []


class CompiledModelEngine:
    """An artifact compiled by LiteRT for a hardware accelerator (GPU, with CPU for leftover ops).

    Quantization parameters come from the classic interpreter's view of the
    same file: ``CompiledModel`` reports names, dtypes and shapes only.
    """

    def __init__(
        self, path: str | Path, backend: LoadedBackend, *, accelerator: str = "gpu", threads: int | None = None,
        content: bytes | None = None,
    ):
        if backend.name != "ai_edge_litert":
            raise EngineUnavailable(f"LiteRT's {accelerator.upper()} accelerator needs the ai_edge_litert backend, not {backend.name}")
        from edgekit.runtime.cpu_features import litert_gpu_cpu_problem

        # Any CompiledModel makes LiteRT load its GPU library, which kills the process on a CPU it was not built for.
        cpu_problem = litert_gpu_cpu_problem()
        if cpu_problem:
            raise EngineUnavailable(f"LiteRT {accelerator.upper()} accelerator not loaded: {cpu_problem}")
        try:
            from ai_edge_litert import compiled_model as cm
        except Exception as e:  # noqa: BLE001 - an old ai-edge-litert without CompiledModel
            raise EngineUnavailable(f"this ai-edge-litert {backend.version} has no CompiledModel API ({e})") from e
        flags = {"gpu": cm.HardwareAccelerator.GPU | cm.HardwareAccelerator.CPU, "cpu": cm.HardwareAccelerator.CPU}
        if accelerator not in flags:
            raise ValueError(f"accelerator must be one of {sorted(flags)}, got {accelerator!r}")
        self.path = Path(path)
        self.accelerator = accelerator
        self.backend = backend
        self._content = content
        self.input, self.output = read_io(backend, self.path, content)
        options = cm.Options(hardware_accelerators=flags[accelerator], cpu_options=cm.CpuOptions(num_threads=threads or 0))
        failure = None
        with captured_stderr() as cap:
            try:
                self._model = (
                    cm.CompiledModel.from_buffer(content, options=options) if content is not None
                    else cm.CompiledModel.from_file(str(self.path), options=options)
                )
                self._inputs = self._model.create_input_buffers(0)
                self._outputs = self._model.create_output_buffers(0)
            except Exception as e:  # noqa: BLE001 - RuntimeError with a C++ source location; the reason is on stderr
                failure = first_line(e)
            if failure is not None:
                # The failed model's LiteRT environment logs its teardown; let
                # that happen now, inside the capture, not later on the console.
                import gc

                gc.collect()
        if failure is not None:
            raise EngineUnavailable(f"LiteRT {accelerator.upper()} accelerator unavailable: {cap.reason(failure)}")
        self.fully_accelerated = bool(self._model.is_fully_accelerated())
        self._out_size = int(np.prod(self.output.shape))
        self._staging = np.empty(self.input.shape, dtype=np.dtype(self.input.dtype))

    def invoke(self, x: np.ndarray) -> np.ndarray:
        self._inputs[0].write(np.ascontiguousarray(x))
        self._model.run_by_index(0, self._inputs, self._outputs)
        return self._outputs[0].read(self._out_size, np.dtype(self.output.dtype)).reshape(self.output.shape)

    def input_view(self) -> np.ndarray:
        """A host array (H, W, C) that :meth:`run` writes to the accelerator's input buffer."""
        return self._staging[0]

    def run(self) -> np.ndarray:
        return self.invoke(self._staging)

    def close(self) -> None:
        # Releasing the environment makes LiteRT log its teardown; keep it off the console.
        with captured_stderr():
            self._inputs = self._outputs = []
            self._model = None
            import gc

            gc.collect()
