"""Rebuild a Keras 3 model in tf_keras (Keras 2), where tfmot works.

Steps: walk the Keras 3 config graph, translate each layer's config into its
tf_keras equivalent (as :mod:`edgekit.intake.registry` says), inline nested
Sequential/functional models as ``outer/inner`` layers, drop inference-time
no-ops, rebuild what tf_keras lacks (``hard_silu``, Keras 3's
``hard_sigmoid``, ``x + 3.0`` style ops, ConvNeXt's LayerScale) from built-in
layers, copy the weights, and prove on random inputs that both models compute
the same outputs. A bridge whose outputs drift beyond
``MAX_RELATIVE_DEVIATION`` is an error, never a silent approximation.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from edgekit.errors import BridgeError, EdgekitError, UnsupportedModelError
from edgekit.intake import registry as reg
from edgekit.intake.layers import OP_MODULES

MAX_RELATIVE_DEVIATION = 1e-5

# Base-Layer kwargs tf_keras accepts on every layer (tf_keras' Layer.__init__ allow-list).
_BASE_LAYER_KWARGS = {"name", "trainable", "dtype", "dynamic", "input_dim", "input_shape", "batch_input_shape", "batch_size", "weights", "activity_regularizer", "autocast", "implementation"}
# Call kwargs that only matter in training; inference graphs drop them.
_TRAINING_KWARGS = {"training", "mask"}


@dataclass
class BridgeReport:
    """What the bridge did and how closely the rebuilt model matches."""

    max_relative_deviation: float
    max_abs_deviation: float
    samples: int
    dropped_config_keys: dict[str, list[str]] = field(default_factory=dict)  # layer -> Keras-3-only keys dropped
    removed_layers: list[dict[str, str]] = field(default_factory=list)  # inference no-ops: name, type
    inlined_models: list[str] = field(default_factory=list)  # nested models, as outer/inner paths
    rebuilt: list[dict[str, str]] = field(default_factory=list)  # name, what: rebuilt from primitive layers

    def to_dict(self) -> dict[str, Any]:
        return {
            "max_relative_deviation": self.max_relative_deviation,
            "max_abs_deviation": self.max_abs_deviation,
            "tolerance": MAX_RELATIVE_DEVIATION,
            "samples": self.samples,
            "dropped_config_keys": self.dropped_config_keys,
            "removed_layers": self.removed_layers,
            "inlined_models": self.inlined_models,
            "rebuilt": self.rebuilt,
        }

    def notes(self) -> list[str]:
        """One line per thing the user should know the bridge did."""
        out = nesting_notes(self.inlined_models, self.removed_layers)
        if len(self.rebuilt) <= 3:
            out.extend(f"layer {r['name']!r}: {r['what']}" for r in self.rebuilt)
        else:  # MobileNetV3 has dozens of `x + 3`, `x / 6`: one line, the rest in the bridge report
            shown = "; ".join(f"{r['name']!r}: {r['what']}" for r in self.rebuilt[:2])
            out.append(f"{len(self.rebuilt)} layers rebuilt from built-in layers, outputs proven equal ({shown}; …)")
        return out


def nesting_notes(inlined: list[str], removed: list[dict[str, str]]) -> list[str]:
    """The notes for nested models inlined and inference-time no-ops removed (the bridge and :mod:`~edgekit.intake.flatten` alike)."""
    out = []
    if inlined:
        out.append(f"nested model(s) inlined, their layers named outer/inner: {', '.join(inlined)}")
    if removed:
        what = ", ".join(f"{r['name']} ({r['type']})" for r in removed)
        out.append(f"removed {len(removed)} inference-time no-op layer(s), identity when not training: {what}")
    return out


def bridge_keras3(k3_model: Any, *, samples: int = 4, seed: int = 0) -> tuple[Any, BridgeReport]:
    """Rebuild ``k3_model`` (a loaded Keras 3 model) as a flat tf_keras model.

    Example::

        tfk_model, report = bridge_keras3(keras.applications.MobileNetV2(weights=None))
        print(report.max_relative_deviation)

    Returns:
        (tf_keras model, BridgeReport)

    Raises:
        UnsupportedModelError: a layer or connection the bridge cannot express (named, with what to do).
        BridgeError: weights do not fit, or outputs differ beyond tolerance.
    """
    from edgekit._tf import tf_keras

    tfk = tf_keras()
    config = k3_model.get_config()
    if "layers" not in config:
        raise UnsupportedModelError(
            f"model {k3_model.name!r} is subclassed ({type(k3_model).__name__}); only Sequential and functional models can be rebuilt in tf_keras.",
            hint="Rebuild it as a functional model (keras.Model(inputs, outputs)), or compress it without pruning/QAT.",
        )
    builder = _Builder(tfk)
    try:
        model = builder.top(type(k3_model).__name__, config, k3_model)
        builder.copy_weights()
    except EdgekitError:
        raise
    except Exception as e:  # noqa: BLE001 - tf_keras raises many types; the user gets the layer, not the stack
        raise UnsupportedModelError(
            f"model {k3_model.name!r} could not be rebuilt in tf_keras at layer {builder.current!r} "
            f"({type(e).__name__} while building it; EDGEKIT_DEBUG=1 shows the details).",
            hint="Replace that layer, or compress anyway: it converts the Keras 3 model without pruning/QAT.",
        ) from e
    report = _compare(k3_model, model, samples=samples, seed=seed)
    report.dropped_config_keys = builder.dropped
    report.removed_layers = builder.removed
    report.inlined_models = builder.inlined
    report.rebuilt = builder.rebuilt
    if not report.max_relative_deviation <= MAX_RELATIVE_DEVIATION:
        raise BridgeError(
            f"the tf_keras rebuild of {k3_model.name!r} differs from the Keras 3 model: max relative deviation "
            f"{report.max_relative_deviation:.2e} > {MAX_RELATIVE_DEVIATION:.0e}.",
            hint="Please report this model's architecture; until then, save it with tf_keras directly.",
        )
    return model, report


class _Builder:
    """Builds the flat tf_keras graph; remembers which Keras 3 layer feeds which tf_keras layer."""

    def __init__(self, tfk: Any) -> None:
        self.tfk = tfk
        self.dropped: dict[str, list[str]] = {}
        self.removed: list[dict[str, str]] = []
        self.inlined: list[str] = []
        self.rebuilt: list[dict[str, str]] = []
        self.current = "?"
        self._layers: dict[str, Callable[..., Any]] = {}  # path -> callable; a second call reuses it (shared weights)
        self._weights: list[tuple[str, Any, Any, Callable[[list[np.ndarray]], list[np.ndarray]]]] = []

    # -- graphs --

    def top(self, cls: str, config: dict[str, Any], live: Any) -> Any:
        if cls == "Sequential":
            entries = config["layers"]
            if not entries or entries[0]["class_name"] != "InputLayer":
                raise UnsupportedModelError(
                    "a Sequential model without an Input is not built; add keras.Input(shape=...) as its first layer and save it again."
                )
            inputs = [self._input(entries[0])]
            outputs = self._sequential(entries[1:], inputs[0], "", live)
        else:
            inputs, outputs = self._functional(config, None, "", live)
        return self.tfk.Model(
            inputs[0] if len(inputs) == 1 else inputs,
            outputs[0] if len(outputs) == 1 else outputs,
            name=config.get("name"),
        )

    def _sequential(self, entries: list[dict[str, Any]], x: Any, prefix: str, live: Any) -> list[Any]:
        for entry in entries:
            if entry["class_name"] == "InputLayer":
                continue
            x = self._call(entry, [x], {}, prefix, live)[0]
        return [x]

    def _functional(self, config: dict[str, Any], given: list[Any] | None, prefix: str, live: Any) -> tuple[list[Any], list[Any]]:
        tensors: dict[tuple[str, int, int], Any] = {}
        input_refs = _refs(config["input_layers"])
        if given is not None:
            if len(given) != len(input_refs):
                raise UnsupportedModelError(f"nested model {prefix.rstrip('/')!r} takes {len(input_refs)} inputs but is called with {len(given)}.")
            for ref, t in zip(input_refs, given):
                tensors[_key(ref)] = t
        for entry in config["layers"]:
            name = entry["name"]
            if entry["class_name"] == "InputLayer":
                if given is None:
                    tensors[(name, 0, 0)] = self._input(entry)
                continue
            for node_index, node in enumerate(entry.get("inbound_nodes", [])):
                self.current = prefix + name
                args = _resolve(node.get("args", []), tensors, prefix + name)
                kwargs = _resolve(node.get("kwargs", {}), tensors, prefix + name)
                outs = self._call(entry, args, kwargs, prefix, live)
                for i, t in enumerate(outs):
                    tensors[(name, node_index, i)] = t
        inputs = [tensors[_key(ref)] for ref in input_refs]
        outputs = [tensors[_key(ref)] for ref in _refs(config["output_layers"])]
        return inputs, outputs

    def _input(self, entry: dict[str, Any]) -> Any:
        cfg = entry["config"]
        shape = cfg.get("batch_shape") or cfg.get("batch_input_shape")
        return self.tfk.Input(batch_shape=tuple(shape), dtype=_dtype_name(cfg.get("dtype")), name=cfg.get("name", entry.get("name")))

    # -- one call of one layer --

    def _call(self, entry: dict[str, Any], args: list[Any], kwargs: dict[str, Any], prefix: str, live: Any) -> list[Any]:
        cls = entry["class_name"]
        name = entry.get("name") or entry["config"].get("name")
        path = prefix + name
        self.current = path
        kwargs = {k: v for k, v in kwargs.items() if k not in _TRAINING_KWARGS}
        module = entry.get("module") or ""
        if module.startswith(OP_MODULES):
            return [self._op(cls, path, args, kwargs)]
        spec = reg.lookup(cls)
        if spec is None and cls not in ("Lambda", "LayerScale"):
            raise UnsupportedModelError(
                f"layer {path!r} has type {cls}, which edgekit cannot rebuild in tf_keras.",
                hint="Replace it with a supported layer (README lists them), or compress anyway: it converts the Keras 3 model without pruning/QAT.",
            )
        if spec is not None and spec.bridge == reg.DROP:
            if not any(r["name"] == path for r in self.removed):
                self.removed.append({"name": path, "type": cls})
            return [_first_tensor(args)]
        sub_live = _live_child(live, name)
        if spec is not None and spec.bridge == reg.INLINE:
            sub_prefix = path + "/"
            if path not in self.inlined:
                self.inlined.append(path)
            inputs = _flat_tensors(args)
            if cls == "Sequential":
                return self._sequential(entry["config"]["layers"], inputs[0], sub_prefix, sub_live)
            return self._functional(entry["config"], inputs, sub_prefix, sub_live)[1]
        if path not in self._layers:
            self._layers[path] = self._make(entry, path, sub_live)
        out = self._layers[path](*args, **kwargs)
        return list(out) if isinstance(out, (list, tuple)) else [out]

    def _make(self, entry: dict[str, Any], path: str, src: Any) -> Callable[..., Any]:
        cls = entry["class_name"]
        if cls == "Lambda":
            # Only reached with --allow-unsafe: Keras 3 already deserialized the
            # function, and the two Keras versions serialize Python code differently,
            # so reuse the live function object. The output check still applies.
            return self.tfk.layers.Lambda(src.function, name=path)
        if cls == "LayerScale":
            return self._layer_scale(entry, path, src)
        klass = getattr(self.tfk.layers, cls, None)
        if klass is None:
            raise UnsupportedModelError(f"layer {path!r}: tf_keras has no {cls} layer to rebuild it with.", hint="Replace the layer, or compress anyway: it converts the Keras 3 model without pruning/QAT.")
        spec = reg.lookup(cls)
        cfg = {k: _translate_value(v) for k, v in entry["config"].items()}
        for k3_key, tfk_key in spec.rename if spec else ():
            if k3_key in cfg:
                cfg[tfk_key] = cfg.pop(k3_key)
        cfg["dtype"] = _dtype_name(entry["config"].get("dtype"))
        cfg["name"] = path
        accepted = _accepted_kwargs(klass)
        extra = {k: cfg.pop(k) for k in sorted(cfg) if k not in accepted}
        # Keys at their neutral value (None/False) change nothing; any other
        # dropped setting is reported, and the output comparison guards it.
        meaningful = [k for k, v in extra.items() if v not in (None, False, 0, [], {})]
        if meaningful:
            self.dropped[path] = meaningful
        post = None
        act = cfg.get("activation")
        if isinstance(act, str):
            aspec = reg.ACTIVATIONS.get(act)
            if aspec is None:
                raise UnsupportedModelError(
                    f"layer {path!r} uses activation {act!r}, which edgekit cannot rebuild in tf_keras.",
                    hint=f"Use one of: {', '.join(sorted(reg.ACTIVATIONS))}.",
                )
            if aspec.bridge == reg.REBUILT:
                cfg["activation"] = "linear"
                post = act
        try:
            layer = klass.from_config(cfg)
        except (TypeError, ValueError) as e:
            settings = ", ".join(f"{k}={v!r}" for k, v in sorted(cfg.items()) if k not in ("name", "dtype", "trainable") and not isinstance(v, dict))
            raise UnsupportedModelError(
                f"layer {path!r} ({cls}) cannot be rebuilt in tf_keras with its settings ({settings[:200]}).",
                hint="Use the layer's default settings, or compress anyway: it converts the Keras 3 model without pruning/QAT.",
            ) from e
        if src is not None:
            self._weights.append((path, src, layer, lambda w: w))
        if post is None:
            return layer
        self.rebuilt.append({"name": path, "what": f"activation {post!r} rebuilt from Rescaling/ReLU/Multiply layers (tf_keras lacks Keras 3's {post})"})
        act_fn = self._activation(post, path)
        return lambda *a, **k: act_fn(layer(*a, **k))

    def _activation(self, act: str, path: str) -> Callable[[Any], Any]:
        """Keras 3's hard_sigmoid = relu6(x + 3) / 6 and hard_silu = x * hard_sigmoid(x), from built-in layers."""
        L = self.tfk.layers

        def hard_sigmoid(x: Any, tag: str) -> Any:
            y = L.Rescaling(1.0, offset=3.0, name=f"{path}_{tag}_plus3")(x)
            y = L.ReLU(max_value=6.0, name=f"{path}_{tag}_relu6")(y)
            return L.Rescaling(1.0 / 6.0, name=f"{path}_{tag}_div6")(y)

        if act == "hard_sigmoid":
            return lambda x: hard_sigmoid(x, "hard_sigmoid")
        return lambda x: L.Multiply(name=f"{path}_{act}")([x, hard_sigmoid(x, act)])

    def _layer_scale(self, entry: dict[str, Any], path: str, src: Any) -> Any:
        # ConvNeXt's x * gamma (per channel) is a 1x1 depthwise convolution without
        # bias: a built-in layer that tfmot quantizes and TFLite runs in int8.
        layer = self.tfk.layers.DepthwiseConv2D(1, use_bias=False, name=path)
        self._weights.append((path, src, layer, lambda w: [np.asarray(w[0]).reshape(1, 1, -1, 1)]))
        self.rebuilt.append({"name": path, "what": "LayerScale (x * gamma) rebuilt as a 1x1 DepthwiseConv2D without bias"})
        return layer

    def _op(self, cls: str, path: str, args: list[Any], kwargs: dict[str, Any]) -> Any:
        """A Keras 3 operation applied to tensors in a functional graph (``x + 3.0``, ``x * y``)."""
        L = self.tfk.layers
        if kwargs or len(args) != 2:
            raise _unsupported_op(cls, path)
        a, b = args
        ta, tb = _is_tensor(a), _is_tensor(b)
        if ta and tb and cls in ("Add", "Multiply", "Subtract", "Maximum", "Minimum"):
            return getattr(L, cls)(name=path)([a, b])
        if ta != tb and isinstance(b if ta else a, (int, float)):
            t, c = (a, float(b)) if ta else (b, float(a))
            scale_offset = {
                "Add": (1.0, c),
                "Multiply": (c, 0.0),
                "Subtract": (1.0, -c) if ta else (-1.0, c),
                "Divide": (1.0 / c, 0.0) if ta and c else None,
                "TrueDivide": (1.0 / c, 0.0) if ta and c else None,
            }.get(cls)
            if scale_offset is not None:
                self.rebuilt.append({"name": path, "what": f"operation {cls.lower()} with the constant {c!r} rebuilt as a Rescaling layer"})
                return L.Rescaling(scale_offset[0], offset=scale_offset[1], name=path)(t)
        raise _unsupported_op(cls, path)

    # -- weights --

    def copy_weights(self) -> None:
        for path, src, dst, convert in self._weights:
            self.current = path
            weights = src.get_weights()
            if not weights:
                continue
            weights = convert(weights)
            expected = [tuple(w.shape) for w in dst.get_weights()]
            got = [tuple(np.shape(w)) for w in weights]
            if expected != got:
                raise BridgeError(f"layer {path!r}: Keras 3 weights {got} do not fit the tf_keras layer {expected}.")
            dst.set_weights(weights)


