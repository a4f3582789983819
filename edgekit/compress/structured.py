"""Structured channel pruning: physically remove Conv/Dense filters and everything tied to them.

The model's graph is walked once to find *channel groups*: the output
channels of a producer (Conv2D, Dense, SeparableConv2D, Conv2DTranspose)
travel unchanged through BatchNormalization, DepthwiseConv2D, activations,
pooling and padding to the next layer's input channels. Add, Multiply and the
other element-wise merges tie their inputs' groups together (the same indices
go in every branch); Concatenate lays groups side by side (indices offset);
Flatten repeats the channels once per spatial position. A group is left whole
when it reaches the model output, feeds a layer edgekit does not know how to
slice, or mixes channels (softmax).

Each prunable group keeps its highest-norm channels (L1 or L2 of the filters,
summed over the coupled producers after normalising each by its mean), the
layer configs are shrunk, and a new dense tf_keras model is built with the
sliced weights. To support another layer type, give its row in
edgekit/intake/registry.py the right ``structured`` role (and, for a
weighted one, a case in ``_slice_weights``).
"""
from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from edgekit.errors import ConfigError, UnsupportedModelError, first_line
from edgekit.intake import registry as _reg

# The layer roles come from the one layer registry (edgekit/intake/registry.py).
# Channel-preserving layers without per-channel weights: output channels = input channels.
_PASS = _reg.names(structured=_reg.PASS) - {"InputLayer"}
# Channel-preserving layers whose weights are per channel and are sliced with it
# (LayerScale reaches this module already rebuilt as a DepthwiseConv2D).
_PASS_WEIGHTED = _reg.names(structured=_reg.PASS_WEIGHTED) - {"LayerScale"}
# Layers that create new channels (their output channels can be removed): the config key to shrink.
_PRODUCERS = {name: "units" if name == "Dense" else "filters" for name in sorted(_reg.names(structured=_reg.PRODUCER))}
_ELEMENTWISE = _reg.names(structured=_reg.ELEMENTWISE)
_CHANNEL_MIXING_ACTIVATIONS = {a.name for a in _reg.ACTIVATIONS.values() if a.channel_mixing}


@dataclass
class GroupReport:
    """One set of channels pruned together."""

    producers: list[str]  # layers whose output filters are removed
    channels_before: int
    channels_after: int
    coupled: bool  # joined by Add/Multiply/...: the same indices were removed in every branch
    kept_whole: str | None = None  # why nothing was removed, when nothing was

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class StructuredReport:
    ratio: float
    norm: str
    groups: list[GroupReport]
    layers: list[dict[str, Any]]  # per layer: name, type, params/MACs before and after
    params_before: int
    params_after: int
    macs_before: int
    macs_after: int

    @property
    def macs_reduction(self) -> float:
        return self.macs_before / self.macs_after if self.macs_after else float("inf")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["macs_reduction"] = round(self.macs_reduction, 4)
        return d


@dataclass
class ChannelPlan:
    """Which channels stay, per layer: ``layers[name] = (kept input indices | None, kept output indices | None)``.

    None means "all of them" (that axis is not touched). Indices are into the
    original model's weights, so a test can zero exactly what was removed.
    """

    layers: dict[str, tuple[np.ndarray | None, np.ndarray | None]] = field(default_factory=dict)
    groups: list[GroupReport] = field(default_factory=list)


