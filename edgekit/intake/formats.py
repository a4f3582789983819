"""Recognise a model file and read its architecture config WITHOUT running it.

Reading the config as JSON first is what makes intake safe by default: we can
see a Lambda layer or a custom class before any deserializer gets a chance to
execute code stored in the file.
"""
from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgekit.errors import ModelLoadError
from edgekit.limits import CONFIG_BYTES

_ZIP_MAGIC = b"PK\x03\x04"
_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


@dataclass
class ModelFile:
    """What a model path holds, as far as we can tell without loading it."""

    path: Path
    format: str  # "keras_zip" | "h5" | "savedmodel"
    flavour: str  # "keras3" | "tf_keras"
    keras_version: str
    config: dict[str, Any]  # the top-level model config: {"class_name", "config", ...}
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def description(self) -> str:
        names = {"keras_zip": ".keras archive", "h5": "HDF5 .h5 file", "savedmodel": "SavedModel directory"}
        kind = "Keras 3" if self.flavour == "keras3" else "tf_keras (Keras 2)"
        return f"{kind} {names[self.format]} (Keras {self.keras_version})"


def read_model_file(path: str | Path) -> ModelFile:
    """Identify ``path`` and parse its model config.

    Raises:
        ModelLoadError: missing, corrupt, truncated, or not a Keras model.
    """
    p = Path(path)
    if not p.exists():
        raise ModelLoadError(f"model {p} does not exist.", hint="Pass a .keras, .h5 file or a SavedModel directory.")
    if p.is_dir():
        return _read_savedmodel(p)
    try:
        with open(p, "rb") as f:
            head = f.read(8)
    except OSError as e:
        raise ModelLoadError(f"cannot read model {p}: {e.strerror}.") from e
    if head.startswith(_ZIP_MAGIC):
        return _read_keras_zip(p)
    if head == _HDF5_MAGIC:
        return _read_h5(p)
    if p.suffix.lower() in (".keras", ".h5", ".hdf5"):
        raise ModelLoadError(
            f"{p} is not a valid {p.suffix} file (its first bytes are neither a zip archive nor HDF5); "
            "it is corrupt or truncated.",
            hint="Re-export it with model.save(...).",
        )
    raise ModelLoadError(
        f"{p} is not a model file: expected a Keras .keras archive, a .h5 file or a SavedModel directory.",
    )


def _read_keras_zip(p: Path) -> ModelFile:
    try:
        with zipfile.ZipFile(p) as z:
            names = set(z.namelist())
            if "config.json" not in names:
                raise ModelLoadError(
                    f"{p} is a zip archive but not a Keras model (no config.json inside; found {', '.join(sorted(names)[:5]) or 'nothing'})."
                )
            bad = z.testzip()
            if bad is not None:
                raise ModelLoadError(f"{p} is corrupt: member {bad} fails its CRC check.", hint="Re-export the model.")
            for member in ("config.json", "metadata.json"):
                if member in names and z.getinfo(member).file_size > CONFIG_BYTES.value:
                    # Checked from the zip header before inflating: a 2 MB archive can hold a 1 GiB "config".
                    raise ModelLoadError(
                        f"{p}: {member} inflates to {z.getinfo(member).file_size:,} bytes; {CONFIG_BYTES.how_to_raise()}"
                    )
            config = _parse_json(p, z.read("config.json"), "config.json")
            meta = _parse_json(p, z.read("metadata.json"), "metadata.json") if "metadata.json" in names else {}
            has_weights = any(n.endswith(".weights.h5") or n.endswith(".h5") for n in names)
    except zipfile.BadZipFile as e:
        raise ModelLoadError(f"{p} is truncated or corrupt ({e}).", hint="Re-export it with model.save(...).") from e
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ModelLoadError(f"{p} has an unreadable config.json ({e}); the file is corrupt.") from e
    except (OSError, EOFError) as e:
        raise ModelLoadError(f"{p} is truncated or corrupt ({e}).", hint="Re-export it with model.save(...).") from e
    if not has_weights:
        raise ModelLoadError(f"{p} holds no weights file; it is not a complete saved model.")
    if not isinstance(meta, dict):
        raise ModelLoadError(f"{p}: metadata.json is not a JSON object; the file is corrupt.", hint="Re-export it with model.save(...).")
    version = str(meta.get("keras_version", "unknown"))
    flavour = "keras3" if version.startswith("3") else "tf_keras"
    return ModelFile(p, "keras_zip", flavour, version, _require_model_config(p, config))


