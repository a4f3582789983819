"""Which ops of a ``.tflite`` the LiteRT GPU delegate takes, and how much of the graph that is.

TensorFlow 2.21's ``tf.lite.experimental.Analyzer.analyze(..., gpu_compatibility=True)``
(and the copy in the LiteRT wheel) passes ops the delegate rejects (REVERSE_V2, a
2-D STRIDED_SLICE): its GPU check is not wired up in those builds. So this module
models the delegate itself, from its sources (tensorflow/tensorflow):

* op rules: ``tensorflow/lite/tools/versioning/gpu_compatibility.cc``
  (``CheckGpuDelegateCompatibility``) at commit 057f8c812fb07bc803592c058b8b6e8569b4734f:
  the ops the delegate knows and the conditions on each (operand counts of binary
  ops, MUL's broadcast rule, DEPTHWISE_CONV_2D's ``depth_multiplier != 1 && input
  channels != 1``, RESIZE_BILINEAR's ``align_corners`` with ``half_pixel_centers``).
  An op missing from ``GPU_OPS`` is "Not supported op".
* tensor checks: ``tensorflow/lite/delegates/gpu/common/model_builder.cc``
  (``GetOpsToReplace`` / ``IsAllAllowedTensors``; read at commit
  9a5c30170e25d007fee6f7176d12b42438805d0b): every non-constant input and output
  must be float32/float16 (int8/uint8 with quantized ops allowed, bool and int32
  for the ops that take them). Later upstream versions also refuse any tensor of
  rank >= 5 there ("OP is supported, but tensor type/shape isn't compatible");
  that rule is modelled too (the commit read above predates it).
* fp16 weights: ``tensorflow/lite/delegates/utils.cc`` (``FP16GraphPartitionHelper``)
  at commit 0f563557ee436c3a846cc9a0574d05374e4a9651: a DEQUANTIZE of a constant
  fp16 tensor is *not* a supported node while partitioning; its consumers are
  checked as if they read the fp16 constant directly, and the DEQUANTIZE joins the
  first partition when all its consumers are in it. The report leaves those nodes
  out of its op counts (they are weight casts folded into the GPU kernels).
* partitions: ``tensorflow/lite/graph_info.cc``
  (``PartitionGraphIntoIndependentNodeSubsets``, greedy, as
  ``PreviewDelegatePartitioning`` calls it) at commit
  08df8c40b4376ed012fa3ba03ff3e3068d8d2a94: supported nodes are grouped by data
  dependency, not by position in the op list; with the delegate's default
  ``max_delegated_partitions = 1`` only the largest partition (by node count) runs
  on the GPU. Control edges between stateful ops are not modelled (CNN classifiers
  have none).

To add a rule, add the op to ``GPU_OPS`` with its check, and a test with a model
the delegate must reject.
"""
from __future__ import annotations

from typing import Callable

from edgekit.compile.report import CompatReport, OpPlacement
from edgekit.tflite_graph import Graph, Op, read_graph

SOURCE = (
    "gpu_compatibility.cc@057f8c8 (op rules), model_builder.cc (tensor checks), "
    "delegates/utils.cc@0f56355 (fp16 DEQUANTIZE), graph_info.cc@08df8c4 (partitions)"
)
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


def _fp16_dequantize(g: Graph) -> dict[int, int]:
    """DEQUANTIZE ops of constant fp16 tensors: op index -> the tensor they make (delegates/utils.cc)."""
    return {
        op.index: op.outputs[0]
        for op in g.ops
        if op.name == "DEQUANTIZE" and op.inputs and g.tensors[op.inputs[0]].is_const and g.tensors[op.inputs[0]].dtype == "float16"
    }


def _runtime_inputs(op: Op, consts: set[int]) -> list[int]:
    return [i for i in op.inputs if i >= 0 and i not in consts]


def _const_inputs(op: Op, consts: set[int]) -> list[int]:
    return [i for i in op.inputs if i >= 0 and i in consts]