def prune_channels(model: Any, ratio: float, *, norm: str = "l1") -> tuple[Any, StructuredReport, ChannelPlan]:
    """Remove ``ratio`` of the channels of every prunable group; return a new, smaller dense model.

    ``model`` is not modified. The result is a functional tf_keras model with
    the same inputs and outputs, ready for fine-tuning, QAT and conversion.

    Example::

        small, report, _ = prune_channels(model, 0.5)
        print(f"MACs {report.macs_before:,} -> {report.macs_after:,}")

    Raises:
        ConfigError: ``ratio`` outside (0, 1), unknown ``norm``, or nothing in the model can be pruned.
        UnsupportedModelError: a subclassed model, a nested model or a shared layer.
    """
    from edgekit._tf import tf_keras
    from edgekit.intake import layer_stats

    if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not 0 < ratio < 1:
        raise ConfigError(f"structured={ratio!r} is not valid; expected the fraction of channels to remove, in (0, 1), e.g. 0.5.")
    if norm not in ("l1", "l2"):
        raise ConfigError(f"structured_norm={norm!r} is not valid; expected 'l1' or 'l2'.")
    keras = tf_keras()
    fmodel = _as_functional(keras, model)
    graph = _Graph(fmodel)
    plan = graph.plan(float(ratio), norm)
    if not any(g.channels_after < g.channels_before for g in plan.groups):
        why = "; ".join(sorted({g.kept_whole for g in plan.groups if g.kept_whole})) or "no Conv2D/Dense layers"
        raise ConfigError(
            f"structured pruning found no channels it can remove in model {model.name!r} ({why}).",
            hint="Structured pruning needs Conv2D/Dense layers whose outputs feed other layers, not only the model output.",
        )
    config = graph.shrunk_config(plan)
    try:
        small = keras.Model.from_config(config)
    except Exception as e:  # noqa: BLE001 - Keras raises many types for an inconsistent config
        raise UnsupportedModelError(
            f"the channel-pruned model could not be rebuilt ({first_line(e, limit=200)}).",
            hint="Please report this architecture; use --sparsity instead meanwhile.",
        ) from e
    for layer in small.layers:
        old = graph.layers[layer.name]
        weights = old.get_weights()
        if not weights:
            continue
        keep_in, keep_out = plan.layers.get(layer.name, (None, None))
        layer.set_weights(_slice_weights(type(old).__name__, weights, keep_in, keep_out))

    before, after = layer_stats(fmodel), layer_stats(small)
    after_by_name = {r.name: r for r in after}
    rows = []
    for r in before:
        a = after_by_name.get(r.name)
        if r.params or r.macs:
            rows.append(
                {"name": r.name, "type": r.type, "params_before": r.params, "params_after": a.params if a else 0,
                 "macs_before": r.macs, "macs_after": a.macs if a else 0}
            )  # fmt: skip
    report = StructuredReport(
        ratio=float(ratio),
        norm=norm,
        groups=plan.groups,
        layers=rows,
        params_before=sum(r.params for r in before),
        params_after=sum(r.params for r in after),
        macs_before=sum(r.macs for r in before),
        macs_after=sum(r.macs for r in after),
    )
    return small, report, plan


def _as_functional(keras: Any, model: Any) -> Any:
    """A functional view of the model; a Sequential one is re-wired on a copy so ``model`` keeps its graph."""
    if type(model).__name__ == "Sequential":
        from edgekit.compress.finetune import copy_model

        seq = copy_model(model)
        inp = keras.Input(batch_shape=seq.input_shape, name=f"{seq.name}_input")
        x = inp
        for layer in seq.layers:
            x = layer(x)
        return keras.Model(inp, x, name=model.name)
    config = model.get_config() if hasattr(model, "get_config") else None
    if not isinstance(config, dict) or "layers" not in config:
        raise UnsupportedModelError(
            f"model {model.name!r} is subclassed; structured pruning needs a Sequential or functional model."
        )
    return model


def _refs(obj: Any) -> list[str]:
    """Layer names referenced by a node record, in call order ([name, node, tensor, kwargs] lists)."""
    if isinstance(obj, list):
        if len(obj) >= 3 and isinstance(obj[0], str) and isinstance(obj[1], int) and isinstance(obj[2], int):
            return [obj[0], *(_refs(obj[3]) if len(obj) > 3 else [])]
        return [name for item in obj for name in _refs(item)]
    if isinstance(obj, dict):
        return [name for v in obj.values() for name in _refs(v)]
    return []


