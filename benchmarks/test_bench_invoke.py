"""Invoke latency per artifact: the engine's set_tensor + invoke + get_tensor, nothing else."""
from __future__ import annotations

import numpy as np


def test_invoke(benchmark, predictor, artifact):
    x = predictor.preprocess(np.zeros((*predictor.spec.input_size, 3), np.uint8))
    from edgekit.runtime.tensors import quantize

    q = quantize(x[None, ...], predictor.input)
    benchmark.extra_info.update(
        file=artifact.file, bytes=artifact.bytes, accelerator=predictor.plan.accelerator,
        via=predictor.plan.via, threads=predictor.plan.threads,
    )
    out = benchmark(predictor.engine.invoke, q)
    assert out.shape == tuple(predictor.output.shape)


def test_bare_interpreter_invoke(benchmark, predictor, artifact, backend, bundle):
    """A bare Interpreter.invoke() loop on the same file: the floor the per-frame path is compared with."""
    interp = backend.Interpreter(model_path=str(bundle.path / artifact.file), num_threads=predictor.plan.threads)
    interp.allocate_tensors()
    d = interp.get_input_details()[0]
    interp.set_tensor(d["index"], np.zeros(d["shape"], d["dtype"]))
    benchmark.extra_info.update(file=artifact.file, threads=predictor.plan.threads)
    benchmark(interp.invoke)