def _inputs_outputs(op: Op, consts: set[int], runtime: int, const: int | None = None, outputs: int = 1) -> str | None:
    """gpu_compatibility.cc's CheckInputsOutputs / CheckInputsConstsOutputs."""
    got = len(_runtime_inputs(op, consts))
    if got != runtime:
        return f"expected {runtime} runtime input tensor(s), but the op has {got}"
    if const is not None and len(_const_inputs(op, consts)) != const:
        return f"expected {const} constant input tensor(s), but the op has {len(_const_inputs(op, consts))}"
    if len(op.outputs) != outputs:
        return f"expected {outputs} output tensor(s), but the op has {len(op.outputs)}"
    return None


def _activation(g: Graph, op: Op, consts: set[int]) -> str | None:
    act = op.options.get("fusedActivationFunction", 0)
    return None if act in _SUPPORTED_ACTIVATIONS else f"fused activation {act} is not supported"


def _conv(g: Graph, op: Op, consts: set[int]) -> str | None:
    if len(_runtime_inputs(op, consts)) > 2 or len(op.outputs) != 1:
        return "expected 1 or 2 runtime inputs and 1 output"
    o = op.options
    if min(o.get("strideH", 1), o.get("strideW", 1), o.get("dilationHFactor", 1), o.get("dilationWFactor", 1)) < 1:
        return "strides and dilation must be >= 1"
    return _activation(g, op, consts)


def _depthwise(g: Graph, op: Op, consts: set[int]) -> str | None:
    why = _conv(g, op, consts)
    if why:
        return why
    if len(_runtime_inputs(op, consts)) > 2 or len(op.outputs) != 1:
        return "expected 1 or 2 runtime inputs and 1 output"
    inp, flt, out = (g.tensors[i].shape for i in (op.inputs[0], op.inputs[1], op.outputs[0]))
    if len(inp) != 4 or len(flt) != 4 or len(out) != 4:
        return "input, filter and output must be 4-D"
    mult = op.options.get("depthMultiplier", 1)
    if flt[3] != out[3]:
        return "filter.i != output.c"
    if out[3] != inp[3] * mult:
        return "output.c != input.c * depth_multiplier"
    if mult != 1 and inp[3] != 1:
        return f"depth_multiplier {mult} != 1 with {inp[3]} input channels (the delegate needs 1 input channel for that)"
    return None


def _add(g: Graph, op: Op, consts: set[int]) -> str | None:
    if len([i for i in op.inputs if i >= 0]) != 2:
        return "ADD requires two input tensors"
    return _activation(g, op, consts)


def _mul(g: Graph, op: Op, consts: set[int]) -> str | None:
    if len([i for i in op.inputs if i >= 0]) != 2:
        return "MUL requires two input tensors"
    a, b = (g.tensors[i].shape for i in op.inputs[:2])
    # Each input smaller than the other in some dimension is an outer product
    # (e.g. HWC (1,256,1) x (1,1,256)), which the delegate does not implement.
    if len(a) == len(b) and any(x < y for x, y in zip(a, b)) and any(y < x for x, y in zip(a, b)):
        return f"MUL needs one input not smaller than the other in every dimension; got {list(a)} and {list(b)}"
    return _activation(g, op, consts)


def _binary(g: Graph, op: Op, consts: set[int]) -> str | None:
    """Two-argument elementwise ops: 2 runtime inputs, or 1 runtime and 1 constant; one output."""
    if _inputs_outputs(op, consts, 2, 0) and _inputs_outputs(op, consts, 1, 1):
        return f"{op.name} can only handle 1 or 2 operand(s) (2 runtime, or 1 runtime and 1 constant)"
    return _activation(g, op, consts)


def _unary(g: Graph, op: Op, consts: set[int]) -> str | None:
    return _inputs_outputs(op, consts, 1, 0)