class _Graph:
    """Channel groups of a functional model, and the bookkeeping to shrink it."""

    def __init__(self, model: Any):
        self.model = model
        self.config = model.get_config()
        self.layers = {layer.name: layer for layer in model.layers}
        self.parent: dict[int, int] = {}
        self.size: dict[int, int] = {}
        self.fixed: dict[int, str] = {}  # group -> why it is kept whole
        self.producers: dict[int, list[str]] = {}  # group -> producer layers
        self.desc: dict[str, tuple[tuple[int, ...], int]] = {}  # layer -> (groups along the channel axis, repeat)
        self.inputs: dict[str, list[str]] = {}
        self._walk()

    # --------------------------------------------------------- union-find

    def _new(self, size: int, producer: str | None = None, fixed: str | None = None) -> int:
        g = len(self.parent)
        self.parent[g], self.size[g] = g, int(size)
        self.producers[g] = [producer] if producer else []
        if fixed:
            self.fixed[g] = fixed
        return g

    def find(self, g: int) -> int:
        while self.parent[g] != g:
            self.parent[g] = self.parent[self.parent[g]]
            g = self.parent[g]
        return g

    def _union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[rb] = ra

    def _fix(self, desc: tuple[tuple[int, ...], int], why: str) -> None:
        for g in desc[0]:
            self.fixed.setdefault(g, why)

    def channels(self, desc: tuple[tuple[int, ...], int]) -> int:
        return sum(self.size[g] for g in desc[0])

    # ---------------------------------------------------------------- walk

    def _walk(self) -> None:
        entries = self.config["layers"]
        for entry in entries:
            name = entry["name"]
            layer = self.layers[name]
            if hasattr(layer, "layers") and type(layer).__name__ != "InputLayer":
                raise UnsupportedModelError(
                    f"layer {name!r} is a nested model; structured pruning needs a flat model.",
                    hint="Rebuild the model without nesting (call the inner model's layers directly).",
                )
            if len(entry.get("inbound_nodes") or []) > 1:
                raise UnsupportedModelError(f"layer {name!r} is shared (called more than once); structured pruning cannot slice it.")
            self.inputs[name] = _refs(entry.get("inbound_nodes") or [])
        pending = [e["name"] for e in entries]
        while pending:
            progressed = False
            for name in list(pending):
                if all(i in self.desc for i in self.inputs[name]):
                    self.desc[name] = self._visit(name, self.layers[name], [self.desc[i] for i in self.inputs[name]])
                    pending.remove(name)
                    progressed = True
            if not progressed:
                raise UnsupportedModelError(f"the model graph has layers with unresolvable inputs: {', '.join(pending[:5])}.")
        for ref in self.config.get("output_layers", []):
            self._fix(self.desc[ref[0]], "feeds the model output")

    def _visit(self, name: str, layer: Any, ins: list[tuple[tuple[int, ...], int]]) -> tuple[tuple[int, ...], int]:
        kind = type(layer).__name__
        cfg = layer.get_config()
        out_c = _last_dim(layer.output_shape)
        if kind == "InputLayer":
            return ((self._new(out_c, fixed="is the model input"),), 1)
        rank = len(_first_shape(layer.input_shape))
        axis = cfg.get("axis", -1)
        axis = axis[0] if isinstance(axis, (list, tuple)) and len(axis) == 1 else axis
        last_axis = axis in (-1, rank - 1)
        channels_last = cfg.get("data_format", "channels_last") in ("channels_last", None)
        simple = len(ins) == 1 and channels_last

        if kind in _PRODUCERS and simple and _producer_ok(kind, cfg):
            why = None
            if cfg.get("activation") in _CHANNEL_MIXING_ACTIVATIONS:
                why = f"{name} applies {cfg['activation']} across its channels"
            return ((self._new(out_c, producer=name, fixed=why),), 1)
        if kind in _PASS and simple and _pass_ok(kind, cfg):
            return ins[0]
        if kind == "BatchNormalization" and simple and last_axis:
            return ins[0]
        if kind == "DepthwiseConv2D" and simple and cfg.get("depth_multiplier", 1) == 1:
            return ins[0]
        if kind == "PReLU" and simple:
            return ins[0]
        if kind == "Flatten" and simple:
            spatial = int(np.prod(_first_shape(layer.input_shape)[1:-1] or [1]))
            groups, repeat = ins[0]
            return (groups, repeat * spatial)
        if kind == "Reshape" and simple and _channel_reshape(layer, ins[0], self.channels(ins[0])):
            return ins[0]
        if kind == "Concatenate" and channels_last and last_axis and all(r == 1 for _, r in ins):
            return (tuple(g for groups, _ in ins for g in groups), 1)
        if kind in _ELEMENTWISE and len(ins) > 1 and self._couple(ins, name):
            return ins[0]

        for d in ins:
            self._fix(d, f"feeds {name} ({kind}), which edgekit cannot slice channel-wise")
        return ((self._new(out_c, fixed=f"comes from {name} ({kind})"),), 1)

    def _couple(self, ins: list[tuple[tuple[int, ...], int]], name: str) -> bool:
        first_groups, first_repeat = ins[0]
        for groups, repeat in ins[1:]:
            if repeat != first_repeat or len(groups) != len(first_groups):
                return False
            if any(self.size[a] != self.size[b] for a, b in zip(first_groups, groups)):
                return False
        for groups, _ in ins[1:]:
            for a, b in zip(first_groups, groups):
                self._union(a, b)
        return True

    # ---------------------------------------------------------------- plan

    def plan(self, ratio: float, norm: str) -> ChannelPlan:
        members: dict[int, list[int]] = {}
        for g in self.parent:
            members.setdefault(self.find(g), []).append(g)
        keep: dict[int, np.ndarray] = {}
        reports = []
        for root, gs in members.items():
            producers = [p for g in gs for p in self.producers[g]]
            if not producers:
                continue
            size = self.size[root]
            why = next((self.fixed[g] for g in gs if g in self.fixed), None)
            if why is None:
                n_keep = max(1, size - int(round(size * ratio)))
                score = sum(_normalised(self._filter_norms(p, norm)) for p in producers)
                keep[root] = np.sort(np.argsort(-score, kind="stable")[:n_keep])
            after = len(keep[root]) if root in keep else size
            reports.append(GroupReport(producers, size, after, len(producers) > 1, why))
        plan = ChannelPlan(groups=reports)
        for name in self.desc:
            kind = type(self.layers[name]).__name__
            keep_out = self._keep(self.desc[name], keep) if kind in _PRODUCERS else None
            keep_in = None
            if self.inputs[name] and kind in (*_PRODUCERS, *_PASS_WEIGHTED) and self._is_sliced(name):
                keep_in = self._keep(self.desc[self.inputs[name][0]], keep)
            if keep_in is not None or keep_out is not None:
                plan.layers[name] = (keep_in, keep_out)
        self._keep_by_root = keep
        return plan

    def _is_sliced(self, name: str) -> bool:
        # A layer that fell through to "cannot slice" got a fresh fixed group; its weights stay whole.
        kind = type(self.layers[name]).__name__
        if kind in _PRODUCERS:
            return len(self.desc[name][0]) == 1 and bool(self.producers[self.desc[name][0][0]])
        return self.desc[name] == self.desc[self.inputs[name][0]]

    def _keep(self, desc: tuple[tuple[int, ...], int], keep: dict[int, np.ndarray]) -> np.ndarray:
        groups, repeat = desc
        parts, offset = [], 0
        for g in groups:
            root = self.find(g)
            idx = keep.get(root, np.arange(self.size[g]))
            parts.append(idx + offset)
            offset += self.size[g]
        base = np.concatenate(parts) if parts else np.arange(0)
        if repeat == 1:
            return base
        return np.concatenate([p * offset + base for p in range(repeat)])

    def _filter_norms(self, name: str, norm: str) -> np.ndarray:
        layer = self.layers[name]
        kind = type(layer).__name__
        w = layer.get_weights()
        if kind == "SeparableConv2D":
            k, axis = w[1], 3
        elif kind == "Conv2DTranspose":
            k, axis = w[0], 2
        else:
            k, axis = w[0], w[0].ndim - 1
        flat = np.moveaxis(np.abs(k) if norm == "l1" else k * k, axis, 0).reshape(k.shape[axis], -1).sum(axis=1)
        return flat if norm == "l1" else np.sqrt(flat)

    # ------------------------------------------------------------- rebuild

    def shrunk_config(self, plan: ChannelPlan) -> dict[str, Any]:
        config = copy.deepcopy(self.config)
        for entry in config["layers"]:
            name = entry["name"]
            kind = entry["class_name"]
            if kind in _PRODUCERS and name in plan.layers and plan.layers[name][1] is not None:
                entry["config"][_PRODUCERS[kind]] = int(len(plan.layers[name][1]))
            if kind == "Reshape" and self.desc[name] == self.desc[self.inputs[name][0]]:
                target = list(entry["config"]["target_shape"])
                target[-1] = int(len(self._keep(self.desc[name], self._keep_by_root)))
                entry["config"]["target_shape"] = target
        return config


