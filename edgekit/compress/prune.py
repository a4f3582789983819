"""Magnitude pruning with tfmot: unstructured (polynomial decay) and M:N.

tfmot updates masks only every ``frequency`` steps between ``begin_step`` and
``end_step`` (default frequency 100): a short fine-tune with the defaults ends
at 0 % sparsity without a word. :func:`pruning_schedule` derives the schedule
from the real number of fine-tuning steps, and :func:`measure_sparsity` checks
what was achieved after ``strip_pruning``; :func:`check_sparsity` refuses a
result more than one point off the request.

Two costs make tfmot's own pruning unusable on big layers, and both are fixed
here. tfmot finds each mask threshold with ``tf.math.top_k(k=size)``, a full
descending sort of the layer's weights plus a one-hot of the same size: on a
50M-weight Dense that is 15-160 s per mask update on 2 CPU cores, and a short
fine-tune whose schedule updated the mask every step paid it every step.
:func:`select_pruning_wrapper` keeps tfmot's wrapper, schedule, step counter
and ``strip_pruning``, and computes the same threshold (the k-th largest
magnitude, so the same mask) with numpy's O(n) selection over the non-zero
magnitudes (~1-2 s); and
:func:`pruning_schedule` updates masks at most :data:`UPDATES` times.

By default the layers that produce the model's outputs (the classifier head:
few weights, every one of them matters) and kernels under
:data:`MIN_PRUNE_WEIGHTS` weights stay dense; ``prune_output`` and
``min_weights`` (recipe keys ``prune_output_layer``, ``prune_min_weights``)
override that.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from edgekit.compress.finetune import Teacher, copy_model, fine_tune, steps_per_epoch
from edgekit.compress.progress import NullProgress
from edgekit.errors import ConfigError, EdgekitError

SPARSITY_TOLERANCE = 0.01  # achieved overall sparsity must be within 1 point of the request
PRUNE_FRACTION = 0.7  # masks reach the final sparsity 70 % into fine-tuning; the rest recovers accuracy
UPDATES = 10  # how many mask updates the ramp uses
MN_LAYERS = ("Conv2D", "Dense")  # the layers whose kernels TFLite/XNNPACK read in M:N blocks
# Kernels smaller than this stay dense: a 3x3 conv on one channel has 9 weights per filter, and
# zeroing 7 of them costs accuracy while saving almost nothing (they are <1 % of a typical model).
MIN_PRUNE_WEIGHTS = 1024


@dataclass(frozen=True)
class Schedule:
    """A PolynomialDecay schedule fitted to ``total_steps`` of fine-tuning."""

    total_steps: int
    begin_step: int
    end_step: int
    frequency: int

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


def pruning_schedule(total_steps: int) -> Schedule:
    """Mask updates every ``frequency`` steps from step 0 to ``end_step`` (a multiple of it).

    tfmot counts steps 1..total during ``fit``; a mask update happens at steps
    where ``(step - begin) % frequency == 0`` and ``step <= end``, and the
    polynomial reaches the final sparsity exactly at ``end``, so ``end`` must
    be one of those steps and must be reached.

    Example:
        >>> pruning_schedule(90)
        Schedule(total_steps=90, begin_step=0, end_step=63, frequency=7)
    """
    if total_steps < 1:
        raise ConfigError(f"pruning needs at least 1 fine-tuning step; received {total_steps}.", hint="Raise --epochs.")
    end = max(1, int(round(total_steps * PRUNE_FRACTION)))
    # At most UPDATES mask updates: each one is a selection over every pruned weight.
    frequency = max(1, -(-end // UPDATES))
    end = max(frequency, (end // frequency) * frequency)
    return Schedule(total_steps, 0, end, frequency)


@dataclass
class LayerSparsity:
    name: str
    type: str
    weights: int  # kernel elements
    zeros: int
    pruned: bool  # whether the pruner touched it
    note: str = ""

    @property
    def sparsity(self) -> float:
        return self.zeros / self.weights if self.weights else 0.0

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["sparsity"] = round(self.sparsity, 6)
        return d


@dataclass
class PruneReport:
    """What a pruning step did: requested vs achieved sparsity, per layer, and cost before/after."""

    kind: str  # "unstructured" | "m:n"
    requested: float  # fraction of pruned-layer kernel weights requested to be zero
    achieved: float  # measured after strip_pruning over the pruned layers' kernels
    layers: list[LayerSparsity]
    params_before: int
    params_after_nonzero: int
    macs_before: int
    macs_after_effective: int  # dense MACs scaled by each layer's kernel density
    mn: str | None = None
    schedule: dict[str, int] | None = None
    fine_tune: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["layers"] = [layer.to_dict() for layer in self.layers]
        return d


def prune_magnitude(
    model: Any,
    x: np.ndarray,
    y: np.ndarray,
    *,
    sparsity: float | None = None,
    mn: tuple[int, int] | None = None,
    epochs: int,
    prune_output: bool = False,
    min_weights: int = MIN_PRUNE_WEIGHTS,
    batch_size: int = 32,
    learning_rate: float = 5e-4,
    output_kind: str = "probabilities",
    teacher: Teacher | None = None,
    progress: NullProgress | None = None,
    seed: int = 0,
) -> tuple[Any, PruneReport]:
    """Prune a copy of ``model`` while fine-tuning it; returns (stripped model, report).

    Exactly one of ``sparsity`` (unstructured, PolynomialDecay to that
    fraction) or ``mn`` ((M, N): at most M non-zeros in every N consecutive
    input-channel weights of Conv2D/Dense kernels) is given. ``model`` itself
    is not modified.

    Args:
        prune_output: also prune the layer(s) whose kernel produces a model
            output (default: they stay dense, and the report says why).
        min_weights: kernels with fewer weights stay dense.

    Example::

        pruned, report = prune_magnitude(model, x, y, sparsity=0.8, epochs=2)
        print(f"{report.achieved:.1%} of {len(report.layers)} layers' weights are zero")

    Raises:
        ConfigError: both or neither mode, no prunable layer, or the achieved
            sparsity misses the request by more than one point.
    """
    from edgekit._tf import tfmot
    from edgekit.intake import audit_model, layer_stats

    if (sparsity is None) == (mn is None):
        raise ConfigError("prune_magnitude needs exactly one of sparsity or mn.")
    mot = tfmot()
    work = copy_model(model)
    if isinstance(min_weights, bool) or not isinstance(min_weights, int) or min_weights < 0:
        raise ConfigError(f"prune min_weights={min_weights!r} is not valid; expected an integer >= 0 (e.g. {MIN_PRUNE_WEIGHTS}).")
    chosen, skipped = _choose_layers(
        work, audit_model(work), mn, outputs=set() if prune_output else output_layers(work), min_weights=min_weights
    )
    if not chosen:
        raise ConfigError(
            f"model {model.name!r} has no layer that magnitude pruning can prune"
            + (f" with M:N={mn[0]}:{mn[1]}" if mn else "")
            + "; expected Conv2D/Dense/DepthwiseConv2D layers with enough weights ("
            + ("; ".join(f"{k}: {v}" for k, v in skipped.items()) or "none found")
            + ")."
        )
    steps = epochs * steps_per_epoch(len(x), batch_size)
    schedule = pruning_schedule(steps)
    if mn is not None:
        # tfmot's m_by_n counts zeros per block; ours counts the kept non-zeros (as in "2:4").
        wrap_kwargs: dict[str, Any] = {"sparsity_m_by_n": (mn[1] - mn[0], mn[1])}
    else:
        wrap_kwargs = {
            "pruning_schedule": mot.sparsity.keras.PolynomialDecay(
                initial_sparsity=0.0,
                final_sparsity=float(sparsity),
                begin_step=schedule.begin_step,
                end_step=schedule.end_step,
                frequency=schedule.frequency,
            )
        }

    def wrap(layer: Any) -> Any:
        if layer.name not in chosen:
            return layer
        if mn is not None:  # tfmot builds M:N masks once, at step 1, block by block: no sort to replace
            return mot.sparsity.keras.prune_low_magnitude(layer, **wrap_kwargs)
        return select_pruning_wrapper()(layer, **wrap_kwargs)

    from edgekit._tf import tf_keras

    wrapped = tf_keras().models.clone_model(work, clone_function=wrap)
    label = f"pruning to {sparsity:.0%} sparsity" if sparsity is not None else f"pruning to {mn[0]}:{mn[1]} sparsity"
    stats = fine_tune(
        wrapped,
        x,
        y,
        epochs=epochs,
        batch_size=batch_size,
        learning_rate=learning_rate,
        output_kind=output_kind,
        teacher=teacher,
        callbacks=[mot.sparsity.keras.UpdatePruningStep()],
        progress=progress,
        description=label,
        seed=seed,
    )
    stripped = mot.sparsity.keras.strip_pruning(wrapped)
    layers = measure_sparsity(stripped, chosen, skipped)
    requested = float(sparsity) if sparsity is not None else (mn[1] - mn[0]) / mn[1]
    achieved = overall_sparsity(layers)
    before = layer_stats(model)
    report = PruneReport(
        kind="unstructured" if sparsity is not None else "m:n",
        requested=requested,
        achieved=achieved,
        layers=layers,
        params_before=sum(r.params for r in before),
        params_after_nonzero=_nonzero_params(stripped),
        macs_before=sum(r.macs for r in before),
        macs_after_effective=_effective_macs(stripped, layers),
        mn=f"{mn[0]}:{mn[1]}" if mn else None,
        schedule=schedule.to_dict() if sparsity is not None else None,
        fine_tune=stats,
    )
    check_sparsity(report)
    if mn is not None:
        _check_mn(stripped, chosen, mn)
    return stripped, report


def _choose_layers(
    model: Any,
    audit: list[Any],
    mn: tuple[int, int] | None,
    *,
    outputs: set[str] = frozenset(),  # type: ignore[assignment]
    min_weights: int = MIN_PRUNE_WEIGHTS,
) -> tuple[set[str], dict[str, str]]:
    chosen: set[str] = set()
    skipped: dict[str, str] = {}
    by_name = {layer.name: layer for layer in model.layers}
    for a in audit:
        layer = by_name[a.name]
        if not a.prunable:
            if getattr(layer, "weights", None):
                skipped[a.name] = f"tfmot cannot prune {a.type} layers"
            continue
        if a.name in outputs:
            skipped[a.name] = "output layer: left dense (few weights, each one decides a class; recipe prune_output_layer = true prunes it)"
            continue
        size = int(np.prod(layer.kernel.shape)) if hasattr(layer, "kernel") else 0
        if 0 < size < min_weights:
            skipped[a.name] = (
                f"only {size} weights: left dense (too small to matter for size, costly for accuracy; "
                f"recipe prune_min_weights = {min_weights})"
            )
            continue
        if mn is not None:
            if a.type not in MN_LAYERS:
                skipped[a.name] = "M:N applies to Conv2D and Dense kernels only"
                continue
            cin = int(layer.kernel.shape[-2])
            if cin % mn[1]:
                skipped[a.name] = f"{cin} input channel(s), not a multiple of N={mn[1]}"
                continue
        chosen.add(a.name)
    return chosen, skipped


def output_layers(model: Any) -> set[str]:
    """Names of the layers whose kernel produces a model output.

    Walks back from each output past layers without a kernel (Softmax,
    Activation, Reshape, BatchNormalization...) to the Dense/Conv that computes it.
    """
    by_name = {layer.name: layer for layer in model.layers}
    found: set[str] = set()
    todo = [by_name[n] for n in getattr(model, "output_names", []) if n in by_name] or model.layers[-1:]
    seen: set[str] = set()
    while todo:
        layer = todo.pop()
        if layer.name in seen:
            continue
        seen.add(layer.name)
        if _kernel(layer) is not None:
            found.add(layer.name)
            continue
        for node in getattr(layer, "inbound_nodes", None) or []:
            parents = node.inbound_layers
            todo.extend(parents if isinstance(parents, list) else [parents])
    return found


_WRAPPER: Any = None


def select_pruning_wrapper() -> type:
    """tfmot's ``PruneLowMagnitude`` with an O(n) mask threshold (numpy selection instead of a full sort).

    Same variables, schedule, step counter and ``strip_pruning`` as tfmot's
    wrapper, and the same mask: the weights whose magnitude is at least the
    k-th largest, k = round(size * (1 - sparsity)). tfmot finds that value by
    sorting every weight (``top_k(k=size)``) and adds a one-hot of the layer's
    size; on a 50M-weight layer that is tens of seconds per mask update on a
    2-core CPU, against ~1 s for ``np.partition``. The classes subclass tfmot
    internals (``pruning_impl.Pruning``, ``pruning_wrapper.PruneLowMagnitude``)
    because tfmot has no public hook for the mask computation; tfmot 0.8 is in
    maintenance, and tests compare the mask with tfmot's own.
    """
    global _WRAPPER
    if _WRAPPER is not None:
        return _WRAPPER
    from edgekit._tf import tf, tfmot

    tfl = tf()
    tfmot()
    from tensorflow_model_optimization.python.core.sparsity.keras import pruning_impl, pruning_wrapper

    def kth_largest(flat: np.ndarray, k: np.ndarray) -> np.ndarray:
        # Select among the non-zeros: after the first update most magnitudes are exactly 0, and
        # numpy's introselect over that many ties is ~30x slower (57 s vs 1.9 s on 50M weights).
        nonzero = flat[flat > 0]
        if int(k) > nonzero.size:  # the k-th largest magnitude is 0: tfmot's mask keeps everything
            return np.zeros((), dtype=flat.dtype)
        i = nonzero.size - int(k)
        return np.asarray(np.partition(nonzero, i)[i], dtype=flat.dtype)

    class SelectPruning(pruning_impl.Pruning):
        def _update_mask(self, weights: Any) -> tuple[Any, Any]:
            sparsity = self._pruning_schedule(self._step_fn())[1]
            with tfl.name_scope("pruning_ops"):
                magnitude = tfl.math.abs(weights)
                size = tfl.size(magnitude)
                k = tfl.cast(tfl.maximum(tfl.round(tfl.cast(size, tfl.float32) * (1 - sparsity)), 1), tfl.int32)
                threshold = tfl.numpy_function(kth_largest, [tfl.reshape(magnitude, [-1]), k], magnitude.dtype, stateful=False)
                threshold = tfl.reshape(threshold, [])
                mask = tfl.cast(tfl.math.greater_equal(magnitude, threshold), weights.dtype)
            return tfl.cast(threshold, weights.dtype), mask

    class SelectPruneLowMagnitude(pruning_wrapper.PruneLowMagnitude):
        def build(self, input_shape: Any) -> None:
            super().build(input_shape)
            self.pruning_obj = SelectPruning(
                training_step_fn=lambda: self.pruning_step,
                pruning_vars=self.pruning_vars,
                pruning_schedule=self.pruning_schedule,
                block_size=self.block_size,
                block_pooling_type=self.block_pooling_type,
                sparsity_m_by_n=self.sparsity_m_by_n,
            )

    _WRAPPER = SelectPruneLowMagnitude
    return _WRAPPER


def _kernel(layer: Any) -> np.ndarray | None:
    for attr in ("kernel", "depthwise_kernel"):
        w = getattr(layer, attr, None)
        if w is not None:
            return np.asarray(w.numpy())
    return None


def measure_sparsity(model: Any, pruned: set[str] | None = None, notes: dict[str, str] | None = None) -> list[LayerSparsity]:
    """Zeros in each Conv/Dense kernel of a plain (stripped) tf_keras model.

    Args:
        pruned: names of the layers the pruner was asked to prune (None = all with a kernel).
        notes: why a layer was left alone, by name.
    """
    rows = []
    for layer in model.layers:
        k = _kernel(layer)
        if k is None:
            continue
        name = layer.name
        was_pruned = pruned is None or name in pruned
        rows.append(
            LayerSparsity(name, type(layer).__name__, int(k.size), int(np.count_nonzero(k == 0)), was_pruned, (notes or {}).get(name, ""))
        )
    return rows


def overall_sparsity(layers: list[LayerSparsity]) -> float:
    """Zero fraction over the kernels of the layers that were pruned."""
    total = sum(r.weights for r in layers if r.pruned)
    return sum(r.zeros for r in layers if r.pruned) / total if total else 0.0


def check_sparsity(report: PruneReport, tolerance: float = SPARSITY_TOLERANCE) -> None:
    """Refuse a pruning result whose achieved sparsity is more than ``tolerance`` from the request.

    Raises:
        EdgekitError: with the achieved and requested numbers and what to do.
    """
    if abs(report.achieved - report.requested) <= tolerance:
        return
    raise EdgekitError(
        f"pruning achieved {report.achieved:.1%} sparsity but {report.requested:.1%} was requested "
        f"(expected within {tolerance:.0%}); the fine-tuning ran {report.fine_tune.get('steps', '?')} steps.",
        hint="Raise --epochs, or report this model: the pruning schedule did not take effect.",
    )


def _check_mn(model: Any, chosen: set[str], mn: tuple[int, int]) -> None:
    keep, n = mn
    for layer in model.layers:
        if layer.name not in chosen:
            continue
        k = _kernel(layer)
        # Blocks run along the input channels (TFLite layout [out, h, w, in]).
        blocks = np.moveaxis(k, -1, 0).reshape(-1, k.shape[-2]).reshape(-1, n)
        worst = int(np.count_nonzero(blocks, axis=1).max())
        if worst > keep:
            raise EdgekitError(
                f"layer {layer.name!r} has a block with {worst} non-zeros after {keep}:{n} pruning; expected at most {keep}.",
                hint="Please report this model; the M:N mask was not applied.",
            )


def _nonzero_params(model: Any) -> int:
    return int(sum(np.count_nonzero(w) for w in model.get_weights()))


def _effective_macs(model: Any, layers: list[LayerSparsity]) -> int:
    from edgekit.intake.stats import layer_macs

    density = {r.name: 1.0 - r.sparsity for r in layers}
    return int(sum(layer_macs(layer) * density.get(layer.name, 1.0) for layer in model.layers))
