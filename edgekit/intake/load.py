"""``load_model``: any supported Keras model file -> a checked tf_keras model."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgekit.bundle.store import sha256_file
from edgekit.errors import BridgeError, EdgekitError, ModelLoadError, UnsupportedModelError, first_line
from edgekit.intake.bridge import MAX_RELATIVE_DEVIATION, BridgeReport, _compare, bridge_keras3
from edgekit.intake.flatten import flatten_nested, has_nested_models
from edgekit.intake.formats import ModelFile, read_model_file
from edgekit.intake.layers import scan_layers


@dataclass
class LoadedModel:
    """A model ready for the build side.

    Attributes:
        model: the tf_keras model (tfmot works on it).
        file: what was read: path, format, Keras flavour and version.
        sha256: of the model file (or of saved_model.pb for a directory).
        bridge: how the Keras 3 -> tf_keras rebuild matched; None for tf_keras files.
        notes: things the user allowed or should know (e.g. --allow-unsafe layers).
    """

    model: Any
    file: ModelFile
    sha256: str
    bridge: BridgeReport | None = None
    notes: list[str] = field(default_factory=list)
    bridge_blocker: str | None = None  # why the model could not be rebuilt in tf_keras (``model`` is then Keras 3)

    @property
    def bridged(self) -> bool:
        """``model`` is a tf_keras model (tfmot can prune and QAT it)."""
        return self.bridge_blocker is None

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self.model.inputs[0].shape[1:])

    @property
    def num_outputs(self) -> int:
        return int(self.model.outputs[0].shape[-1])

    def source_info(self) -> dict[str, Any]:
        """The manifest's ``source_model`` entry."""
        return {
            "name": self.file.path.name,
            "sha256": self.sha256,
            "format": self.file.format,
            "keras": self.file.flavour,
            "keras_version": self.file.keras_version,
            "bridge": self.bridge.to_dict() if self.bridge else None,
            **({"bridge_blocker": self.bridge_blocker} if self.bridge_blocker else {}),
        }


def load_model(
    path: str | Path, *, allow_unsafe: bool = False, custom_objects: dict[str, Any] | None = None, require_bridge: bool = True
) -> LoadedModel:
    """Load a Keras 3 ``.keras``, a tf_keras ``.h5``/``.keras`` or a tf_keras SavedModel directory.

    Keras 3 models are rebuilt in tf_keras and proven equal on random inputs.
    A tf_keras model with nested Sequential/functional models (a transfer-learning
    base, an augmentation block) is flattened into one functional model over the
    same layers, named outer/inner, and proven equal the same way.
    Lambda layers and custom objects are refused unless ``allow_unsafe``.
    With ``require_bridge=False``, a Keras 3 model that cannot be rebuilt (a
    layer class edgekit does not know, a custom layer, outputs that differ) is
    returned as the Keras 3 model itself with ``bridge_blocker`` naming the
    layer: it can still be converted, but not pruned or QAT-trained.

    Example::

        loaded = load_model("digits_cnn.keras")
        loaded.model.summary()

    Raises:
        ModelLoadError, UnsafeModelError, UnsupportedModelError, BridgeError.
    """
    mf = read_model_file(path)
    blocker = None
    try:
        notes = scan_layers(mf.config, allow_unsafe=allow_unsafe, source=str(mf.path), flavour=mf.flavour)
    except UnsupportedModelError as e:
        if require_bridge or mf.flavour != "keras3":
            raise
        notes, blocker = [], _blocker_text(e, str(mf.path))
    digest = _sha256(mf.path)
    if mf.flavour == "keras3":
        k3 = _load_keras3(mf, allow_unsafe, custom_objects)
        _check_io(k3, mf.path)  # before bridging: the output check needs concrete input shapes
        if blocker is None:
            try:
                model, report = bridge_keras3(k3)
            except (UnsupportedModelError, BridgeError) as e:
                if require_bridge:
                    raise
                blocker = _blocker_text(e, str(mf.path))
            else:
                return LoadedModel(model, mf, digest, report, notes + report.notes())
        return LoadedModel(k3, mf, digest, None, notes, bridge_blocker=blocker)
    model = _load_tf_keras(mf, allow_unsafe, custom_objects)
    _check_io(model, mf.path)
    if has_nested_models(model):
        model, flat_notes = _flatten_tf_keras(model, mf.path)
        notes = notes + flat_notes
    return LoadedModel(model, mf, digest, None, notes)