def _producer_ok(kind: str, cfg: dict[str, Any]) -> bool:
    if kind == "Conv2D":
        return cfg.get("groups", 1) == 1
    if kind == "SeparableConv2D":
        return cfg.get("depth_multiplier", 1) == 1
    return True


def _pass_ok(kind: str, cfg: dict[str, Any]) -> bool:
    if kind == "Activation":
        return cfg.get("activation") not in _CHANNEL_MIXING_ACTIVATIONS
    if kind == "Rescaling":
        return all(np.ndim(cfg.get(k, 0)) == 0 for k in ("scale", "offset"))  # a per-channel scale would need slicing
    return True


def _channel_reshape(layer: Any, desc: tuple[tuple[int, ...], int], channels: int) -> bool:
    # (N, C) -> (N, 1, ..., 1, C), as squeeze-and-excite blocks do: channels stay last and alone.
    in_shape = _first_shape(layer.input_shape)
    target = list(layer.get_config().get("target_shape", []))
    return desc[1] == 1 and len(in_shape) == 2 and bool(target) and target[-1] == channels and all(t == 1 for t in target[:-1])


def _normalised(v: np.ndarray) -> np.ndarray:
    return v / (float(np.mean(v)) + 1e-12)


def _first_shape(s: Any) -> list[Any]:
    if isinstance(s, list) and s and isinstance(s[0], (list, tuple)):
        s = s[0]
    return list(s) if s is not None else []