def _unsupported_op(cls: str, path: str) -> UnsupportedModelError:
    return UnsupportedModelError(
        f"layer {path!r} is the Keras operation {cls} applied to tensors in the model graph; edgekit rebuilds only "
        "+, -, *, / with a constant and element-wise Add/Subtract/Multiply/Maximum/Minimum of two tensors.",
        hint="Express it with keras.layers (e.g. layers.Add, layers.Rescaling), or compress without pruning/QAT.",
    )


def _live_child(live: Any, name: str) -> Any:
    if live is None:
        return None
    try:
        return live.get_layer(name)
    except (ValueError, AttributeError):
        return None


def _is_tensor(v: Any) -> bool:
    return hasattr(v, "shape") and hasattr(v, "dtype") and not isinstance(v, (int, float, np.ndarray))


def _flat_tensors(obj: Any) -> list[Any]:
    if isinstance(obj, dict):
        return [t for v in obj.values() for t in _flat_tensors(v)]
    if isinstance(obj, (list, tuple)):
        return [t for v in obj for t in _flat_tensors(v)]
    return [obj] if _is_tensor(obj) else []


def _first_tensor(args: list[Any]) -> Any:
    flat = _flat_tensors(args)
    if not flat:
        raise UnsupportedModelError("an inference no-op layer is called without a tensor input.")
    return flat[0]


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
