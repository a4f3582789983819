"""Compression: pruning (unstructured, M:N, structured channel removal), QAT, int8 calibration, evaluation.

Entry point: :func:`compress` (what ``edgekit compress`` runs). Each step is
also usable on its own with a tf_keras model:

    from edgekit.compress import prune_channels, prune_magnitude, quantize_aware

    small, report, _ = prune_channels(model, 0.5)          # a smaller dense model
    sparse, report = prune_magnitude(model, x, y, sparsity=0.8, epochs=2)
    qat_model, report = quantize_aware(sparse, x, y, preserve_sparsity=True, epochs=1)

Build-side only: these modules import TensorFlow and tfmot lazily, inside functions.
"""
from edgekit.compress.calibrate import BudgetResult, LayerError, fit_budget, layer_errors, representative_samples
from edgekit.compress.pipeline import CompressResult, compress, resolve_preprocess, resolve_recipe
from edgekit.compress.prune import PruneReport, check_sparsity, measure_sparsity, prune_magnitude, pruning_schedule
from edgekit.compress.qat import QATReport, QATUnavailable, quantize_aware
from edgekit.compress.recipe import Recipe, list_recipes, load_recipe
from edgekit.compress.structured import ChannelPlan, StructuredReport, prune_channels

__all__ = [
    "BudgetResult",
    "ChannelPlan",
    "CompressResult",
    "LayerError",
    "PruneReport",
    "QATReport",
    "QATUnavailable",
    "Recipe",
    "StructuredReport",
    "check_sparsity",
    "compress",
    "fit_budget",
    "layer_errors",
    "list_recipes",
    "load_recipe",
    "measure_sparsity",
    "prune_channels",
    "prune_magnitude",
    "pruning_schedule",
    "quantize_aware",
    "representative_samples",
    "resolve_preprocess",
    "resolve_recipe",
]