def _flatten_tf_keras(model: Any, path: Path, samples: int = 4) -> tuple[Any, list[str]]:
    """Inline nested models (see :mod:`edgekit.intake.flatten`) and prove the flat model computes the same outputs."""
    try:
        flat = flatten_nested(model)
    except UnsupportedModelError as e:
        raise UnsupportedModelError(f"{path}: {e.message}", hint=e.hint) from e
    try:
        # The saved model can still run: flattening keeps its layers (and weights) and only forgets their old graph links.
        check = _compare(model, flat.model, samples=samples, seed=0)
    except EdgekitError:
        raise
    except Exception as e:  # noqa: BLE001
        raise BridgeError(
            f"{path}: the model with its nested models inlined could not be checked against the saved one ({first_line(e)}).",
            hint="Apply the inner models' layers directly to the outer graph and save again.",
        ) from e
    if not check.max_relative_deviation <= MAX_RELATIVE_DEVIATION:
        raise BridgeError(
            f"{path}: the model with its nested models inlined differs from the saved one: max relative deviation "
            f"{check.max_relative_deviation:.2e} > {MAX_RELATIVE_DEVIATION:.0e}.",
            hint="Please report this model's architecture; until then, apply the inner models' layers directly to the outer graph.",
        )
    notes = flat.notes()
    if notes:
        notes[0] += f" (outputs equal the saved model's: max relative deviation {check.max_relative_deviation:.1e} on {samples} random inputs)"
    return flat.model, notes


def _blocker_text(e: EdgekitError, source: str) -> str:
    text = e.message
    prefix = f"{source}: "
    return text[len(prefix):] if text.startswith(prefix) else text


def _load_keras3(mf: ModelFile, allow_unsafe: bool, custom_objects: dict[str, Any] | None) -> Any:
    from edgekit._tf import keras3

    keras = keras3()
    try:
        return keras.saving.load_model(mf.path, compile=False, safe_mode=not allow_unsafe, custom_objects=custom_objects)
    except EdgekitError:
        raise
    except Exception as e:  # noqa: BLE001 - Keras raises many types for damaged files
        raise ModelLoadError(f"{mf.path}: Keras 3 could not load it ({first_line(e)}).", hint="Re-export it with model.save(...).") from e


def _load_tf_keras(mf: ModelFile, allow_unsafe: bool, custom_objects: dict[str, Any] | None) -> Any:
    from edgekit._tf import tf_keras

    tfk = tf_keras()
    kwargs: dict[str, Any] = {"compile": False, "custom_objects": custom_objects}
    if mf.format == "keras_zip":
        kwargs["safe_mode"] = not allow_unsafe
    try:
        return tfk.models.load_model(str(mf.path), **kwargs)
    except Exception as e:  # noqa: BLE001
        raise ModelLoadError(f"{mf.path}: tf_keras could not load it ({first_line(e)}).", hint="Re-export it with model.save(...).") from e


def _check_io(model: Any, path: Path) -> None:
    if len(model.inputs) != 1:
        raise UnsupportedModelError(f"{path}: the model has {len(model.inputs)} inputs; edgekit handles single-image models.")
    if len(model.outputs) != 1:
        raise UnsupportedModelError(f"{path}: the model has {len(model.outputs)} outputs; edgekit handles single-output classifiers.")
    shape = tuple(model.inputs[0].shape)
    if len(shape) != 4:
        raise UnsupportedModelError(f"{path}: input shape {shape} is not an image batch (N, H, W, C).")
    if any(d is None for d in shape[1:]):
        raise UnsupportedModelError(
            f"{path}: input {model.inputs[0].name!r} has shape {shape}; edge targets need fixed height, width and channels.",
            hint="Rebuild the model with keras.Input(shape=(H, W, C)) and copy the weights, e.g. keras.Input(shape=(224, 224, 3)).",
        )


def _sha256(p: Path) -> str:
    """The file's sha256; for a SavedModel folder, of every file in it (graph and weights)."""
    if p.is_file():
        return sha256_file(p)
    h = hashlib.sha256()
    for f in sorted(x for x in p.rglob("*") if x.is_file()):
        h.update(f.relative_to(p).as_posix().encode() + b"\0" + sha256_file(f).encode())
    return h.hexdigest()
