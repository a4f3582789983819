"""Model intake: load any supported Keras model as tf_keras, describe and audit it.

Entry points: :func:`load_model` and :func:`inspect_model`.
"""
from edgekit.intake.audit import LayerAudit, audit_model
from edgekit.intake.bridge import MAX_RELATIVE_DEVIATION, BridgeReport, bridge_keras3
from edgekit.intake.formats import ModelFile, read_model_file
from edgekit.intake.inspect import ModelReport, inspect_model
from edgekit.intake.layers import SUPPORTED_LAYERS, scan_layers
from edgekit.intake.load import LoadedModel, load_model
from edgekit.intake.stats import LayerStats, layer_stats

__all__ = [
    "MAX_RELATIVE_DEVIATION",
    "SUPPORTED_LAYERS",
    "BridgeReport",
    "LayerAudit",
    "LayerStats",
    "LoadedModel",
    "ModelFile",
    "ModelReport",
    "audit_model",
    "bridge_keras3",
    "inspect_model",
    "layer_stats",
    "load_model",
    "read_model_file",
    "scan_layers",
]
