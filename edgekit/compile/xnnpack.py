"""Which ops XNNPACK takes on the CPU, measured by loading the artifact in LiteRT.

LiteRT applies its XNNPACK delegate by default when it builds an interpreter.
Each XNNPACK partition becomes one DELEGATE node whose inputs and outputs are
the partition's boundary tensors; walking back from those outputs to those
inputs recovers exactly which of the model's ops XNNPACK claimed. Everything
else runs on LiteRT's builtin kernels (optimized or reference). This is the
real decision of the XNNPACK build in the installed LiteRT, not a table; an
older LiteRT on the device may take fewer ops (the report names the version).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from edgekit.compile.report import CompatReport, OpPlacement
from edgekit.tflite_graph import Graph, read_graph


def _claimed_ops(details: list[dict[str, Any]]) -> set[int]:
    originals = [d for d in details if d["op_name"] != "DELEGATE"]
    producer = {int(t): d["index"] for d in originals for t in d["outputs"]}
    claimed: set[int] = set()
    for node in (d for d in details if d["op_name"] == "DELEGATE"):
        boundary = {int(t) for t in node["inputs"]}
        stack = [int(t) for t in node["outputs"]]
        while stack:
            t = stack.pop()
            if t < 0 or t in boundary:
                continue
            op = producer.get(t)
            if op is None or op in claimed:
                continue
            claimed.add(op)
            stack.extend(int(x) for x in details[op]["inputs"])
    return claimed


def _dtypes(g: Graph, idx: tuple[int, ...]) -> str:
    names = [g.tensors[i].dtype for i in idx if i >= 0 and not g.tensors[i].is_const]
    return ",".join(names) or "const"


def check_xnnpack(model: str | Path, *, target: str = "cpu", graph: Graph | None = None) -> CompatReport:
    """Load ``model`` in the installed LiteRT and report the ops XNNPACK delegated.

    Raises:
        TargetError: LiteRT cannot load or allocate the model (e.g. XNNPACK
            refuses a tensor's quantization).

    Example::

        print(check_xnnpack("bundle/model_cpu.tflite").headline())
    """
    from edgekit.compile.check import allocate_interpreter
    from edgekit.runtime.backends import select_backend

    g = graph or read_graph(model)
    backend = select_backend()
    interp = allocate_interpreter(model, target=target)  # guarded: a refusal is this target's failure, not a crash
    notes: list[str] = []
    try:
        details = interp._get_ops_details()  # noqa: SLF001 - the only view of the delegated graph
    except AttributeError:
        details = None
    unknown = None
    if details is None or [d["op_name"] for d in details if d["op_name"] != "DELEGATE"] != [op.name for op in g.ops]:
        unknown = f"{backend.name} {backend.version} does not expose its delegated graph"
        notes.append(f"{unknown}; placement unknown, so no fraction is reported.")
        claimed: set[int] = set()
    else:
        claimed = _claimed_ops(details)
        if not any(d["op_name"] == "DELEGATE" for d in details):
            notes.append("XNNPACK did not take any op (is it disabled in this LiteRT build?).")
    placements = []
    for op in g.ops:
        if unknown is not None:  # unknown stays unknown: never a 0.0 stored as if measured
            placements.append(OpPlacement(op.index, op.name, None, unknown, op.macs, code="unknown"))
        elif op.index in claimed:
            placements.append(OpPlacement(op.index, op.name, True, None, op.macs))
        else:
            why = f"not delegated by XNNPACK ({_dtypes(g, op.inputs)} -> {_dtypes(g, op.outputs)}): runs on the builtin kernel"
            placements.append(OpPlacement(op.index, op.name, False, why, op.macs, code="not_delegated"))
    return CompatReport(
        target=target,
        analysis="xnnpack",
        accelerator="XNNPACK",
        fallback="builtin kernels",
        method=f"delegated graph of {backend.name} {backend.version} (XNNPACK applied by default) on the build host",
        placements=placements,
        notes=notes,
        extra={"backend": backend.name, "backend_version": backend.version},
    )
