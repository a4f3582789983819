"""Flatten a tf_keras model with nested Sequential/functional models into one functional graph.

Why: the most common TF 2.x transfer-learning file is a tf_keras model whose
base is itself a model (``x = MobileNetV2(include_top=False)(x, training=False)``),
often behind a nested Sequential of augmentation layers. tfmot prunes and
quantizes only flat models, and reports and ``--max-accuracy-drop`` float
layers must name the layers the user wrote. Keras 3 files get the same
treatment from the bridge (:mod:`edgekit.intake.bridge`); this module does it
for tf_keras files without rebuilding anything: the flat model calls the
*same layer objects* (same weights, nothing copied), renamed ``outer/inner``.

How: walk the graph the way tf_keras' own ``Functional._run_internal_graph``
does (nodes by decreasing depth, each node's ``call_args``/``call_kwargs``,
tensors keyed by KerasTensor id), descending into every nested graph model
and replaying each call on new symbolic inputs. A nested model or a layer
called more than once is replayed once per call (its weights shared).
``training=`` is dropped from every call (edgekit runs inference and
fine-tunes with the outer model's training flag), and inference-time no-ops
(the registry's DROP rows: RandomFlip, Dropout, ...) are removed, as the
Keras 3 bridge does.

The walk is planned first (any refusal happens before anything is changed);
then the layers are renamed and their old graph connections cleared, so that
``layer.inbound_nodes`` / ``layer.output`` describe the flat model only. The
model passed in can still be *called* afterwards (the equality check does),
but must not be used to build new graphs. :func:`edgekit.intake.load_model`
proves the flat model equal to the saved one on random inputs.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Hashable, NamedTuple

from edgekit.errors import EdgekitError, UnsupportedModelError
from edgekit.intake import registry as reg

# Call kwargs dropped from every replayed call: inference graphs pass training=False anyway.
_DROPPED_KWARGS = frozenset({"training"})
_MODEL_CLASSES = reg.names(bridge=reg.INLINE)  # Sequential, Functional, Model


class Flattened(NamedTuple):
    """What :func:`flatten_nested` returns.

    Attributes:
        model: the flat tf_keras functional model (the input's layer objects, renamed outer/inner).
        inlined: the nested models, as outer/inner paths, in graph order.
        removed: inference-time no-op layers left out: ``{"name", "type"}`` (name as outer/inner).
    """

    model: Any
    inlined: list[str]
    removed: list[dict[str, str]]

    def notes(self) -> list[str]:
        """One line per thing the user should know (the same wording as the Keras 3 bridge's notes)."""
        from edgekit.intake.bridge import nesting_notes

        return nesting_notes(self.inlined, self.removed)


def is_inlinable(layer: Any) -> bool:
    """A nested model edgekit inlines: tf_keras' own functional or Sequential class.

    A subclass of them (a custom model, only loaded with ``allow_unsafe``) may
    override ``call``, so it stays one opaque layer, as before.
    """
    cls = type(layer)
    if not cls.__module__.startswith("tf_keras") or cls.__name__ not in _MODEL_CLASSES:
        return False
    return _is_graph(layer) or cls.__name__ == "Sequential"


def has_nested_models(model: Any) -> bool:
    """Whether any top-level layer of ``model`` is a Sequential/functional model."""
    return any(is_inlinable(layer) for layer in getattr(model, "layers", []))


def flatten_nested(model: Any) -> Flattened:
    """One functional tf_keras model calling the inner layers of every nested model directly.

    Example::

        flat, inlined, removed = flatten_nested(tf_keras.models.load_model("model.h5"))
        flat.get_layer("mobilenetv2_0.35_96/block_1_expand")

    Args:
        model: a tf_keras functional or Sequential model, as loaded (it is modified: see the module docstring).

    Returns:
        :class:`Flattened` (model, inlined paths, removed no-ops).

    Raises:
        UnsupportedModelError: a graph that cannot be replayed flat (named, with what to do).
    """
    from edgekit._tf import tf_keras

    tfk = tf_keras()
    if not _is_graph(model):
        raise UnsupportedModelError(
            f"model {model.name!r} is not a functional or Sequential graph; edgekit can flatten only those.",
            hint="Rebuild it as a functional model (tf_keras.Model(inputs, outputs)).",
        )
    current = "?"
    try:
        plan = _Plan()
        top_inputs = [(_TOP, _tid(t)) for t in model.inputs]
        plan.walk(model, _TOP, "")
        outputs = [plan.resolve((_TOP, _tid(t))) for t in model.outputs]
        plan.check_names(model)

        # -- from here on the layers change: renamed, their old graph forgotten --
        for layer, path in plan.names.values():
            layer._name = path
        for layer in plan.called():
            layer._inbound_nodes = []
            layer._outbound_nodes = []
        tensors: dict[Hashable, Any] = {}
        for key, kt in zip(top_inputs, model.inputs):
            history = getattr(kt, "_keras_history", None)
            name = history.layer.name if history is not None else None
            tensors[key] = tfk.Input(batch_shape=tuple(kt.shape), dtype=kt.dtype, name=name)
        for step in plan.steps:
            current = step.path
            if not all(plan.resolve(k) in tensors for k in step.input_keys):
                continue  # not reachable from the model's inputs; tf_keras skips it too
            args, kwargs = _fill((step.args, step.kwargs), tensors, plan)
            out = _first_tensor(args, kwargs, step.path) if step.drop else step.layer(*args, **kwargs)
            flat_out = _nest_flatten(out)
            if len(flat_out) != len(step.output_keys):
                raise UnsupportedModelError(
                    f"layer {step.path!r} gives {len(flat_out)} outputs when replayed, but the saved graph has {len(step.output_keys)}."
                )
            for key, t in zip(step.output_keys, flat_out):
                tensors[key] = t
        current = "the model outputs"
        if any(k not in tensors for k in outputs):
            raise UnsupportedModelError(f"model {model.name!r}: its outputs cannot be reached from its inputs once nested models are inlined.")
        ins = [tensors[k] for k in top_inputs]
        outs = [tensors[k] for k in outputs]
        flat = tfk.Model(ins[0] if len(ins) == 1 else ins, outs[0] if len(outs) == 1 else outs, name=model.name)
    except EdgekitError:
        raise
    except Exception as e:  # noqa: BLE001 - tf_keras raises many types; the user gets the layer, not the stack
        raise UnsupportedModelError(
            f"model {model.name!r}: inlining its nested models failed at layer {current!r} ({type(e).__name__}; EDGEKIT_DEBUG=1 shows the details).",
            hint="Apply the inner model's layers directly to the outer graph, or save the model with Keras 3 (model.save('model.keras')).",
        ) from e
    return Flattened(flat, plan.inlined, plan.removed)


# --------------------------------------------------------------------- planning

_TOP: tuple[int, ...] = ()  # the call context of the outer model; each nested-model call appends its own number


@dataclass(frozen=True)
class _Ref:
    """A symbolic tensor of the original graph, in one call context."""

    key: Hashable


@dataclass
class _Step:
    layer: Any
    path: str
    args: Any  # call_args with KerasTensors replaced by _Ref
    kwargs: dict[str, Any]
    input_keys: list[Hashable]
    output_keys: list[Hashable]
    drop: bool = False


@dataclass
class _Plan:
    steps: list[_Step] = field(default_factory=list)
    alias: dict[Hashable, Hashable] = field(default_factory=dict)  # a nested model's input/output -> the tensor it is
    names: dict[int, tuple[Any, str]] = field(default_factory=dict)  # id(layer) -> (layer, outer/inner path)
    inlined: list[str] = field(default_factory=list)
    removed: list[dict[str, str]] = field(default_factory=list)
    calls: int = 0  # nested-model calls so far: each gets its own context, so a model called twice is replayed twice

    def resolve(self, key: Hashable) -> Hashable:
        seen = set()
        while key in self.alias:
            if key in seen:  # cannot happen in a DAG; guards against an endless loop
                break
            seen.add(key)
            key = self.alias[key]
        return key

    def called(self) -> list[Any]:
        out: dict[int, Any] = {}
        for s in self.steps:
            if not s.drop:
                out.setdefault(id(s.layer), s.layer)
        return list(out.values())

    def walk(self, model: Any, ctx: tuple[int, ...], prefix: str) -> None:
        if _is_graph(model):
            for depth in sorted(model._nodes_by_depth, reverse=True):
                for node in model._nodes_by_depth[depth]:
                    if not node.is_input:
                        self._node(node, ctx, prefix)
        else:  # a Sequential that never got a graph: its layers in order
            prev = (ctx, "seq_input", 0)
            for i, layer in enumerate(model.layers):
                out = (ctx, "seq", i)
                self._call(layer, prefix, (_Ref(prev),), {}, [prev], [out], ctx)
                prev = out
            self.alias[(ctx, "seq_output", 0)] = prev

    def _node(self, node: Any, ctx: tuple[int, ...], prefix: str) -> None:
        import tensorflow as tf

        ids = {_tid(t) for t in node.keras_inputs}

        def ref(v: Any) -> Any:
            return _Ref((ctx, _tid(v))) if _tid(v) in ids else v

        args = tf.nest.map_structure(ref, node.call_args)
        kwargs = {k: tf.nest.map_structure(ref, v) for k, v in node.call_kwargs.items() if k not in _DROPPED_KWARGS}
        inputs = [(ctx, _tid(t)) for t in node.keras_inputs]
        outputs = [(ctx, i) for i in node.flat_output_ids]
        self._call(node.layer, prefix, args, kwargs, inputs, outputs, ctx)

    def _call(self, layer: Any, prefix: str, args: Any, kwargs: dict[str, Any], inputs: list[Hashable], outputs: list[Hashable],
              ctx: tuple[int, ...]) -> None:  # fmt: skip
        path = prefix + layer.name
        if is_inlinable(layer):
            self.calls += 1
            self._inline(layer, path, args, kwargs, outputs, ctx + (self.calls,))
            return
        spec = reg.lookup(type(layer).__name__)
        drop = spec is not None and spec.noop and type(layer).__module__.startswith("tf_keras")
        if drop:
            if not any(r["name"] == path for r in self.removed):
                self.removed.append({"name": path, "type": type(layer).__name__})
        else:
            self.names.setdefault(id(layer), (layer, path))  # a shared layer keeps the name of its first call
        self.steps.append(_Step(layer, path, args, kwargs, inputs, outputs, drop))

    def _inline(self, model: Any, path: str, args: Any, kwargs: dict[str, Any], outputs: list[Hashable], ctx: tuple[int, ...]) -> None:
        import tensorflow as tf

        extra = sorted(k for k, v in kwargs.items() if k != "inputs" and v is not None)
        if extra:
            raise UnsupportedModelError(
                f"layer {path!r} is a nested model called with {', '.join(extra)}=...; edgekit can inline a nested model called with its inputs only.",
                hint="Call the inner model as inner(x) (training=False is fine), or apply its layers directly to the outer graph.",
            )
        given = [v.key for v in tf.nest.flatten((args, kwargs.get("inputs"))) if isinstance(v, _Ref)]
        if _is_graph(model):
            inner_in = [(ctx, _tid(t)) for t in model.inputs]
            inner_out = [(ctx, _tid(t)) for t in model.outputs]
        else:
            inner_in, inner_out = [(ctx, "seq_input", 0)], [(ctx, "seq_output", 0)]
        if len(given) != len(inner_in) or len(outputs) != len(inner_out):
            raise UnsupportedModelError(
                f"layer {path!r} is a nested model with {len(inner_in)} input(s) and {len(inner_out)} output(s), "
                f"called with {len(given)} tensor(s) giving {len(outputs)}; edgekit cannot inline that call.",
                hint="Apply the inner model's layers directly to the outer graph.",
            )
        if path not in self.inlined:
            self.inlined.append(path)
        for inner, outer in zip(inner_in, given):
            self.alias[inner] = outer
        self.walk(model, ctx, path + "/")
        for outer, inner in zip(outputs, inner_out):
            self.alias[outer] = inner

    def check_names(self, model: Any) -> None:
        seen: set[str] = set()
        for _, path in self.names.values():
            if path in seen:
                raise UnsupportedModelError(
                    f"model {model.name!r}: two different layers would both be named {path!r} once nested models are inlined.",
                    hint="Give the layers unique names (name=...) and save the model again.",
                )
            seen.add(path)


# --------------------------------------------------------------------- helpers


def _is_graph(model: Any) -> bool:
    return bool(getattr(model, "_is_graph_network", False)) and hasattr(model, "_nodes_by_depth")


def _tid(t: Any) -> str:
    return str(id(t))  # the key tf_keras' own Functional._run_internal_graph uses


def _fill(template: Any, tensors: dict[Hashable, Any], plan: _Plan) -> Any:
    """``template`` with every _Ref replaced by the flat graph's tensor."""
    import tensorflow as tf

    return tf.nest.map_structure(lambda v: tensors[plan.resolve(v.key)] if isinstance(v, _Ref) else v, template)


def _nest_flatten(obj: Any) -> list[Any]:
    import tensorflow as tf

    return tf.nest.flatten(obj)


def _first_tensor(args: Any, kwargs: dict[str, Any], path: str) -> Any:
    for v in _nest_flatten((args, kwargs)):
        if hasattr(v, "shape") and hasattr(v, "dtype"):
            return v
    raise UnsupportedModelError(f"layer {path!r} is an inference no-op called without a tensor input; edgekit cannot remove it.")
