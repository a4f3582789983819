"""The GPU delegate model (edgekit/compile/gpu.py) against the delegate's own rules.

Each rule has a model the delegate must reject, built here with TensorFlow and
converted like a gpu target (float32 I/O, fp16 weights where it matters), plus the
accepted twin where one exists. Partitioning follows data dependency
(graph_info.cc), not op order, and fp16 weight DEQUANTIZE ops are not counted.
"""
from __future__ import annotations

import numpy as np
import pytest

pytestmark = [pytest.mark.slow, pytest.mark.build]


def _convert(fn, shapes, *, fp16=False):
    from edgekit._tf import quiet_native_logs, tf

    tfm = tf()
    specs = [tfm.TensorSpec(s, tfm.float32) for s in shapes]
    concrete = tfm.function(fn, input_signature=specs).get_concrete_function()
    conv = tfm.lite.TFLiteConverter.from_concrete_functions([concrete])
    if fp16:
        conv.optimizations = [tfm.lite.Optimize.DEFAULT]
        conv.target_spec.supported_types = [tfm.float16]
    with quiet_native_logs():
        return bytes(conv.convert())


def _report(content):
    from edgekit.compile.gpu import check_gpu

    return check_gpu(content)


def _placement(report, op):
    return next(p for p in report.placements if p.op == op)


def _w(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32) * 0.1


def test_fp16_weight_dequantize_ops_are_not_counted_and_the_model_runs_whole_on_the_gpu():
    from edgekit._tf import tf
    from edgekit.tflite_graph import read_graph

    tfm = tf()
    k1, k2, wd = _w(3, 3, 3, 8), _w(3, 3, 8, 8, seed=1), _w(8, 4, seed=2)

    def f(x):
        y = tfm.nn.relu(tfm.nn.conv2d(x, k1, 1, "SAME"))
        y = tfm.nn.relu(tfm.nn.conv2d(y, k2, 1, "SAME"))
        return tfm.nn.softmax(tfm.reduce_mean(y, [1, 2]) @ wd)

    content = _convert(f, [(1, 16, 16, 3)], fp16=True)
    g = read_graph(content)
    dequant = [op for op in g.ops if op.name == "DEQUANTIZE"]
    assert len(dequant) >= 3  # the fp16 weights
    r = _report(content)
    assert r.ops_total == len(g.ops) - len(dequant) and "DEQUANTIZE" not in {p.op for p in r.placements}
    assert r.status == "full" and r.fraction_macs == 1.0
    assert sorted(r.extra["fp16_dequantize_ops"]) == sorted(op.index for op in dequant)


def test_partitions_follow_data_dependency_not_op_order():
    """A side branch with an op the GPU cannot run: everything that does not depend on it is one partition."""
    from edgekit._tf import tf
    from edgekit.compile.gpu import partition
    from edgekit.tflite_graph import read_graph

    tfm = tf()
    ks = [_w(3, 3, 8 if i else 3, 8, seed=i) for i in range(5)]

    def f(x):
        y = tfm.nn.relu(tfm.nn.conv2d(x, ks[0], 1, "SAME"))
        side = tfm.reverse(y, [2])  # REVERSE_V2: not a GPU op
        a = y
        for k in ks[1:]:
            a = tfm.nn.relu(tfm.nn.conv2d(a, k, 1, "SAME"))
        return tfm.reduce_mean(a + side, [1, 2])

    content = _convert(f, [(1, 16, 16, 3)])
    g = read_graph(content)
    r = _report(content)
    rev = next(op.index for op in g.ops if op.name == "REVERSE_V2")
    assert _placement(r, "REVERSE_V2").code == "unsupported_op"
    downstream = {rev}
    for op in g.ops:  # ops are in a topological order
        if any(g.producers().get(i) in downstream for i in op.inputs if i >= 0):
            downstream.add(op.index)
    independent = {op.index for op in g.ops} - downstream
    on = {p.index for p in r.placements if p.on_accelerator}
    assert on == independent and len(independent) > len(downstream) - 1  # the 5 convs + relus, not ADD/MEAN
    assert {p.code for p in r.placements if p.index in downstream - {rev}} == {"outside_partition"}
    # the same graph with REVERSE_V2 listed right after its input's producer (another valid execution order,
    # which splits the independent ops into two runs of the op list) partitions the same way
    from dataclasses import replace

    first = [op for op in g.ops if op.index <= g.producers()[g.ops[rev].inputs[0]]]
    reordered = [*first, g.ops[rev], *(op for op in g.ops if op not in first and op.index != rev)]
    subsets = partition(replace(g, ops=tuple(reordered)), {p.index for p in r.placements if p.code != "unsupported_op"})
    delegated = [set(m) for kind, m in subsets if kind]
    assert max(delegated, key=len) == independent


