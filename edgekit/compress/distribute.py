"""Multi-device fine-tuning with TensorFlow's own ``tf.distribute`` strategies.

``resolve_strategy("auto")`` picks ``MultiWorkerMirroredStrategy`` when
``TF_CONFIG`` names more than one worker, ``MirroredStrategy`` over every GPU
when more than one is visible, and no strategy otherwise. Everything that
builds or trains a model for fine-tuning (the copy of the model, tfmot's
pruning and QAT wrappers, ``compile`` and ``fit``) runs inside
:meth:`Training.scope`, as tf.distribute requires.

Batch size: the recipe's ``batch_size`` is **per replica**; each step trains
on a global batch of ``batch_size x replicas`` (:meth:`Training.global_batch`),
split evenly across the replicas, with the recipe's learning rate unchanged.

MultiWorkerMirroredStrategy must exist before TensorFlow runs any op, so
:func:`edgekit.compress.compress` resolves the strategy first thing. Each
worker runs the same ``edgekit compress`` command with its own ``TF_CONFIG``
task index; every worker reads the whole data set list and keeps its share
of the batches.

To add a strategy: a name in :data:`STRATEGIES` and a branch in
:func:`resolve_strategy`.
"""
from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass, field
from typing import Any, Iterator

from edgekit.errors import ConfigError, first_line

STRATEGIES = ("auto", "none", "mirrored", "multiworker")
# One strategy object per kind and process: two MirroredStrategy objects over the
# same devices issue collectives with clashing instance keys (TF aborts the step
# with "Shape mismatch in the collective instance"), and TF allows only one
# MultiWorkerMirroredStrategy per process.
_MADE: dict[str, "Training"] = {}


@dataclass
class Training:
    """The resolved distribution strategy (None: one device, TensorFlow's default placement)."""

    name: str  # "none" | "mirrored" | "multiworker"
    replicas: int
    devices: list[str]
    reason: str
    strategy: Any = field(default=None, repr=False)

    @contextlib.contextmanager
    def scope(self) -> Iterator[None]:
        """The strategy's scope (nothing for "none"): build, wrap, compile and fit inside it."""
        if self.strategy is None:
            yield
            return
        with self.strategy.scope():
            yield

    def global_batch(self, per_replica: int) -> int:
        """The batch one training step takes across all replicas."""
        return int(per_replica) * self.replicas

    def to_dict(self) -> dict[str, Any]:
        return {"strategy": self.name, "replicas": self.replicas, "devices": self.devices, "reason": self.reason}


def resolve_strategy(name: str = "auto") -> Training:
    """The strategy called ``name`` (see :data:`STRATEGIES`), created on first use and reused after.

    Args:
        name: "auto" (TF_CONFIG with several workers -> multiworker; more than one
            GPU -> mirrored; else none), "none", "mirrored" (every GPU, else every
            logical CPU device) or "multiworker" (needs TF_CONFIG).

    Returns:
        A :class:`Training` with the strategy and its replica count.

    Raises:
        ConfigError: an unknown name, a missing or malformed TF_CONFIG, or a
            multi-worker strategy asked for after TensorFlow already started.

    Example:
        >>> resolve_strategy("none").replicas
        1
    """
    if name not in STRATEGIES:
        raise ConfigError(f"strategy {name!r} is not known; expected one of: {', '.join(STRATEGIES)}.")
    from edgekit._tf import quiet_native_logs, tf

    tfm = tf()
    workers = _tf_config_workers()
    # Physical devices only: listing logical ones starts TensorFlow's runtime,
    # after which a multi-worker strategy can no longer be created.
    n_gpus = len(tfm.config.list_physical_devices("GPU"))
    if name == "auto":
        if workers > 1:
            name, why = "multiworker", f"TF_CONFIG names {workers} workers"
        elif n_gpus > 1:
            name, why = "mirrored", f"{n_gpus} GPUs are visible"
        else:
            name, why = "none", f"{n_gpus or 'no'} GPU visible and no multi-worker TF_CONFIG"
    else:
        why = "asked for"
    if name == "none":
        return Training("none", 1, ["GPU:0" if n_gpus else "CPU:0"], why)
    if name in _MADE:
        made = _MADE[name]
        return Training(made.name, made.replicas, made.devices, why, made.strategy)
    if name == "mirrored":
        gpus = [d.name for d in tfm.config.list_logical_devices("GPU")]
        devices = gpus or [d.name for d in tfm.config.list_logical_devices("CPU")]
        with quiet_native_logs():
            strategy = tfm.distribute.MirroredStrategy(devices=devices)
        _MADE[name] = Training("mirrored", int(strategy.num_replicas_in_sync), devices, why, strategy)
        return _MADE[name]
    if workers == 0:
        raise ConfigError(
            "strategy 'multiworker' needs TF_CONFIG describing the cluster; it is not set.",
            hint='Set TF_CONFIG on every machine, e.g. {"cluster": {"worker": ["host1:12345", "host2:12345"]}, "task": {"type": "worker", "index": 0}}.',
        )
    try:
        with quiet_native_logs():
            strategy = tfm.distribute.MultiWorkerMirroredStrategy()
    except (RuntimeError, ValueError) as e:
        raise ConfigError(
            f"cannot start MultiWorkerMirroredStrategy from TF_CONFIG: {first_line(e, limit=200)}",
            hint="It must be created before TensorFlow runs anything: call compress() (or resolve_strategy) first in a fresh process.",
        ) from e
    local = [d.name for d in tfm.config.list_logical_devices("GPU")] or ["CPU:0"]
    _MADE[name] = Training("multiworker", int(strategy.num_replicas_in_sync), local, why, strategy)
    return _MADE[name]


def _tf_config_workers() -> int:
    """Workers named in TF_CONFIG (0 when unset); a malformed TF_CONFIG is a ConfigError."""
    raw = os.environ.get("TF_CONFIG", "").strip()
    if not raw:
        return 0
    try:
        cfg = json.loads(raw)
        cluster = cfg["cluster"]
        workers = list(cluster.get("worker", [])) + list(cluster.get("chief", []))
        task = cfg["task"]
        int(task["index"])
        str(task["type"])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as e:
        raise ConfigError(
            f"TF_CONFIG is not valid ({type(e).__name__}: {e}); expected JSON with 'cluster' (a 'worker' list) and 'task' (type, index).",
            hint='e.g. {"cluster": {"worker": ["host1:12345", "host2:12345"]}, "task": {"type": "worker", "index": 0}}',
        ) from e
    return len(workers)
