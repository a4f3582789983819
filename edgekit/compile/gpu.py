"""Which ops of a ``.tflite`` the LiteRT GPU delegate can run, and how much of the graph that is.

TensorFlow 2.21's ``tf.lite.experimental.Analyzer.analyze(...,
gpu_compatibility=True)`` (and the copy in the LiteRT wheel) prints "Your
model looks compatible with GPU delegate" even for REVERSE_V2 or a 2-D
STRIDED_SLICE, which the delegate rejects: its GPU check is not wired up in
those builds. So this module carries the rules itself, transcribed from
``tensorflow/lite/tools/versioning/gpu_compatibility.cc``
(``CheckGpuDelegateCompatibility``): the ops the delegate knows and the main
conditions on each. An op missing from ``GPU_OPS`` is "Not supported op".

The delegate then takes contiguous runs of supported ops; with its default
``max_delegated_partitions = 1`` only the largest run goes to the GPU, the rest
runs on the CPU with copies in between. We report that partition's share of
ops and MACs.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from edgekit.compile.report import CompatReport, OpPlacement
from edgekit.tflite_graph import Graph, Op, read_graph

SOURCE = "tensorflow/lite/tools/versioning/gpu_compatibility.cc (CheckGpuDelegateCompatibility)"
MAX_DELEGATED_PARTITIONS = 1  # the delegate's default

# schema ActivationFunctionType: NONE, RELU, RELU_N1_TO_1, RELU6, TANH, SIGN_BIT
_SUPPORTED_ACTIVATIONS = {0, 1, 2, 3, 4}

Check = Callable[[Graph, Op, "set[int]"], "str | None"]  # consts: see _constants


def _constants(g: Graph) -> set[int]:
    """Constant tensors, counting DEQUANTIZE outputs of fp16 constants as constants.

    The delegate's FP16GraphPartitionHelper folds those DEQUANTIZE ops into
    their fp16 weights, so an fp16-weight Conv/FC sees constant weights.
    """
    consts = {t.index for t in g.tensors if t.is_const}
    for op in g.ops:
        if op.name == "DEQUANTIZE" and op.inputs and op.inputs[0] in consts and g.tensors[op.inputs[0]].dtype == "float16":
            consts.update(op.outputs)
    return consts


def _runtime_inputs(op: Op, consts: set[int]) -> list[int]:
    return [i for i in op.inputs if i >= 0 and i not in consts]


def _activation(g: Graph, op: Op, consts: set[int]) -> str | None:
    act = op.options.get("fusedActivationFunction", 0)
    return None if act in _SUPPORTED_ACTIVATIONS else f"fused activation {act} is not supported"


def _conv(g: Graph, op: Op, consts: set[int]) -> str | None:
    o = op.options
    if min(o.get("strideH", 1), o.get("strideW", 1), o.get("dilationHFactor", 1), o.get("dilationWFactor", 1)) < 1:
        return "strides and dilation must be >= 1"
    return _activation(g, op, consts)


def _pool(g: Graph, op: Op, consts: set[int]) -> str | None:
    o = op.options
    if min(o.get("filterHeight", 1), o.get("filterWidth", 1), o.get("strideH", 1), o.get("strideW", 1)) < 1:
        return "kernel and strides must be >= 1"
    return _activation(g, op, consts)


def _two_inputs(g: Graph, op: Op, consts: set[int]) -> str | None:
    if len([i for i in op.inputs if i >= 0]) != 2:
        return f"{op.name} requires two input tensors"
    a, b = (g.tensors[i].shape for i in op.inputs[:2])
    try:
        np.broadcast_shapes(a, b)
    except ValueError:
        return f"inputs {list(a)} and {list(b)} do not broadcast"
    return _activation(g, op, consts)


def _fully_connected(g: Graph, op: Op, consts: set[int]) -> str | None:
    if op.options.get("weightsFormat", 0) != 0:
        return "only the default weights format is supported"
    if len(_runtime_inputs(op, consts)) > 2:
        return "more than 2 runtime inputs"
    if op.inputs[0] in consts:
        return "constant input is not supported"
    if op.options.get("keepNumDims") and len(g.tensors[op.inputs[0]].shape) != len(g.tensors[op.outputs[0]].shape):
        return "keep_num_dims with a rank change is not supported"
    return None


def _softmax(g: Graph, op: Op, consts: set[int]) -> str | None:
    return None if op.options.get("beta", 1.0) == 1.0 else "beta != 1 is not supported"


def _rank_3_or_4(g: Graph, op: Op, consts: set[int]) -> str | None:
    rank = len(g.tensors[op.inputs[0]].shape)
    return None if rank in (3, 4) else f"{op.name} supports 3-D or 4-D tensors only, got {rank}-D"


def _strided_slice(g: Graph, op: Op, consts: set[int]) -> str | None:
    o = op.options
    for mask in ("ellipsisMask", "newAxisMask", "shrinkAxisMask"):
        if o.get(mask, 0):
            return f"{mask} is not supported"
    return _rank_3_or_4(g, op, consts)


def _const_axes(g: Graph, op: Op, consts: set[int]) -> str | None:
    if len(op.inputs) < 2 or op.inputs[1] not in consts:
        return "axes must be a constant"
    return None


def _pad(g: Graph, op: Op, consts: set[int]) -> str | None:
    if op.name == "MIRROR_PAD" and op.options.get("mode", 0) != 0:
        return "only REFLECT mirror padding is supported"
    if len(op.inputs) < 2 or op.inputs[1] not in consts:
        return "paddings must be a constant"
    shape = g.tensors[op.inputs[1]].shape
    if len(shape) != 2 or shape[0] not in (3, 4) or shape[1] != 2:
        return f"paddings must be 4x2 or 3x2, got {list(shape)}"
    return None


def _cast(g: Graph, op: Op, consts: set[int]) -> str | None:
    src, dst = g.tensors[op.inputs[0]].dtype, g.tensors[op.outputs[0]].dtype
    ok = (
        (src == "bool" and dst in ("float16", "float32"))
        or (src in ("float16", "float32") and dst == "bool")
        or (src in ("float32", "int32") and dst in ("float32", "int32"))
    )
    return None if ok else f"cast {src} -> {dst} is not supported"


def _dequantize(g: Graph, op: Op, consts: set[int]) -> str | None:
    return "int16 dequantization is not supported" if g.tensors[op.inputs[0]].dtype == "int16" else None


def _block_size(g: Graph, op: Op, consts: set[int]) -> str | None:
    return None if op.options.get("blockSize", 2) > 1 else "block_size must be > 1"


def _gather(g: Graph, op: Op, consts: set[int]) -> str | None:
    data, idx = g.tensors[op.inputs[0]], g.tensors[op.inputs[1]]
    if data.dtype == "int32":
        return "int32 input is not supported"
    if len(idx.shape) != 1 or idx.dtype != "int32":
        return "only 1-D int32 indices are supported"
    return None


def _add_n(g: Graph, op: Op, consts: set[int]) -> str | None:
    return None if len(op.inputs) == 2 else "ADD_N supports only 2 inputs"


_OK: Check | None = None

# op -> extra check (None: supported whenever the op is present)
GPU_OPS: dict[str, Check | None] = {
    "ADD": _two_inputs,
    "ADD_N": _add_n,
    "AVERAGE_POOL_2D": _pool,
    "BATCH_MATMUL": _OK,
    "CAST": _cast,
    "CONCATENATION": _OK,
    "CONV_2D": _conv,
    "CUMSUM": _OK,
    "DENSIFY": _OK,
    "DEPTHWISE_CONV_2D": _conv,
    "DEPTH_TO_SPACE": _block_size,
    "DEQUANTIZE": _dequantize,
    "FULLY_CONNECTED": _fully_connected,
    "GATHER": _gather,
    "HARD_SWISH": _OK,
    "LSTM": _OK,
    "MAX_POOL_2D": _pool,
    "MEAN": _const_axes,
    "MUL": _two_inputs,
    "PACK": _OK,
    "ONE_HOT": _OK,
    "QUANTIZE": _OK,
    "RELU_N1_TO_1": _OK,
    "PRELU": _OK,
    "RESHAPE": _OK,
    "SELECT": _OK,
    "SELECT_V2": _OK,
    "SLICE": _rank_3_or_4,
    "SOFTMAX": _softmax,
    "SPACE_TO_DEPTH": _block_size,
    "SPLIT": _OK,
    "SPLIT_V": _OK,
    "STRIDED_SLICE": _strided_slice,
    "TILE": _OK,
    "TRANSPOSE": _OK,
    "TRANSPOSE_CONV": _OK,
    "RESIZE_BILINEAR": _OK,
    "RESIZE_NEAREST_NEIGHBOR": _OK,
    "RELU": _OK,
    "RELU6": _OK,
    "LEAKY_RELU": _OK,
    "REDUCE_MAX": _const_axes,
    "REDUCE_MIN": _const_axes,
    "REDUCE_PROD": _const_axes,
    "SUM": _const_axes,
    "PAD": _pad,
    "PADV2": _pad,
    "MIRROR_PAD": _pad,
    # one-input elementwise
    **{n: _OK for n in ("ABS", "CEIL", "COS", "ELU", "EXP", "FLOOR", "GELU", "LOG", "LOGISTIC", "NEG", "RSQRT",
                        "SIGN", "SIN", "SQRT", "SQUARE", "TANH")},
    # two-input elementwise
    **{n: _OK for n in ("ATAN2", "DIV", "EQUAL", "FLOOR_DIV", "FLOOR_MOD", "GREATER", "GREATER_EQUAL", "LOGICAL_AND",
                        "LESS", "LESS_EQUAL", "MAXIMUM", "MINIMUM", "NOT_EQUAL", "POW", "SQUARED_DIFFERENCE", "SUB")},
}


def _problem(g: Graph, op: Op, consts: set[int]) -> str | None:
    if op.name not in GPU_OPS:
        return f"Not supported op {op.name}"
    check = GPU_OPS[op.name]
    return check(g, op, consts) if check is not None else None


def check_gpu(model: str | bytes | Graph, *, target: str = "gpu") -> CompatReport:
    """Predict which ops the GPU delegate takes (path, bytes or :class:`Graph`).

    Example::

        report = check_gpu("bundle/model_gpu.tflite")
        print(report.headline())
    """
    g = model if isinstance(model, Graph) else read_graph(model)
    consts = _constants(g)
    problems = [_problem(g, op, consts) for op in g.ops]
    runs: list[list[int]] = []
    for op, why in zip(g.ops, problems):
        if why is None:
            if runs and runs[-1][-1] == op.index - 1:
                runs[-1].append(op.index)
            else:
                runs.append([op.index])
    chosen = sorted(runs, key=len, reverse=True)[:MAX_DELEGATED_PARTITIONS]
    on = {i for run in chosen for i in run}
    placements = []
    for op, why in zip(g.ops, problems):
        if op.index in on:
            placements.append(OpPlacement(op.index, op.name, True, None, op.macs))
        else:
            placements.append(OpPlacement(op.index, op.name, False, why or "supported, but outside the delegated partition", op.macs))
    notes = [
        "the numeric check and accuracy come from LiteRT on the CPU; the GPU computes in fp16 and may differ slightly more."
    ]
    if len(runs) > MAX_DELEGATED_PARTITIONS:
        notes.append(
            f"the supported ops form {len(runs)} partitions; with the delegate's default max_delegated_partitions="
            f"{MAX_DELEGATED_PARTITIONS} only the largest ({len(chosen[0])} ops) runs on the GPU."
        )
    return CompatReport(
        target=target,
        analysis="gpu",
        accelerator="GPU delegate",
        method=f"op rules transcribed from {SOURCE}; TF 2.21's Analyzer GPU check is not functional (passes unsupported ops)",
        placements=placements,
        notes=notes,
        extra={"partitions": [[g.ops[i].index for i in (run[0], run[-1])] for run in runs]},
    )