def _read_h5(p: Path) -> ModelFile:
    try:
        import h5py
    except ImportError as e:  # h5py comes with tf_keras
        from edgekit.errors import MissingExtraError

        raise MissingExtraError("h5py is needed to read .h5 models.", hint='pip install "edgekit[compress]"') from e
    try:
        with h5py.File(p, "r") as f:
            raw = f.attrs.get("model_config")
            version = f.attrs.get("keras_version", "unknown")
    except OSError as e:
        raise ModelLoadError(f"{p} is truncated or corrupt ({e}).", hint="Re-export it with model.save(...).") from e
    if raw is None:
        raise ModelLoadError(
            f"{p} is an HDF5 file without a model config (a weights-only file?).",
            hint="Save the whole model with model.save('model.h5'), not save_weights().",
        )
    config = _parse_json(p, raw, "its model_config attribute")
    version = version.decode() if isinstance(version, bytes) else str(version)
    return ModelFile(p, "h5", "keras3" if version.startswith("3") else "tf_keras", version, _require_model_config(p, config))


def _read_savedmodel(p: Path) -> ModelFile:
    if not (p / "saved_model.pb").is_file() and not (p / "saved_model.pbtxt").is_file():
        raise ModelLoadError(
            f"directory {p} is not a SavedModel (no saved_model.pb inside).",
            hint="Pass the folder written by model.save(dir) with tf_keras, or a .keras / .h5 file.",
        )
    meta_path = p / "keras_metadata.pb"
    if not meta_path.is_file():
        raise ModelLoadError(
            f"SavedModel {p} has no Keras metadata (keras_metadata.pb): it was written by tf.saved_model.save or Keras 3 export, not a Keras model.save().",
            hint="Give edgekit the Keras model itself (.keras, .h5) or a SavedModel written by tf_keras model.save(dir).",
        )
    from edgekit._tf import tf_keras

    tf_keras()
    from tf_keras.protobuf import saved_metadata_pb2

    meta = saved_metadata_pb2.SavedMetadata()
    try:
        meta.ParseFromString(meta_path.read_bytes())
    except Exception as e:  # noqa: BLE001 - protobuf raises DecodeError or RuntimeError
        raise ModelLoadError(f"{meta_path} is corrupt ({e}).") from e
    root = next((n for n in meta.nodes if n.node_path == "root"), None)
    if root is None:
        raise ModelLoadError(f"{meta_path} has no root model entry; the SavedModel is damaged.")
    root_meta = _parse_json(p, root.metadata, "keras_metadata.pb's root entry")
    version = str(root_meta.get("keras_version", "unknown"))
    config = {"class_name": root_meta.get("class_name"), "config": root_meta.get("config")}
    if config["config"] is None:
        raise ModelLoadError(
            f"SavedModel {p} holds a subclassed model without a config; edgekit needs a Sequential or functional model."
        )
    return ModelFile(p, "savedmodel", "tf_keras", version, _require_model_config(p, config))


def _parse_json(p: Path, raw: Any, where: str) -> Any:
    from edgekit.jsonio import parse_json  # one place for every way JSON can fail (RecursionError included)

    if not isinstance(raw, (str, bytes)):
        raise ModelLoadError(f"{p}: {where} is not JSON text; the file is corrupt.", hint="Re-export it with model.save(...).")
    return parse_json(raw, what=f"{p}: {where}", error=ModelLoadError, hint="The file is corrupt; re-export it with model.save(...).")


def _require_model_config(p: Path, config: Any) -> dict[str, Any]:
    if not isinstance(config, dict) or "class_name" not in config:
        raise ModelLoadError(f"{p} does not hold a Keras model config.")
    if config["class_name"] not in ("Sequential", "Functional", "Model"):
        raise ModelLoadError(
            f"{p} holds a {config['class_name']!r}, expected a Sequential or functional Keras model "
            "(subclassed models cannot be rebuilt without their code).",
        )
    _check_layer_list(p, config)
    return config


def _check_layer_list(p: Path, config: dict[str, Any]) -> None:
    # A damaged or hand-edited config ("config": null, "layers": [1, 2]) would
    # otherwise fail deep inside Keras with an AttributeError traceback.
    inner = config.get("config")
    if not isinstance(inner, dict):
        raise ModelLoadError(f"{p}: the model config's 'config' is {type(inner).__name__}, expected an object; the file is corrupt.")
    layers = inner.get("layers")
    if not isinstance(layers, list):
        raise ModelLoadError(f"{p}: the model config's 'layers' is {type(layers).__name__}, expected a list; the file is corrupt.")
    for i, layer in enumerate(layers):
        if not isinstance(layer, dict) or not isinstance(layer.get("class_name"), str) or not isinstance(layer.get("config"), dict):
            raise ModelLoadError(
                f"{p}: layer {i} of the model config is {json.dumps(layer)[:60]}, expected an object with 'class_name' and "
                "'config'; the file is corrupt.",
                hint="Re-export it with model.save(...).",
            )
