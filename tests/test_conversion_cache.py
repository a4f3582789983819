"""Calibrate once, convert once per distinct artifact (issue 13 item 2).

The cache's two-step int8 conversion (calibrate, then quantize per I/O type) must
give what a plain one-step ``TFLiteConverter`` gives, and int8 targets that differ
only in I/O type must share one calibration.
"""
from __future__ import annotations

import numpy as np
import pytest

pytestmark = [pytest.mark.slow, pytest.mark.build]


@pytest.fixture(scope="module")
def small(tf_keras):
    from edgekit.data import load_digits

    tf_keras.utils.set_random_seed(0)
    ds = load_digits()
    L = tf_keras.layers
    model = tf_keras.Sequential([
        tf_keras.Input(ds.x.shape[1:]),
        L.Conv2D(8, 3, activation="relu", name="c1"),
        L.DepthwiseConv2D(3, activation="relu", name="dw"),
        L.GlobalAveragePooling2D(),
        L.Dense(10, activation="softmax", name="fc"),
    ])  # fmt: skip
    return model, ds.x[:40].astype(np.float32), ds.x[40:60].astype(np.float32)


def _plain(tf, model, rep, io):
    """The path a user writes: one TFLiteConverter.convert() with a representative dataset."""
    spec = tf.TensorSpec([1, *model.input_shape[1:]], tf.float32)
    fn = tf.function(lambda x: model(x, training=False), input_signature=[spec])
    conv = tf.lite.TFLiteConverter.from_concrete_functions([fn.get_concrete_function()], model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = lambda: ([rep[i : i + 1]] for i in range(len(rep)))
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = conv.inference_output_type = {"int8": tf.int8, "uint8": tf.uint8}[io]
    return bytes(conv.convert())


def _run(content: bytes, x: np.ndarray) -> np.ndarray:
    from edgekit.runtime.backends import select_backend

    interp = select_backend().Interpreter(model_content=content)
    interp.allocate_tensors()
    d, o = interp.get_input_details()[0], interp.get_output_details()[0]
    scale, zero = d["quantization"]
    info = np.iinfo(d["dtype"])
    out = []
    for i in range(len(x)):
        q = np.clip(np.round(x[i : i + 1] / scale + zero), info.min, info.max).astype(d["dtype"])
        interp.set_tensor(d["index"], q)
        interp.invoke()
        out.append(interp.get_tensor(o["index"]).copy())
    return np.concatenate(out)


def test_int8_targets_differing_only_in_io_type_share_one_calibration_and_match_a_plain_conversion(small):
    from edgekit._tf import tf
    from edgekit.compile.convert import ConversionCache
    from edgekit.profiles import get_target
    from edgekit.tflite_graph import read_graph

    model, rep, x = small
    cache = ConversionCache()
    cpu = cache.convert(model, get_target("cpu"), rep)
    tpu = cache.convert(model, get_target("edgetpu"), rep.copy())  # same samples, another array: still one calibration
    assert cache.stats["calibrations"] == 1 and cache.stats["conversions"] == 2
    assert cache.convert(model, get_target("cpu"), rep) is cpu and cache.stats["reused"] == 1
    for got, io in ((cpu, "int8"), (tpu, "uint8")):
        want = _plain(tf(), model, rep, io)
        g, w = read_graph(got.content), read_graph(want)
        assert [op.name for op in g.ops] == [op.name for op in w.ops]
        assert [(t.dtype, t.shape) for t in g.tensors] == [(t.dtype, t.shape) for t in w.tensors]
        assert np.array_equal(_run(got.content, x), _run(want, x))  # bit-identical outputs
        assert got.calibration_samples == len(rep)


def test_a_float_fallback_conversion_reuses_the_calibration_and_other_samples_recalibrate(small):
    from edgekit.compile.convert import ConversionCache
    from edgekit.profiles import get_target

    model, rep, _ = small
    cache = ConversionCache()
    plain = cache.convert(model, get_target("cpu"), rep)
    kept = cache.convert(model, get_target("cpu"), rep, float_fallback_layers=["c1"])
    assert cache.stats["calibrations"] == 1 and kept.float_fallback_layers == ("c1",) and kept.content != plain.content
    cache.convert(model, get_target("cpu"), rep[:20])  # other samples: another calibration
    assert cache.stats["calibrations"] == 2
    gpu = cache.convert(model, get_target("gpu"))  # fp16 needs no samples
    assert gpu.calibration_samples == 0 and cache.stats["conversions"] == 4


def test_conversion_freezes_the_function_and_a_refused_graph_is_not_converted_twice(tf_keras):
    """The frozen-function path is the one used; an op MLIR refuses fails once, not again through a SavedModel."""
    from edgekit._tf import tf
    from edgekit.compile import convert as cv
    from edgekit.errors import TargetError
    from edgekit.profiles import get_target

    L = tf_keras.layers
    bad = tf_keras.Sequential([tf_keras.Input((8, 8, 1)), L.Flatten(), L.Dense(4), L.Lambda(lambda t: tf().math.erf(t), name="erf")])
    made = []
    real = cv.concrete_converter

    def record(tfm, concrete, model):
        made.append(real(tfm, concrete, model))
        return made[-1]

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(cv, "concrete_converter", record)
        with pytest.raises(TargetError, match="Erf"):
            cv.convert_model(bad, get_target("cpu-fp32"))
    (converter,) = made
    # Still on the frozen path: run_converter did not switch to TF's SavedModel lowering for a second try.
    assert converter.experimental_lower_to_saved_model is False


def test_layer_error_report_equals_tfs_own_debugger_and_shares_the_calibration(small):
    """layer_errors quantizes the cache's calibration: the same numbers as QuantizationDebugger(converter=...), one calibration."""
    import csv
    import io

    from edgekit._tf import tf
    from edgekit.compile.convert import ConversionCache
    from edgekit.compress.calibrate import layer_errors
    from edgekit.profiles import get_target

    model, rep, _ = small
    cache = ConversionCache()
    ours = layer_errors(model, rep, conversions=cache, debug_samples=len(rep))
    assert cache.stats["calibrations"] == 1
    cache.convert(model, get_target("cpu"), rep)  # the int8 artifact of the same model: no second calibration
    assert cache.stats["calibrations"] == 1 and cache.stats["conversions"] == 1

    tfm = tf()
    spec = tfm.TensorSpec([1, *model.input_shape[1:]], tfm.float32)
    fn = tfm.function(lambda x: model(x, training=False), input_signature=[spec])
    conv = tfm.lite.TFLiteConverter.from_concrete_functions([fn.get_concrete_function()], model)
    conv.optimizations = [tfm.lite.Optimize.DEFAULT]
    conv.representative_dataset = lambda: ([rep[i : i + 1]] for i in range(len(rep)))
    debugger = tfm.lite.experimental.QuantizationDebugger(converter=conv, debug_dataset=conv.representative_dataset)
    debugger.run()
    buf = io.StringIO()
    debugger.layer_statistics_dump(buf)
    theirs = {(r["op_name"], float(r["scale"])): float(r["mean_squared_error"]) for r in csv.DictReader(io.StringIO(buf.getvalue()))}
    assert len(theirs) == len(ours) >= 3
    mine = sorted((e.op, round(e.scale, 9), round((e.rmse_over_scale * e.scale) ** 2, 9)) for e in ours)
    want = sorted((op, round(scale, 9), round(mse, 9)) for (op, scale), mse in theirs.items())
    assert mine == want
