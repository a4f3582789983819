"""The checks that tie a manifest to its artifact: one copy, used by loading and by ``verify``.

A bundle whose manifest disagrees with its artifact gives confident, wrong
answers (3 labels for 10 outputs, an input shape the preprocessing does not
make). :class:`~edgekit.runtime.pipeline.Predictor` refuses such a bundle when
it loads it, and :func:`~edgekit.bundle.store.verify_bundle` runs the same
functions on the artifact's header, so ``verify`` passes exactly what
``deploy`` accepts. Add a check here and both get it.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from edgekit.bundle.manifest import ArtifactEntry, Manifest
from edgekit.errors import BundleError, ConfigError
from edgekit.metrics import output_classes

_REBUILD = "Rebuild the bundle."


def bundle_spec(manifest: Manifest, where: str | Path) -> Any:
    """The manifest's preprocessing spec, parsed; a :class:`BundleError` when it is invalid."""
    from edgekit.preprocess import PreprocessSpec

    try:
        return PreprocessSpec.from_dict(manifest.preprocess)
    except ConfigError as e:
        raise BundleError(f"bundle {where} has an invalid preprocess spec: {e.message}", hint=_REBUILD) from e


def check_artifact(
    spec: Any,
    labels: Sequence[str],
    entry: ArtifactEntry,
    *,
    input_shape: Sequence[int],
    input_dtype: str,
    output_shape: Sequence[int],
) -> None:
    """Refuse an artifact whose tensors do not fit the manifest's preprocessing, labels and declared I/O.

    Raises:
        BundleError: naming the file, what the artifact has and what the manifest says.
    """
    h, w = spec.input_size
    want = (1, h, w, spec.channels)
    if tuple(int(d) for d in input_shape) != want:
        raise BundleError(
            f"{entry.file} takes input shape {[int(d) for d in input_shape]} but the manifest's preprocessing "
            f"makes {list(want)}; the bundle is inconsistent.",
            hint=_REBUILD,
        )
    n_out = int(np.prod([int(d) for d in output_shape[1:]]))
    if output_classes(n_out) != len(labels):
        scores = " (a single output scores 2 classes)" if n_out == 1 else ""
        raise BundleError(
            f"{entry.file} has {n_out} outputs{scores} but the manifest lists {len(labels)} labels; "
            "the bundle is inconsistent.",
            hint=_REBUILD,
        )
    declared = entry.input or {}
    if declared.get("dtype") not in (None, input_dtype):
        raise BundleError(
            f"{entry.file} takes {input_dtype} input but the manifest says {declared.get('dtype')}.", hint=_REBUILD
        )
    if declared.get("shape") is not None and [int(d) for d in declared["shape"]] != [int(d) for d in input_shape]:
        raise BundleError(
            f"{entry.file} takes input shape {[int(d) for d in input_shape]} but the manifest's artifact entry "
            f"says {list(declared['shape'])}; the bundle is inconsistent.",
            hint=_REBUILD,
        )
