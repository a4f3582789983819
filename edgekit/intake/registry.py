"""Everything edgekit knows about a Keras layer class, one row per class.

In the spirit of tfmot's ``prune_registry.py``: the safety scan, the Keras 3
-> tf_keras bridge, the MAC counter, the compression audit and structured
pruning all read this table instead of keeping their own lists.

Adding a layer = one :func:`_register` call below (in the group it belongs
to) plus an entry in tests/test_intake_registry.py's model builders; the
tests are parametrized over :data:`LAYERS`, so a row without a bridge-equality
case fails. Activations (the ``activation=`` strings) have their own small
table, :data:`ACTIVATIONS`.

Importing this module imports neither TensorFlow nor Keras.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

# How the bridge treats a class.
COPY = "copy"  # same class in tf_keras; the config is translated key by key, weights copied
DROP = "drop"  # an inference-time no-op: removed from the graph, with a note
INLINE = "inline"  # a nested Sequential/functional model: its layers are inlined as outer/inner
INPUT = "input"
REBUILD = "rebuild"  # tf_keras has no such class: rebuilt from built-in layers (row's ``tf_keras_class``)
BRIDGE_KINDS = (COPY, DROP, INLINE, INPUT, REBUILD)

# Role in structured (channel) pruning; edgekit/compress/structured.py reads these.
PRODUCER = "producer"  # creates output channels that can be removed
PASS = "pass"  # channel-preserving, no per-channel weights
PASS_WEIGHTED = "pass_weighted"  # channel-preserving, per-channel weights sliced along
ELEMENTWISE = "elementwise"  # ties its inputs' channel groups together
CONCAT = "concat"  # lays its inputs' groups side by side
RESHAPE = "reshape"  # Flatten/Reshape: handled case by case in structured.py
BARRIER = "barrier"  # mixes or reorders channels: a group ends here, left whole
STRUCTURED_ROLES = (PRODUCER, PASS, PASS_WEIGHTED, ELEMENTWISE, CONCAT, RESHAPE, BARRIER)

# Behaviour under tfmot's default 8-bit QAT scheme.
QAT_QUANTIZED = "quantized"  # tfmot has a QuantizeConfig: fake-quantized during QAT
QAT_FOLDED = "folded"  # BatchNormalization: folded into the conv/dense before it
QAT_FLOAT = "float"  # no tfmot config: stays float in the QAT model, calibrated at int8 conversion
QAT_REMOVED = "removed"  # not in the bridged graph at all
QAT_KINDS = (QAT_QUANTIZED, QAT_FOLDED, QAT_FLOAT, QAT_REMOVED)


@dataclass(frozen=True)
class LayerSpec:
    """One Keras layer class.

    Attributes:
        name: the Keras class name (the ``class_name`` of a saved config).
        bridge: COPY, DROP, INLINE or INPUT.
        structured: its role in structured channel pruning.
        qat: QAT behaviour under tfmot's default 8-bit scheme (checked against tfmot by a test).
        prunable: tfmot's ``prune_low_magnitude`` prunes its weights (checked against tfmot by a test).
        macs: multiply-accumulates for batch 1 from (config, input shape, output shape); None = 0.
        rename: Keras 3 config key -> tf_keras key, where the two spell one setting differently.
        preprocessing: computes on raw pixels at inference (kept in the graph; ``inspect`` lists it).
        note: why, where the row is not obvious.
    """

    name: str
    bridge: str
    structured: str = BARRIER
    qat: str = QAT_FLOAT
    prunable: bool = False
    macs: Callable[[dict[str, Any], list[Any], list[Any]], int] | None = None
    rename: tuple[tuple[str, str], ...] = ()
    preprocessing: bool = False
    note: str = ""
    tf_keras_class: str = ""  # what the bridge builds, when not the same class

    @property
    def bridged_as(self) -> str:
        return self.tf_keras_class or self.name

    @property
    def noop(self) -> bool:
        return self.bridge == DROP


LAYERS: dict[str, LayerSpec] = {}


def _register(spec: LayerSpec) -> None:
    if spec.name in LAYERS:
        raise ValueError(f"layer class {spec.name!r} is registered twice")
    if spec.bridge not in BRIDGE_KINDS or spec.structured not in STRUCTURED_ROLES or spec.qat not in QAT_KINDS:
        raise ValueError(f"layer {spec.name!r}: bad row {spec}")
    if spec.bridge == DROP and spec.qat != QAT_REMOVED:
        raise ValueError(f"layer {spec.name!r}: a dropped layer has qat={QAT_REMOVED!r}")
    LAYERS[spec.name] = spec


def lookup(class_name: str) -> LayerSpec | None:
    """The row for ``class_name``, or None when edgekit does not know the class."""
    return LAYERS.get(class_name)


def names(*, bridge: str | None = None, structured: str | None = None) -> frozenset[str]:
    """Class names whose row matches every given field."""
    return frozenset(
        s.name for s in LAYERS.values() if (bridge is None or s.bridge == bridge) and (structured is None or s.structured == structured)
    )


# --- MAC formulas (batch 1; data movement, normalization and activations count 0) ---


def _spatial(shape: list[Any]) -> int:
    return int(np.prod([d for d in shape[1:-1] if d is not None])) if len(shape) > 2 else 1


def _conv_macs(cfg: dict[str, Any], inp: list[Any], out: list[Any]) -> int:
    kh, kw = cfg["kernel_size"]
    return _spatial(out) * out[-1] * kh * kw * (inp[-1] // int(cfg.get("groups", 1) or 1))


def _depthwise_macs(cfg: dict[str, Any], inp: list[Any], out: list[Any]) -> int:
    kh, kw = cfg["kernel_size"]
    return _spatial(out) * out[-1] * kh * kw  # out channels = in channels x depth_multiplier


def _separable_macs(cfg: dict[str, Any], inp: list[Any], out: list[Any]) -> int:
    kh, kw = cfg["kernel_size"]
    depth = inp[-1] * int(cfg.get("depth_multiplier", 1))
    return _spatial(out) * depth * kh * kw + _spatial(out) * depth * out[-1]


def _transpose_macs(cfg: dict[str, Any], inp: list[Any], out: list[Any]) -> int:
    # Every input pixel scatters one kh x kw x out kernel per input channel.
    kh, kw = cfg["kernel_size"]
    return _spatial(inp) * inp[-1] * kh * kw * out[-1]


def _dense_macs(cfg: dict[str, Any], inp: list[Any], out: list[Any]) -> int:
    return _spatial(out) * inp[-1] * out[-1]


# --- the table ---------------------------------------------------------------

_register(LayerSpec("InputLayer", INPUT, structured=PASS, qat=QAT_REMOVED))

# Layers that create channels.
_register(LayerSpec("Conv2D", COPY, PRODUCER, QAT_QUANTIZED, True, _conv_macs))
_register(LayerSpec("SeparableConv2D", COPY, PRODUCER, QAT_FLOAT, True, _separable_macs, note="tfmot's 8-bit registry has no config for it"))
_register(LayerSpec("Conv2DTranspose", COPY, PRODUCER, QAT_QUANTIZED, True, _transpose_macs))
_register(LayerSpec("Dense", COPY, PRODUCER, QAT_QUANTIZED, True, _dense_macs))

# Channel-preserving with per-channel weights.
_register(
    LayerSpec("DepthwiseConv2D", COPY, PASS_WEIGHTED, QAT_QUANTIZED, True, _depthwise_macs,
              note="with depth_multiplier > 1 it multiplies channels: structured pruning leaves its group whole")
)  # fmt: skip
_register(LayerSpec("BatchNormalization", COPY, PASS_WEIGHTED, QAT_FOLDED, note="folded into a preceding Conv/Dense by tfmot; otherwise float"))
_register(LayerSpec("PReLU", COPY, PASS_WEIGHTED, QAT_FLOAT))

# Normalizations over channels mix them: a group ends there.
_register(LayerSpec("LayerNormalization", COPY, BARRIER, QAT_FLOAT, note="normalizes across channels"))
_register(LayerSpec("GroupNormalization", COPY, BARRIER, QAT_FLOAT, note="normalizes across channel groups"))
_register(LayerSpec("UnitNormalization", COPY, BARRIER, QAT_FLOAT, note="normalizes across channels"))

# Channel-preserving, no weights.
for _name, _qat in (
    ("MaxPooling2D", QAT_QUANTIZED), ("AveragePooling2D", QAT_QUANTIZED), ("GlobalAveragePooling2D", QAT_QUANTIZED),
    ("GlobalMaxPooling2D", QAT_QUANTIZED), ("ZeroPadding2D", QAT_QUANTIZED), ("Cropping2D", QAT_QUANTIZED),
    ("UpSampling2D", QAT_QUANTIZED), ("Activation", QAT_QUANTIZED), ("ReLU", QAT_QUANTIZED), ("LeakyReLU", QAT_QUANTIZED),
    ("ELU", QAT_FLOAT),
):  # fmt: skip
    _register(LayerSpec(_name, COPY, PASS, _qat, rename=(("negative_slope", "alpha"),) if _name == "LeakyReLU" else ()))
_register(LayerSpec("Softmax", COPY, BARRIER, QAT_QUANTIZED, note="mixes channels"))

# Merges.
for _name, _qat in (("Add", QAT_QUANTIZED), ("Subtract", QAT_FLOAT), ("Multiply", QAT_FLOAT), ("Average", QAT_FLOAT),
                    ("Maximum", QAT_FLOAT), ("Minimum", QAT_FLOAT)):  # fmt: skip
    _register(LayerSpec(_name, COPY, ELEMENTWISE, _qat))
_register(LayerSpec("Concatenate", COPY, CONCAT, QAT_QUANTIZED))

# Shape changes.
_register(LayerSpec("Flatten", COPY, RESHAPE, QAT_QUANTIZED))
_register(LayerSpec("Reshape", COPY, RESHAPE, QAT_QUANTIZED))
_register(LayerSpec("Permute", COPY, BARRIER, QAT_QUANTIZED, note="moves the channel axis"))

# Preprocessing that computes at inference: kept in the graph (see the note in inspect).
_register(LayerSpec("Rescaling", COPY, PASS, QAT_FLOAT, preprocessing=True))
_register(LayerSpec("Normalization", COPY, BARRIER, QAT_FLOAT, preprocessing=True, note="per-channel mean/variance are not sliced"))
_register(LayerSpec("Resizing", COPY, PASS, QAT_FLOAT, preprocessing=True))
_register(LayerSpec("CenterCrop", COPY, PASS, QAT_FLOAT, preprocessing=True))

# Keras 3 layers outside keras.layers that tf_keras lacks.
_register(
    LayerSpec("LayerScale", REBUILD, PASS_WEIGHTED, QAT_QUANTIZED, True, _depthwise_macs, tf_keras_class="DepthwiseConv2D",
              note="ConvNeXt's x * gamma, rebuilt as a 1x1 DepthwiseConv2D without bias")
)  # fmt: skip

# Inference-time no-ops: identity when training=False, removed by the bridge.
for _name in (
    "RandomFlip", "RandomRotation", "RandomZoom", "RandomTranslation", "RandomContrast", "RandomBrightness",
    "GaussianNoise", "GaussianDropout", "AlphaDropout", "ActivityRegularization", "Identity",
    "Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D",
):  # fmt: skip
    _register(LayerSpec(_name, DROP, PASS, QAT_REMOVED, note="identity at inference"))

# Nested models.
for _name in ("Sequential", "Functional", "Model"):
    _register(LayerSpec(_name, INLINE, BARRIER, QAT_REMOVED, note="inlined: its layers join the outer graph as outer/inner"))


# --- activations ---------------------------------------------------------------

NATIVE = "native"  # tf_keras computes the same function under the same name
REBUILT = "rebuilt"  # tf_keras lacks it or computes something else: rebuilt from primitive layers


@dataclass(frozen=True)
class ActivationSpec:
    """One ``activation=`` string.

    Attributes:
        bridge: NATIVE or REBUILT (from Rescaling/ReLU/Multiply layers, proven equal by the bridge check).
        qat: tfmot's QuantizeAwareActivation accepts it (else QAT leaves the layer float).
        int8: TFLite has an int8 kernel for it (else full-int8 conversion cannot keep it int8).
        channel_mixing: couples all channels (softmax): structured pruning keeps the group whole.
    """

    name: str
    bridge: str = NATIVE
    qat: bool = False
    int8: bool = True
    channel_mixing: bool = False


ACTIVATIONS: dict[str, ActivationSpec] = {
    a.name: a
    for a in (
        ActivationSpec("linear", qat=True),
        ActivationSpec("relu", qat=True),
        ActivationSpec("relu6"),
        ActivationSpec("sigmoid", qat=True),
        ActivationSpec("tanh", qat=True),
        ActivationSpec("softmax", qat=True, channel_mixing=True),
        ActivationSpec("log_softmax", channel_mixing=True),
        ActivationSpec("swish", qat=True),
        ActivationSpec("silu", qat=True),  # tf_keras names it swish
        ActivationSpec("gelu", qat=True),
        ActivationSpec("elu"),
        ActivationSpec("selu", int8=False),
        ActivationSpec("softplus", int8=False),
        ActivationSpec("softsign", int8=False),
        ActivationSpec("exponential", int8=False),
        ActivationSpec("mish", int8=False),
        ActivationSpec("leaky_relu"),
        # tf_keras' hard_sigmoid is the old 0.2x+0.5 curve, Keras 3's is relu6(x+3)/6;
        # tf_keras has no hard_silu at all. Both are rebuilt from layers.
        ActivationSpec("hard_sigmoid", REBUILT),
        ActivationSpec("hard_silu", REBUILT),
        ActivationSpec("hard_swish", REBUILT),
    )
}


def supported_summary() -> dict[str, list[str]]:
    """What the README and ``inspect --help`` list: layers by bridge treatment, and activations."""
    return {
        "bridged": sorted(names(bridge=COPY)),
        "rebuilt_from_builtin_layers": sorted(names(bridge=REBUILD)),
        "removed_as_inference_noop": sorted(names(bridge=DROP)),
        "inlined": sorted(names(bridge=INLINE)),
        "preprocessing_kept_in_graph": sorted(s.name for s in LAYERS.values() if s.preprocessing),
        "activations": sorted(ACTIVATIONS),
    }