def test_five_dimensional_tensors_are_rejected_by_the_delegates_tensor_check():
    from edgekit._tf import tf

    tfm = tf()
    bias = _w(1, 2, 2, 4, 8)

    def f(x):
        return tfm.reshape(tfm.reshape(x, (1, 2, 2, 4, 8)) + bias, (1, 4, 4, 8))

    r = _report(_convert(f, [(1, 4, 4, 8)]))
    add = _placement(r, "ADD")
    assert add.on_accelerator is False and add.code == "tensor_type_or_shape" and "5-D" in add.reason

    def g4(x):  # the same arithmetic in 4-D is taken
        return x + _w(1, 4, 4, 8)

    assert _placement(_report(_convert(g4, [(1, 4, 4, 8)])), "ADD").on_accelerator is True


@pytest.mark.parametrize("channels,ok", [(3, False), (1, True)])
def test_depthwise_with_a_depth_multiplier_needs_one_input_channel(channels, ok):
    from edgekit._tf import tf

    tfm = tf()
    k = _w(3, 3, channels, 2)

    def f(x):
        return tfm.nn.depthwise_conv2d(x, k, [1, 1, 1, 1], "SAME")

    p = _placement(_report(_convert(f, [(1, 8, 8, channels)])), "DEPTHWISE_CONV_2D")
    assert p.on_accelerator is ok
    if not ok:
        assert p.code == "unsupported_params" and "depth_multiplier 2" in p.reason


def test_mul_of_two_inputs_each_smaller_in_some_dimension_is_rejected():
    def outer(a, b):
        return a * b  # (1,8,1,4) x (1,1,8,4): an outer product

    p = _placement(_report(_convert(outer, [(1, 8, 1, 4), (1, 1, 8, 4)])), "MUL")
    assert p.on_accelerator is False and p.code == "unsupported_params" and "not smaller" in p.reason

    def scale(a, b):
        return a * b  # (1,8,8,4) x (1,1,1,4): a broadcast the delegate runs

    assert _placement(_report(_convert(scale, [(1, 8, 8, 4), (1, 1, 1, 4)])), "MUL").on_accelerator is True


def test_add_n_with_three_operands_is_rejected():
    from edgekit._tf import tf

    tfm = tf()

    def f(a, b, c):
        return tfm.math.add_n([a, b, c])

    p = _placement(_report(_convert(f, [(1, 4, 4, 2)] * 3)), "ADD_N")
    assert p.on_accelerator is False and p.code == "unsupported_params"


def test_resize_bilinear_with_align_corners_and_half_pixel_centers_is_rejected():
    """TF refuses to build that op, so the test sets the flag in the flatbuffer itself."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    from edgekit._tf import tf

    tfm = tf()

    def f(x):
        return tfm.compat.v1.image.resize_bilinear(x, (8, 8), align_corners=True)

    content = _convert(f, [(1, 4, 4, 2)])
    assert _placement(_report(content), "RESIZE_BILINEAR").on_accelerator is True
    model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(content, 0))
    op = next(o for o in model.subgraphs[0].operators if isinstance(o.builtinOptions, schema.ResizeBilinearOptionsT))
    op.builtinOptions.halfPixelCenters = True
    b = flatbuffers.Builder(1024)
    b.Finish(model.Pack(b), file_identifier=b"TFL3")
    p = _placement(_report(bytes(b.Output())), "RESIZE_BILINEAR")
    assert p.on_accelerator is False and p.code == "unsupported_params" and "align_corners" in p.reason