def _last_dim(s: Any) -> int:
    shape = _first_shape(s)
    return int(shape[-1]) if shape and shape[-1] is not None else 0


def _slice_weights(kind: str, weights: list[np.ndarray], keep_in: np.ndarray | None, keep_out: np.ndarray | None) -> list[np.ndarray]:
    """The layer's weights with removed input/output channels cut out."""

    def take(a: np.ndarray, idx: np.ndarray | None, axis: int) -> np.ndarray:
        return a if idx is None else np.take(a, idx, axis=axis)

    if kind == "Conv2D":
        return [take(take(weights[0], keep_in, 2), keep_out, 3), *[take(b, keep_out, 0) for b in weights[1:]]]
    if kind == "Dense":
        return [take(take(weights[0], keep_in, 0), keep_out, 1), *[take(b, keep_out, 0) for b in weights[1:]]]
    if kind == "SeparableConv2D":
        dw, pw, *rest = weights
        return [take(dw, keep_in, 2), take(take(pw, keep_in, 2), keep_out, 3), *[take(b, keep_out, 0) for b in rest]]
    if kind == "Conv2DTranspose":
        return [take(take(weights[0], keep_out, 2), keep_in, 3), *[take(b, keep_out, 0) for b in weights[1:]]]
    if kind == "DepthwiseConv2D":
        return [take(weights[0], keep_in, 2), *[take(b, keep_in, 0) for b in weights[1:]]]
    if kind == "BatchNormalization":
        return [take(w, keep_in, 0) for w in weights]
    if kind == "PReLU":
        # alpha is (..., C), or (..., 1) when shared across channels.
        return [w if w.shape[-1] == 1 else take(w, keep_in, w.ndim - 1) for w in weights]
    return weights