def _resize_bilinear(g: Graph, op: Op, consts: set[int]) -> str | None:
    why = _inputs_outputs(op, consts, 1)
    if why:
        return why
    if op.options.get("alignCorners") and op.options.get("halfPixelCenters"):
        return "align_corners must be false when half_pixel_centers is true"
    return None


def _pool(g: Graph, op: Op, consts: set[int]) -> str | None:
    o = op.options
    if min(o.get("filterHeight", 1), o.get("filterWidth", 1), o.get("strideH", 1), o.get("strideW", 1)) < 1:
        return "kernel and strides must be >= 1"
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
    "ADD": _add,
    "ADD_N": _add_n,
    "AVERAGE_POOL_2D": _pool,
    "BATCH_MATMUL": _OK,
    "CAST": _cast,
    "CONCATENATION": _OK,
    "CONV_2D": _conv,
    "CUMSUM": _OK,
    "DENSIFY": _OK,
    "DEPTHWISE_CONV_2D": _depthwise,
    "DEPTH_TO_SPACE": _block_size,
    "DEQUANTIZE": _dequantize,
    "FULLY_CONNECTED": _fully_connected,
    "GATHER": _gather,
    "HARD_SWISH": _OK,
    "LSTM": _OK,
    "MAX_POOL_2D": _pool,
    "MEAN": _const_axes,
    "MUL": _mul,
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
    "RESIZE_BILINEAR": _resize_bilinear,
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
    **{n: _unary for n in ("ABS", "COS", "ELU", "EXP", "FLOOR", "GELU", "LOG", "LOGISTIC", "NEG", "RSQRT",
                           "SIGN", "SIN", "SQRT", "SQUARE", "TANH")},
    # two-input elementwise
    **{n: _binary for n in ("DIV", "EQUAL", "FLOOR_DIV", "FLOOR_MOD", "GREATER", "GREATER_EQUAL", "LOGICAL_AND",
                            "LESS", "LESS_EQUAL", "MAXIMUM", "MINIMUM", "NOT_EQUAL", "POW", "SQUARED_DIFFERENCE", "SUB")},
}


_LOGICAL = {"EQUAL", "GREATER", "GREATER_EQUAL", "LESS", "LESS_EQUAL", "LOGICAL_AND", "NOT_EQUAL"}
_FLOAT = {"float32", "float16"}
_QUANT = {"int8", "uint8"}  # the delegate's default options allow quantized ops


def _tensor_problem(g: Graph, op: Op, consts: set[int]) -> str | None:
    """model_builder.cc's IsAllAllowedTensors on the op's inputs and outputs (None: allowed)."""
    allowed_in, allowed_out = _FLOAT | _QUANT, _FLOAT | _QUANT
    if op.name in _LOGICAL:
        allowed_out = allowed_out | {"bool"}
    if op.name == "CAST":
        allowed_in, allowed_out = allowed_in | {"bool", "int32"}, allowed_out | {"int32", "bool"}
    if op.name == "ONE_HOT":
        allowed_in = allowed_in | {"int32"}
    if op.name in ("SELECT", "SELECT_V2"):
        allowed_in = allowed_in | {"bool"}
    for tensors, allowed in ((op.inputs, allowed_in), (op.outputs, allowed_out)):
        for i in tensors:
            if i < 0:
                continue
            t = g.tensors[i]
            if len(t.shape) >= 5:
                return f"tensor {t.name or i} is {len(t.shape)}-D; the delegate takes tensors of rank 4 or less"
            if i not in consts and not t.is_const and t.dtype not in allowed:
                return f"tensor {t.name or i} is {t.dtype}; the delegate takes {', '.join(sorted(allowed))} here"
    return None


def _problem(g: Graph, op: Op, consts: set[int]) -> tuple[str, str] | None:
    """(code, reason) when the delegate rejects ``op``, else None."""
    if op.name not in GPU_OPS:
        return "unsupported_op", f"Not supported op {op.name}"
    check = GPU_OPS[op.name]
    why = check(g, op, consts) if check is not None else None
    if why:
        return "unsupported_params", why
    why = _tensor_problem(g, op, consts)
    if why:
        return "tensor_type_or_shape", f"OP is supported, but tensor type/shape isn't compatible: {why}"
    return None


