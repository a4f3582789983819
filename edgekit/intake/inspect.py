"""``inspect_model``: the report behind ``edgekit inspect``."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgekit.intake import registry as reg
from edgekit.intake.audit import LayerAudit, audit_model
from edgekit.intake.load import LoadedModel, load_model
from edgekit.intake.stats import LayerStats, layer_stats


@dataclass
class ModelReport:
    loaded: LoadedModel
    layers: list[LayerStats]
    audit: list[LayerAudit]

    @property
    def total_params(self) -> int:
        return int(self.loaded.model.count_params())

    @property
    def total_macs(self) -> int:
        return sum(r.macs for r in self.layers)

    @property
    def float_bytes(self) -> int:
        # 4 bytes per float32 weight, trainable or not (BN moving stats ship too).
        return 4 * self.total_params

    @property
    def preprocessing(self) -> list[dict[str, str]]:
        """Layers that compute on raw pixels at inference (Rescaling, Normalization, Resizing, CenterCrop).

        They stay in the graph rather than moving into the bundle's
        preprocessing spec: the model then means the same thing on every
        target and in every tool that reads it, the int8 converter folds them
        into the first quantize step at almost no cost, and the user's data
        keeps the layout the model was trained on.
        """
        found = []
        for layer in self.loaded.model.layers:  # topological order: stop at the first layer that computes
            spec = reg.lookup(type(layer).__name__)
            if spec is not None and spec.macs is not None:
                break
            if spec is not None and spec.preprocessing:
                found.append({"name": layer.name, "type": type(layer).__name__, "kept": "in the graph"})
        return found

    def to_dict(self) -> dict[str, Any]:
        m = self.loaded.model
        return {
            "path": str(self.loaded.file.path),
            "format": self.loaded.file.format,
            "keras": self.loaded.file.flavour,
            "keras_version": self.loaded.file.keras_version,
            "description": self.loaded.file.description,
            "sha256": self.loaded.sha256,
            "input_shape": [None if d is None else int(d) for d in m.inputs[0].shape],
            "output_shape": [None if d is None else int(d) for d in m.outputs[0].shape],
            "bridge": self.loaded.bridge.to_dict() if self.loaded.bridge else None,
            "layers": [r.to_dict() for r in self.layers],
            "totals": {"params": self.total_params, "macs": self.total_macs, "float32_bytes": self.float_bytes},
            "audit": [a.to_dict() for a in self.audit],
            "preprocessing": self.preprocessing,
            "notes": self.loaded.notes,
        }


def inspect_model(path: str | Path, *, allow_unsafe: bool = False) -> ModelReport:
    """Load ``path`` and describe it: layers, params, MACs and a tfmot/int8 audit.

    Example::

        report = inspect_model("digits_cnn.keras")
        print(report.total_params, report.total_macs)
    """
    loaded = load_model(path, allow_unsafe=allow_unsafe)
    return ModelReport(loaded, layer_stats(loaded.model), audit_model(loaded.model))
