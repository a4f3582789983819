"""Predict how ``edgetpu_compiler`` will map a ``.tflite`` onto the Edge TPU.

Reads the flatbuffer (no TensorFlow) and checks it against Coral's documented
model requirements ("TensorFlow models on the Edge TPU",
https://coral.ai/docs/edgetpu/models-intro/):

* every tensor 8-bit quantized (int8/uint8; int32 only for biases and shape
  constants);
* static tensor sizes (the compiler rejects a -1 in any shape signature);
* tensors of rank > 3 may be larger than 1 only in their 3 innermost
  dimensions (so batch is 1);
* only the ops in :data:`EDGETPU_OPS`, each within its documented limits.

The compiler builds ONE Edge TPU subgraph: after any leading ops it cannot
map (e.g. a float->int8 QUANTIZE), it maps ops in order until the first one it
cannot map; that op and everything after it run on the CPU ("More than one
subgraph is not supported"). We report that split point and the share of ops
and MACs left on the TPU.

To teach the checker a new op or limit, add a row to ``EDGETPU_OPS``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from edgekit.compile.report import CompatReport, OpPlacement
from edgekit.tflite_graph import Graph, Op, read_graph

DOCS = "https://coral.ai/docs/edgetpu/models-intro/#supported-operations"
# Phrases the compiler itself prints, so our report reads like its log.
NOT_SUPPORTED = "Operation not supported"
BAD_DTYPE = "Operation is working on an unsupported data type"
AFTER_SPLIT = "More than one subgraph is not supported"

_INT8 = ("int8", "uint8")
_CONST_OK = ("int8", "uint8", "int32", "int64")  # weights, biases, shapes/axes


@dataclass(frozen=True)
class EdgeTpuOp:
    runtime: int  # minimum Edge TPU runtime version ("All" in the docs = 10)
    limits: str  # the documented limitation, verbatim in spirit
    check: Callable[[Graph, Op], str | None] | None = None  # returns why it cannot map, or None


def _fused_none(g: Graph, op: Op) -> str | None:
    if op.options.get("fusedActivationFunction", 0) != 0:
        return "fused activation function is not supported"
    return None


def _same_dilation(g: Graph, op: Op) -> str | None:
    if op.options.get("dilationHFactor", 1) != op.options.get("dilationWFactor", 1):
        return "dilation must be the same in x and y"
    return None


def _const(g: Graph, i: int) -> np.ndarray | None:
    t = g.tensor(i)
    return t.values() if t is not None and t.is_const else None


def _concat(g: Graph, op: Op) -> str | None:
    why = _fused_none(g, op)
    if why:
        return why
    consts = [i for i in op.inputs if (t := g.tensor(i)) is not None and t.is_const]
    if consts:
        vals = _const(g, consts[0])
        if len(op.inputs) != 2 or vals is None or np.any(vals != _zero_point(g, consts[0])):
            return "a constant input is allowed only as one of 2 inputs and all zeros (a zero-padding concat)"
    return None


def _zero_point(g: Graph, i: int) -> int:
    t = g.tensor(i)
    return t.zero_point[0] if t is not None and t.zero_point else 0


def _fully_connected(g: Graph, op: Op) -> str | None:
    if op.options.get("weightsFormat", 0) != 0:
        return "only the default fully-connected weights format is supported"
    out = g.tensor(op.outputs[0])
    if out is not None and sum(d > 1 for d in out.shape) > 1:
        return f"output tensor must be one-dimensional, got shape {list(out.shape)}"
    return None


def _axes(g: Graph, op: Op, pos: int) -> list[int] | None:
    vals = _const(g, op.inputs[pos]) if len(op.inputs) > pos else None
    return None if vals is None else [int(v) for v in np.ravel(vals)]


def _no_batch_axis(pos: int) -> Callable[[Graph, Op], str | None]:
    def check(g: Graph, op: Op) -> str | None:
        axes = _axes(g, op, pos)
        rank = len(g.tensors[op.inputs[0 if pos else 1]].shape)
        if axes is None:
            return "the axis must be a compile-time constant"
        if any(a % max(rank, 1) == 0 for a in axes):
            return "cannot operate on the batch dimension"
        return None

    return check


def _pad(g: Graph, op: Op) -> str | None:
    pads = _const(g, op.inputs[1]) if len(op.inputs) > 1 else None
    if pads is None:
        return "paddings must be a compile-time constant"
    if np.any(np.asarray(pads).reshape(-1, 2)[0] != 0):
        return "no padding in the batch dimension"
    return None


def _pack(g: Graph, op: Op) -> str | None:
    if op.options.get("axis", 0) == 0:
        return "no packing in the batch dimension"
    return None


def _softmax(g: Graph, op: Op) -> str | None:
    t = g.tensor(op.inputs[0])
    if t is None:
        return None
    if sum(d > 1 for d in t.shape) > 1:
        return f"input must be a 1-D tensor, got shape {list(t.shape)}"
    if int(np.prod(t.shape)) > 16000:
        return f"input has {int(np.prod(t.shape))} elements, the limit is 16,000"
    return None


def _strided_slice(g: Graph, op: Op) -> str | None:
    strides = _const(g, op.inputs[3]) if len(op.inputs) > 3 else None
    if strides is None or np.any(np.asarray(strides) != 1):
        return "all strides must be 1 (effectively a Slice)"
    if op.options.get("ellipsisMask", 0) or op.options.get("newAxisMask", 0):
        return "ellipsis_mask and new_axis_mask must be 0"
    return None


def _prelu(g: Graph, op: Op) -> str | None:
    t = g.tensor(op.inputs[1]) if len(op.inputs) > 1 else None
    if t is None or not t.is_const:
        return "alpha must be constant"
    return None


EDGETPU_OPS: dict[str, EdgeTpuOp] = {
    "ADD": EdgeTpuOp(10, ""),
    "AVERAGE_POOL_2D": EdgeTpuOp(10, "No fused activation function.", _fused_none),
    "CONCATENATION": EdgeTpuOp(
        10,
        "No fused activation function. If any input is a compile-time constant, there must be only 2 inputs "
        "and the constant must be all zeroes (zero padding).",
        _concat,
    ),
    "CONV_2D": EdgeTpuOp(10, "Must use the same dilation in x and y dimensions.", _same_dilation),
    "DEPTHWISE_CONV_2D": EdgeTpuOp(10, "Must use the same dilation in x and y dimensions.", _same_dilation),
    "EXPAND_DIMS": EdgeTpuOp(13, ""),
    "FULLY_CONNECTED": EdgeTpuOp(
        10, "Only the default format is supported for weights. Output tensor is one-dimensional.", _fully_connected
    ),
    "L2_NORMALIZATION": EdgeTpuOp(10, ""),
    "LOGISTIC": EdgeTpuOp(10, ""),
    "LSTM": EdgeTpuOp(14, "Unidirectional LSTM only."),
    "UNIDIRECTIONAL_SEQUENCE_LSTM": EdgeTpuOp(14, "Unidirectional LSTM only."),
    "MAXIMUM": EdgeTpuOp(10, ""),
    "MAX_POOL_2D": EdgeTpuOp(10, "No fused activation function.", _fused_none),
    "MEAN": EdgeTpuOp(10, "No reduction in the batch dimension.", _no_batch_axis(1)),
    "MINIMUM": EdgeTpuOp(10, ""),
    "MUL": EdgeTpuOp(10, ""),
    "PACK": EdgeTpuOp(10, "No packing in the batch dimension.", _pack),
    "PAD": EdgeTpuOp(10, "No padding in the batch dimension.", _pad),
    "PRELU": EdgeTpuOp(13, "Alpha needs to be constant.", _prelu),
    "QUANTIZE": EdgeTpuOp(13, "8-bit to 8-bit requantization only (float input is an unsupported data type)."),
    "REDUCE_MAX": EdgeTpuOp(14, "Cannot operate on the batch dimension.", _no_batch_axis(1)),
    "REDUCE_MIN": EdgeTpuOp(14, "Cannot operate on the batch dimension.", _no_batch_axis(1)),
    "RELU": EdgeTpuOp(10, ""),
    "RELU6": EdgeTpuOp(10, ""),
    "RELU_N1_TO_1": EdgeTpuOp(10, ""),
    "RESHAPE": EdgeTpuOp(10, "Certain reshapes might not be mapped for large tensor sizes."),
    "RESIZE_BILINEAR": EdgeTpuOp(
        10, "Input/output is a 3-dimensional tensor; depending on sizes it may not be mapped (precision)."
    ),
    "RESIZE_NEAREST_NEIGHBOR": EdgeTpuOp(
        10, "Input/output is a 3-dimensional tensor; depending on sizes it may not be mapped (precision)."
    ),
    "RSQRT": EdgeTpuOp(14, ""),
    "SLICE": EdgeTpuOp(10, ""),
    "SOFTMAX": EdgeTpuOp(10, "Supports only a 1-D input tensor with at most 16,000 elements.", _softmax),
    "SPACE_TO_DEPTH": EdgeTpuOp(10, ""),
    "SPLIT": EdgeTpuOp(10, "No splitting in the batch dimension.", _no_batch_axis(0)),
    "SQUARED_DIFFERENCE": EdgeTpuOp(14, ""),
    "SQUEEZE": EdgeTpuOp(10, ""),
    "STRIDED_SLICE": EdgeTpuOp(
        10, "All strides must be 1 (effectively a Slice), with ellipsis-axis-mask and new-axis-mask 0.", _strided_slice
    ),
    "SUB": EdgeTpuOp(10, ""),
    "SUM": EdgeTpuOp(13, "Cannot operate on the batch dimension.", _no_batch_axis(1)),
    "TANH": EdgeTpuOp(10, ""),
    "TRANSPOSE": EdgeTpuOp(14, ""),
    "TRANSPOSE_CONV": EdgeTpuOp(13, ""),
}

# Ops that may map but sometimes do not, for reasons the docs leave open.
_MAYBE = ("RESHAPE", "RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR")


def _op_problem(g: Graph, op: Op) -> str | None:
    """Why ``op`` cannot run on the Edge TPU, in the compiler's words where it has them; None if it can.

    Data types first: the compiler reports a DEQUANTIZE (float output) as an
    unsupported data type, not as an unknown op.
    """
    for i in op.inputs:
        t = g.tensor(i)
        if t is None:
            continue
        allowed = _CONST_OK if t.is_const else _INT8
        if t.dtype not in allowed:
            return f"{BAD_DTYPE}: input {t.name!r} is {t.dtype}"
    for i in op.outputs:
        t = g.tensor(i)
        if t is not None and t.dtype not in _INT8:
            return f"{BAD_DTYPE}: output {t.name!r} is {t.dtype}"
    rule = EDGETPU_OPS.get(op.name)
    if rule is None:
        return f"{NOT_SUPPORTED}: {op.name} is not in the Edge TPU op list"
    for i in (*op.inputs, *op.outputs):
        t = g.tensor(i)
        if t is not None and not t.is_const and len(t.shape) > 3 and any(d > 1 for d in t.shape[:-3]):
            return f"tensor {t.name!r} has shape {list(t.shape)}: only the 3 innermost dimensions may exceed 1 (batch must be 1)"
    if rule.check is not None:
        why = rule.check(g, op)
        if why:
            return f"{op.name}: {why}"
    return None


def _requirements(g: Graph) -> list[dict]:
    activations = [t for t in g.tensors if not t.is_const]
    non8 = sorted({t.dtype for t in activations if t.dtype not in _INT8})
    dynamic = [t.name for t in g.tensors if t.dynamic]
    io = [g.tensors[i] for i in (*g.inputs, *g.outputs)]
    batch_ok = all(t.shape and t.shape[0] == 1 for t in io)
    return [
        {
            "name": "full int8",
            "ok": not non8,
            "detail": "every activation tensor is int8/uint8" if not non8 else f"activation tensors of type {', '.join(non8)} present",
        },
        {
            "name": "static shapes",
            "ok": not dynamic,
            "detail": "no dynamic dimension" if not dynamic else f"{len(dynamic)} tensor(s) with a dynamic (-1) dimension, e.g. {dynamic[0]!r}",
        },
        {
            "name": "batch 1",
            "ok": batch_ok,
            "detail": "inputs and outputs have batch 1" if batch_ok else f"input/output shapes {[list(t.shape) for t in io]}",
        },
        {
            "name": "single subgraph",
            "ok": g.subgraphs == 1,
            "detail": "one subgraph" if g.subgraphs == 1 else f"{g.subgraphs} subgraphs (control flow is not supported)",
        },
    ]


def _code(op: Op, why: str | None) -> str:
    """The placement code of an op the Edge TPU does not take."""
    return "unsupported_op" if op.name not in EDGETPU_OPS else "unsupported_params"


def check_edgetpu(model: str | bytes | Graph, *, target: str = "edgetpu") -> CompatReport:
    """Predict the Edge TPU mapping of a ``.tflite`` (path, bytes, or a read :class:`Graph`).

    Returns:
        A :class:`CompatReport`; ``split`` names the op where the Edge TPU part
        ends (None when it runs to the end), ``requirements`` the model-level checks.

    Example::

        report = check_edgetpu("bundle/model_edgetpu.tflite")
        print(report.headline(), report.split)
    """
    g = model if isinstance(model, Graph) else read_graph(model)
    reqs = _requirements(g)
    problems = [_op_problem(g, op) for op in g.ops]
    static = next(r for r in reqs if r["name"] == "static shapes")["ok"]
    notes: list[str] = []
    extra: dict = {}
    placements: list[OpPlacement] = []
    split = None
    if not static:
        # The compiler refuses the whole model, so nothing maps.
        for op, why in zip(g.ops, problems):
            placements.append(OpPlacement(op.index, op.name, False, why or "model has dynamic tensor shapes", op.macs,
                                          code=_code(op, why) if why else "tensor_type_or_shape"))
        if g.ops:
            split = {"index": 0, "op": g.ops[0].name, "reason": "dynamic tensor shapes: the compiler rejects the model"}
    else:
        start = next((i for i, why in enumerate(problems) if why is None), len(problems))
        end = next((i for i in range(start, len(problems)) if problems[i] is not None), len(problems))
        for op, why in zip(g.ops, problems):
            if op.index < start:
                placements.append(OpPlacement(op.index, op.name, False, why, op.macs, code=_code(op, why)))
            elif op.index < end:
                placements.append(OpPlacement(op.index, op.name, True, None, op.macs))
            elif op.index == end:
                placements.append(OpPlacement(op.index, op.name, False, why, op.macs, code=_code(op, why)))
            else:
                placements.append(OpPlacement(op.index, op.name, False, why or AFTER_SPLIT, op.macs,
                                              code=_code(op, why) if why else "after_split"))
        if end < len(g.ops) and start < len(g.ops):
            split = {"index": end, "op": g.ops[end].name, "reason": problems[end]}
        if start == len(g.ops):
            notes.append("no op can map to the Edge TPU: the whole model would run on the CPU.")
        elif start > 0:
            notes.append(f"the first {start} op(s) run on the CPU before the Edge TPU part starts.")
        mapped = {p.op for p in placements if p.on_accelerator}
        for name in sorted(mapped & set(_MAYBE)):
            notes.append(f"{name}: {EDGETPU_OPS[name].limits} Check the compiler's log.")
        extra["min_runtime"] = max((EDGETPU_OPS[n].runtime for n in mapped), default=10)
    if reqs[0]["ok"]:  # full int8
        notes.append(
            "accuracy and the numeric check come from running this uncompiled int8 model on the CPU; "
            "the Edge TPU runs the same int8 arithmetic."
        )
    return CompatReport(
        target=target,
        analysis="edgetpu",
        accelerator="Edge TPU",
        method=f"rules from Coral's documented model requirements and op list ({DOCS}), applied to the flatbuffer",
        placements=placements,
        requirements=reqs,
        notes=notes,
        split=split,
        extra=extra,
    )
