"""Which layers edgekit accepts, and the safety scan that runs before loading.

The scan works on the JSON config alone, so a model that would execute code
(a Lambda layer, a custom class) is refused before any deserializer runs.
What edgekit knows about each layer class lives in one table,
:mod:`edgekit.intake.registry`; to support a new layer, add its row there.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator

from edgekit.errors import UnsafeModelError, UnsupportedModelError
from edgekit.intake import registry as reg

# Every class the scan lets through (nested models and no-ops included); kept for API compatibility.
SUPPORTED_LAYERS = frozenset(reg.LAYERS)

UNSAFE_LAYERS = frozenset({"Lambda", "TFOpLambda", "SlicingOpLambda"})
_MODEL_CLASSES = reg.names(bridge=reg.INLINE)
# tf_keras' own modules: its .keras files name a nested model's class by module ("tf_keras.src.engine.functional").
_TF_KERAS_MODULES = ("tf_keras.",)
# Keras 3 records ``x + 3.0`` on symbolic tensors as operation nodes from these modules.
OP_MODULES = ("keras.src.ops", "keras.ops")


@dataclass(frozen=True)
class LayerRef:
    name: str  # outer/inner path for layers of nested models
    class_name: str
    module: str | None
    registered_name: str | None
    config: dict[str, Any]

    @property
    def is_op(self) -> bool:
        return (self.module or "").startswith(OP_MODULES)

    @property
    def is_custom(self) -> bool:
        if self.module is not None and not self.module.startswith("keras") and not self.module.startswith(_TF_KERAS_MODULES):
            return True
        if self.registered_name and ">" in self.registered_name:
            return True
        return ">" in self.class_name  # tf_keras writes "Custom>Name" for registered objects


def iter_layers(model_config: dict[str, Any], *, prefix: str = "", nested: bool = True) -> Iterator[LayerRef]:
    """Every layer entry of a Sequential/functional model config; nested models' layers follow as outer/inner."""
    for entry in model_config.get("config", {}).get("layers", []):
        cfg = entry.get("config", {}) or {}
        ref = LayerRef(
            name=prefix + str(entry.get("name") or cfg.get("name") or "?"),
            class_name=str(entry.get("class_name")),
            module=entry.get("module"),
            registered_name=entry.get("registered_name"),
            config=cfg,
        )
        yield ref
        if nested and ref.class_name in _MODEL_CLASSES and not ref.is_custom:
            yield from iter_layers(entry, prefix=ref.name + "/")


def scan_layers(model_config: dict[str, Any], *, allow_unsafe: bool = False, source: str = "model", flavour: str = "keras3") -> list[str]:
    """Refuse what edgekit cannot load safely or handle; return notes for what it allowed.

    Nested Sequential/functional models are scanned layer by layer, like the
    outer model (their layers named outer/inner): the bridge inlines them in
    Keras 3 files, :mod:`edgekit.intake.flatten` in tf_keras files.

    Args:
        flavour: "keras3" (Keras 3 operation nodes pass: the bridge rebuilds or names them) or "tf_keras".

    Raises:
        UnsafeModelError: a Lambda or custom object, unless ``allow_unsafe``.
        UnsupportedModelError: a layer edgekit does not know.
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
        if layer.is_op and flavour == "keras3":
            continue  # the bridge rebuilds constant arithmetic and refuses the rest, by name
        if layer.class_name not in reg.LAYERS:
            raise UnsupportedModelError(
                f"{source}: layer {layer.name!r} has unsupported type {layer.class_name}.",
                hint=f"Replace it with a supported layer ({', '.join(sorted(reg.names(bridge=reg.COPY)))}), "
                "or compress anyway: it converts the Keras 3 model itself, without pruning/QAT.",
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
        return
    if isinstance(act, str) and act not in reg.ACTIVATIONS:
        raise UnsupportedModelError(
            f"{source}: layer {layer.name!r} uses activation {act!r}, which edgekit does not know.",
            hint=f"Use one of: {', '.join(sorted(reg.ACTIVATIONS))}.",
        )