def partition(g: Graph, supported: set[int]) -> list[tuple[bool, list[int]]]:
    """graph_info.cc's greedy partitioning: (is_delegated, op indices) subsets in the order they form.

    Each subset starts with the first ready op (all its inputs computed); every
    ready op of the same kind (supported or not) joins it, repeatedly, until none
    can; then the next subset starts.
    """
    produced = {t for op in g.ops for t in op.outputs if t >= 0}
    ready_tensors = {t.index for t in g.tensors if t.index not in produced}
    done: set[int] = set()
    subsets: list[tuple[bool, list[int]]] = []
    while len(done) < len(g.ops):
        kind: bool | None = None
        members: list[int] = []
        progress = True
        while progress:
            progress = False
            for op in g.ops:
                if op.index in done or any(i >= 0 and i not in ready_tensors for i in op.inputs):
                    continue
                mine = op.index in supported
                if kind is None:
                    kind = mine
                if mine != kind:
                    continue
                done.add(op.index)
                members.append(op.index)
                ready_tensors.update(t for t in op.outputs if t >= 0)
                progress = True
        if not members:  # a cycle or a missing producer: stop rather than loop
            break
        subsets.append((bool(kind), members))
    return subsets


def check_gpu(model: str | bytes | Graph, *, target: str = "gpu") -> CompatReport:
    """Predict which ops the GPU delegate takes (path, bytes or :class:`Graph`).

    Example::

        report = check_gpu("bundle/model_gpu.tflite")
        print(report.headline())
    """
    g = model if isinstance(model, Graph) else read_graph(model)
    consts = _constants(g)
    dequant = _fp16_dequantize(g)
    problems = {op.index: (None if op.index in dequant else _problem(g, op, consts)) for op in g.ops}
    supported = {i for i, why in problems.items() if why is None and i not in dequant}
    subsets = partition(g, supported)
    delegated = [members for kind, members in subsets if kind]
    chosen = sorted(delegated, key=len, reverse=True)[:MAX_DELEGATED_PARTITIONS]  # stable: the earlier of equals
    on = {i for members in chosen for i in members}
    placements = []
    for op in g.ops:
        if op.index in dequant:
            continue  # a weight cast the delegate folds into its kernels (delegates/utils.cc): not an op of its own
        if op.index in on:
            placements.append(OpPlacement(op.index, op.name, True, None, op.macs))
        elif problems[op.index] is not None:
            code, why = problems[op.index]
            placements.append(OpPlacement(op.index, op.name, False, why, op.macs, code=code))
        else:
            placements.append(OpPlacement(op.index, op.name, False, "supported, but outside the delegated partition", op.macs,
                                          code="outside_partition"))  # fmt: skip
    notes = [
        "the numeric check and accuracy come from LiteRT on the CPU; the GPU computes in fp16 and may differ slightly more."
    ]
    if dequant:
        notes.append(f"{len(dequant)} DEQUANTIZE op(s) of fp16 weights are not counted: the delegate reads the fp16 weights directly.")
    if len(delegated) > MAX_DELEGATED_PARTITIONS:
        notes.append(
            f"the supported ops form {len(delegated)} partitions (grouped by data dependency); with the delegate's default "
            f"max_delegated_partitions={MAX_DELEGATED_PARTITIONS} only the largest ({len(chosen[0])} ops) runs on the GPU."
        )
    return CompatReport(
        target=target,
        analysis="gpu",
        accelerator="GPU delegate",
        method=f"the delegate's op rules, tensor checks, fp16 handling and partitioning, modelled from TensorFlow's sources ({SOURCE})",
        placements=placements,
        notes=notes,
        extra={"partitions": [sorted(members) for members in delegated], "delegated_partition": sorted(on),
               "fp16_dequantize_ops": sorted(dequant)},  # fmt: skip
    )
