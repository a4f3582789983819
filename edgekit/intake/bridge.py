"""Rebuild a Keras 3 model in tf_keras (Keras 2), where tfmot works.

Steps: translate each layer's Keras 3 config into its tf_keras equivalent,
rewire the graph from the inbound-node records, copy the weights layer by
layer, and prove on random inputs that both models compute the same outputs.
A bridge whose outputs drift beyond ``MAX_RELATIVE_DEVIATION`` is an error,
never a silent approximation.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgekit.errors import BridgeError, UnsupportedModelError

MAX_RELATIVE_DEVIATION = 1e-5

# Base-Layer kwargs tf_keras accepts on every layer (tf_keras' Layer.__init__ allow-list).
_BASE_LAYER_KWARGS = {"name", "trainable", "dtype", "dynamic", "input_dim", "input_shape", "batch_input_shape", "batch_size", "weights", "activity_regularizer", "autocast", "implementation"}


@dataclass
class BridgeReport:
    """What the bridge did and how closely the rebuilt model matches."""

    max_relative_deviation: float
    max_abs_deviation: float
    samples: int
    dropped_config_keys: dict[str, list[str]] = field(default_factory=dict)  # layer -> Keras-3-only keys dropped

    def to_dict(self) -> dict[str, Any]:
        return {
            "max_relative_deviation": self.max_relative_deviation,
            "max_abs_deviation": self.max_abs_deviation,
            "tolerance": MAX_RELATIVE_DEVIATION,
            "samples": self.samples,
            "dropped_config_keys": self.dropped_config_keys,
        }


def bridge_keras3(k3_model: Any, *, samples: int = 4, seed: int = 0) -> tuple[Any, BridgeReport]:
    """Rebuild ``k3_model`` (a loaded Keras 3 model) as a tf_keras model.

    Returns:
        (tf_keras model, BridgeReport)

    Raises:
        UnsupportedModelError: a layer or connection the bridge cannot express.
        BridgeError: weights do not fit, or outputs differ beyond tolerance.
    """
    from edgekit._tf import tf_keras

    tfk = tf_keras()
    config = k3_model.get_config()
    dropped: dict[str, list[str]] = {}
    if "layers" not in config:
        raise UnsupportedModelError(f"model {k3_model.name!r} is subclassed; only Sequential and functional models can be bridged.")
    live = {layer.name: layer for layer in k3_model.layers}
    if type(k3_model).__name__ == "Sequential":
        model = _rebuild_sequential(tfk, config, dropped, live)
    else:
        model = _rebuild_functional(tfk, config, dropped, live)
    _copy_weights(k3_model, model)
    report = _compare(k3_model, model, samples=samples, seed=seed)
    report.dropped_config_keys = dropped
    if not report.max_relative_deviation <= MAX_RELATIVE_DEVIATION:
        raise BridgeError(
            f"the tf_keras rebuild of {k3_model.name!r} differs from the Keras 3 model: max relative deviation "
            f"{report.max_relative_deviation:.2e} > {MAX_RELATIVE_DEVIATION:.0e}.",
            hint="Please report this model's architecture; until then, save it with tf_keras directly.",
        )
    return model, report


def _rebuild_sequential(tfk: Any, config: dict[str, Any], dropped: dict[str, list[str]], live: dict[str, Any]) -> Any:
    entries = config["layers"]
    if not entries or entries[0]["class_name"] != "InputLayer":
        raise UnsupportedModelError("a Sequential model without an Input is not built; add keras.Input(shape=...) first.")
    inp = _make_input(tfk, entries[0])
    x = inp
    for entry in entries[1:]:
        x = _make_layer(tfk, entry, dropped, live)(x)
    return tfk.Model(inp, x, name=config.get("name"))


def _rebuild_functional(tfk: Any, config: dict[str, Any], dropped: dict[str, list[str]], live: dict[str, Any]) -> Any:
    tensors: dict[tuple[str, int, int], Any] = {}
    for entry in config["layers"]:
        name = entry["name"]
        if entry["class_name"] == "InputLayer":
            tensors[(name, 0, 0)] = _make_input(tfk, entry)
            continue
        layer = _make_layer(tfk, entry, dropped, live)
        for node_index, node in enumerate(entry.get("inbound_nodes", [])):
            args = _resolve(node.get("args", []), tensors, name)
            kwargs = _resolve(node.get("kwargs", {}), tensors, name)
            out = layer(*args, **kwargs)
            outs = out if isinstance(out, (list, tuple)) else [out]
            for i, t in enumerate(outs):
                tensors[(name, node_index, i)] = t
    inputs = [tensors[_key(ref)] for ref in _refs(config["input_layers"])]
    outputs = [tensors[_key(ref)] for ref in _refs(config["output_layers"])]
    return tfk.Model(
        inputs[0] if len(inputs) == 1 else inputs,
        outputs[0] if len(outputs) == 1 else outputs,
        name=config.get("name"),
    )


def _refs(spec: Any) -> list[list[Any]]:
    # Keras 3 writes a single input as ["name", 0, 0] rather than [["name", 0, 0]].
    if spec and isinstance(spec[0], str):
        return [spec]
    return list(spec)


def _key(ref: list[Any]) -> tuple[str, int, int]:
    return (str(ref[0]), int(ref[1]), int(ref[2]))


def _resolve(obj: Any, tensors: dict[tuple[str, int, int], Any], layer: str) -> Any:
    if isinstance(obj, dict):
        if obj.get("class_name") == "__keras_tensor__":
            key = _key(obj["config"]["keras_history"])
            if key not in tensors:
                raise UnsupportedModelError(f"layer {layer!r} consumes {key[0]!r} before it is defined; the graph is not in topological order.")
            return tensors[key]
        return {k: _resolve(v, tensors, layer) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_resolve(v, tensors, layer) for v in obj]
    return obj


def _make_input(tfk: Any, entry: dict[str, Any]) -> Any:
    cfg = entry["config"]
    shape = cfg.get("batch_shape") or cfg.get("batch_input_shape")
    return tfk.Input(batch_shape=tuple(shape), dtype=_dtype_name(cfg.get("dtype")), name=cfg.get("name", entry.get("name")))


def _make_layer(tfk: Any, entry: dict[str, Any], dropped: dict[str, list[str]], live: dict[str, Any]) -> Any:
    class_name = entry["class_name"]
    if class_name == "Lambda":
        # Only reached with --allow-unsafe: Keras 3 already deserialized the
        # function, and the two Keras versions serialize Python code differently,
        # so reuse the live function object. The output check still applies.
        src = live[entry["config"]["name"]]
        return tfk.layers.Lambda(src.function, name=src.name)
    cls = getattr(tfk.layers, class_name, None)
    if cls is None:
        raise UnsupportedModelError(f"layer {entry.get('name')!r}: tf_keras has no {class_name} layer to rebuild it with.")
    cfg = {k: _translate_value(v) for k, v in entry["config"].items()}
    cfg["dtype"] = _dtype_name(entry["config"].get("dtype"))
    accepted = _accepted_kwargs(cls)
    extra = {k: cfg.pop(k) for k in sorted(cfg) if k not in accepted}
    # Keys at their neutral value (None/False) change nothing; any other
    # dropped setting is reported, and the output comparison below guards it.
    meaningful = [k for k, v in extra.items() if v not in (None, False, 0, [], {})]
    if meaningful:
        dropped[str(entry["config"].get("name", entry.get("name")))] = meaningful
    try:
        return cls.from_config(cfg)
    except (TypeError, ValueError) as e:
        raise UnsupportedModelError(f"layer {entry.get('name')!r} ({class_name}) cannot be rebuilt in tf_keras: {e}") from e


def _accepted_kwargs(cls: type) -> set[str]:
    # Subclasses forward **kwargs to their bases (BatchNormalization -> its
    # base takes renorm, ...), so collect named parameters along the MRO.
    names: set[str] = set()
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        params = inspect.signature(init).parameters
        names |= {n for n, p in params.items() if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}
    return (names - {"self"}) | _BASE_LAYER_KWARGS


def _dtype_name(dtype: Any) -> str:
    if isinstance(dtype, dict):  # Keras 3 DTypePolicy
        name = dtype.get("config", {}).get("name", "float32")
    else:
        name = dtype or "float32"
    if name != "float32" and "float32" not in str(name):
        # mixed precision and quantized Keras 3 policies have no faithful tf_keras twin.
        raise UnsupportedModelError(f"dtype policy {name!r} is not supported; save the model in float32.")
    return "float32"


def _translate_value(v: Any) -> Any:
    """Keras 3 serialized objects ({module, class_name, config, registered_name}) -> tf_keras form."""
    if isinstance(v, dict) and "class_name" in v and "config" in v:
        if v["class_name"] == "__tuple__":
            return tuple(_translate_value(x) for x in v["config"]["value"])
        inner = v["config"]
        if isinstance(inner, dict):
            inner = {k: _translate_value(x) for k, x in inner.items()}
            # Keras 3 initializers carry input_axes/output_axes that tf_keras rejects.
            inner = {k: x for k, x in inner.items() if k not in ("input_axes", "output_axes")}
        return {"class_name": v["class_name"], "config": inner}
    if isinstance(v, (list, tuple)):
        return [_translate_value(x) for x in v]
    return v


def _copy_weights(k3_model: Any, tf_model: Any) -> None:
    for src in k3_model.layers:
        weights = src.get_weights()
        if not weights:
            continue
        dst = tf_model.get_layer(src.name)
        expected = [tuple(w.shape) for w in dst.get_weights()]
        got = [tuple(w.shape) for w in weights]
        if expected != got:
            raise BridgeError(f"layer {src.name!r}: Keras 3 weights {got} do not fit the tf_keras layer {expected}.")
        dst.set_weights(weights)


def _compare(k3_model: Any, tf_model: Any, *, samples: int, seed: int) -> BridgeReport:
    rng = np.random.default_rng(seed)
    shape = tuple(tf_model.inputs[0].shape[1:])
    x = rng.uniform(0.0, 1.0, size=(samples, *shape)).astype(np.float32)
    a = np.asarray(k3_model(x, training=False), dtype=np.float64)
    b = np.asarray(tf_model(x, training=False), dtype=np.float64)
    if a.shape != b.shape:
        raise BridgeError(f"the rebuilt model's output shape {b.shape} differs from the original {a.shape}.")
    abs_dev = float(np.max(np.abs(a - b))) if a.size else 0.0
    ref = float(np.max(np.abs(a))) if a.size else 0.0
    rel = abs_dev / ref if ref > 0 else abs_dev
    return BridgeReport(max_relative_deviation=rel, max_abs_deviation=abs_dev, samples=samples)
