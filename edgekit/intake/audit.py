"""Which layers tfmot can prune and quantize, and what blocks QAT or full int8.

Prunable/quantizable come from tfmot's own registries, so they change when
tfmot does; what an ``activation=`` does to QAT and int8 comes from
:data:`edgekit.intake.registry.ACTIVATIONS` (a test keeps the two in step).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from edgekit.intake import registry as reg


@dataclass
class LayerAudit:
    name: str
    type: str
    prunable: bool
    quantizable: bool
    blocks_qat: str | None  # reason, or None
    blocks_int8: str | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def audit_model(model: Any) -> list[LayerAudit]:
    """Audit each layer of a tf_keras model against tfmot's registries."""
    from edgekit._tf import tfmot

    tfmot()
    from tensorflow_model_optimization.python.core.quantization.keras.default_8bit.default_8bit_quantize_registry import (
        Default8BitQuantizeRegistry,
    )
    from tensorflow_model_optimization.python.core.sparsity.keras.prune_registry import PruneRegistry

    qreg = Default8BitQuantizeRegistry()
    rows = []
    for layer in model.layers:
        kind = type(layer).__name__
        if kind == "InputLayer":
            continue
        prunable = bool(PruneRegistry.supports(layer)) and bool(getattr(layer, "weights", []))
        quantizable = bool(qreg.supports(layer)) or _folded_bn(layer, kind)
        blocks_qat = None
        act = _activation_name(layer)
        if quantizable and act is not None and not (reg.ACTIVATIONS.get(act) and reg.ACTIVATIONS[act].qat):
            # tfmot's QuantizeAwareActivation raises for any other activation, failing the whole model.
            quantizable = False
            blocks_qat = f"tfmot's 8-bit scheme cannot fake-quantize activation {act!r}; kept float, calibrated at conversion"
        elif not quantizable:
            blocks_qat = (
                f"tfmot's default 8-bit scheme has no config for {kind}; quantize_model() refuses it "
                "(edgekit compress leaves it in float and reports it)"
            )
        rows.append(LayerAudit(layer.name, kind, prunable, quantizable, blocks_qat, _int8_blocker(layer, kind)))
    return rows


def _folded_bn(layer: Any, kind: str) -> bool:
    # tfmot has no standalone BatchNormalization config; its layout transforms
    # fold a BN that directly follows a conv or dense layer into that layer.
    if kind != "BatchNormalization":
        return False
    nodes = getattr(layer, "inbound_nodes", None) or getattr(layer, "_inbound_nodes", [])
    if not nodes:
        return False
    parents = nodes[0].inbound_layers
    parents = parents if isinstance(parents, list) else [parents]
    return len(parents) == 1 and type(parents[0]).__name__ in ("Conv2D", "DepthwiseConv2D", "Dense")


def _activation_name(layer: Any) -> str | None:
    activation = getattr(layer, "activation", None)
    return getattr(activation, "__name__", None) if activation is not None else None


def _int8_blocker(layer: Any, kind: str) -> str | None:
    if kind in ("Lambda", "TFOpLambda", "SlicingOpLambda"):
        return "arbitrary TensorFlow ops; any without an int8 TFLite kernel stays float"
    name = _activation_name(layer)
    spec = reg.ACTIVATIONS.get(name) if name else None
    if spec is not None and not spec.int8:
        return f"activation {name!r} has no int8 TFLite kernel"
    return None
