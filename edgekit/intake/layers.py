"""Which layers edgekit accepts, and the safety scan that runs before loading.

The scan works on the JSON config alone, so a model that would execute code
(a Lambda layer, a custom class) is refused before any deserializer runs.
To support a new layer: add it to ``SUPPORTED_LAYERS``, make sure the Keras 3
bridge copies it faithfully (tests/test_intake_bridge.py), and give it a MAC
formula in ``stats.py`` if it computes.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator

from edgekit.errors import UnsafeModelError, UnsupportedModelError

SUPPORTED_LAYERS = frozenset(
    {
        "InputLayer",
        "Conv2D",
        "DepthwiseConv2D",
        "SeparableConv2D",
        "BatchNormalization",
        "Dense",
        "MaxPooling2D",
        "AveragePooling2D",
        "GlobalAveragePooling2D",
        "GlobalMaxPooling2D",
        "Dropout",
        "SpatialDropout2D",
        "Activation",
        "ReLU",
        "LeakyReLU",
        "Softmax",
        "Add",
        "Multiply",
        "Concatenate",
        "Flatten",
        "Rescaling",
        "Normalization",
        "ZeroPadding2D",
        "Reshape",
    }
)

UNSAFE_LAYERS = frozenset({"Lambda", "TFOpLambda", "SlicingOpLambda"})
_MODEL_CLASSES = frozenset({"Sequential", "Functional", "Model"})


@dataclass(frozen=True)
class LayerRef:
    name: str
    class_name: str
    module: str | None
    registered_name: str | None
    config: dict[str, Any]

    @property
    def is_custom(self) -> bool:
        if self.module is not None and not self.module.startswith("keras"):
            return True
        if self.registered_name and ">" in self.registered_name:
            return True
        return ">" in self.class_name  # tf_keras writes "Custom>Name" for registered objects


def iter_layers(model_config: dict[str, Any]) -> Iterator[LayerRef]:
    """Every layer entry of a Sequential/functional model config."""
    for entry in model_config.get("config", {}).get("layers", []):
        cfg = entry.get("config", {}) or {}
        yield LayerRef(
            name=str(entry.get("name") or cfg.get("name") or "?"),
            class_name=str(entry.get("class_name")),
            module=entry.get("module"),
            registered_name=entry.get("registered_name"),
            config=cfg,
        )


def scan_layers(model_config: dict[str, Any], *, allow_unsafe: bool = False, source: str = "model") -> list[str]:
    """Refuse what edgekit cannot load safely or handle; return notes for what it allowed.

    Raises:
        UnsafeModelError: a Lambda or custom object, unless ``allow_unsafe``.
        UnsupportedModelError: a layer outside ``SUPPORTED_LAYERS``, or a nested model.
    """
    notes = []
    for layer in iter_layers(model_config):
        if layer.class_name in UNSAFE_LAYERS or layer.is_custom:
            what = "a Lambda layer" if layer.class_name in UNSAFE_LAYERS else f"the custom class {layer.registered_name or layer.class_name!r}"
            if not allow_unsafe:
                raise UnsafeModelError(
                    f"{source}: layer {layer.name!r} is {what}; loading it runs code stored in the model file.",
                    hint="If you trust the file, pass --allow-unsafe (API: allow_unsafe=True); custom classes must also be importable.",
                )
            notes.append(f"layer {layer.name!r} ({layer.class_name}) loaded with --allow-unsafe")
            continue
        if layer.class_name in _MODEL_CLASSES:
            raise UnsupportedModelError(
                f"{source}: layer {layer.name!r} is a nested {layer.class_name} model; edgekit needs a flat model.",
                hint="Rebuild the model so the inner model's layers are applied directly to the outer graph.",
            )
        if layer.class_name not in SUPPORTED_LAYERS:
            raise UnsupportedModelError(
                f"{source}: layer {layer.name!r} has unsupported type {layer.class_name}.",
                hint=f"Supported layers: {', '.join(sorted(SUPPORTED_LAYERS - {'InputLayer'}))}.",
            )
        _check_activation(layer, allow_unsafe, source, notes)
    return notes


def _check_activation(layer: LayerRef, allow_unsafe: bool, source: str, notes: list[str]) -> None:
    act = layer.config.get("activation")
    custom = False
    if isinstance(act, str):
        custom = ">" in act
    elif isinstance(act, dict):
        module = act.get("module") or ""
        custom = (module and not module.startswith("keras")) or ">" in str(act.get("registered_name") or act.get("class_name") or "")
    if custom:
        if not allow_unsafe:
            raise UnsafeModelError(
                f"{source}: layer {layer.name!r} uses a custom activation ({act!r}); loading it runs code from outside edgekit.",
                hint="If you trust it, pass --allow-unsafe and make the function importable.",
            )
        notes.append(f"layer {layer.name!r} uses a custom activation, allowed by --allow-unsafe")
