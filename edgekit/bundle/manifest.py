"""The bundle manifest: the one contract between the build side and the device.

``manifest.json`` is plain JSON, schema-versioned. The device reads it with
nothing but the standard library and numpy. Bump ``SCHEMA_VERSION`` on any
change a reader of the previous version would misread, and keep
:func:`Manifest.from_dict` strict so a mismatch is caught, not guessed at.
"""
from __future__ import annotations

import datetime as _dt
from dataclasses import MISSING, asdict, dataclass, field, fields
from typing import Any

from edgekit.errors import BundleError

SCHEMA_VERSION = 1
MANIFEST_NAME = "manifest.json"


@dataclass
class ArtifactEntry:
    """One model file in the bundle and everything the device needs to run it."""

    target: str  # profile name: "cpu", "gpu", "edgetpu", ...
    file: str  # path relative to the bundle root
    sha256: str
    bytes: int
    variant: str  # what it is: "int8", "fp16", "fp32", "int8_edgetpu", ...
    input: dict[str, Any]  # TensorInfo.to_dict(): name, shape, dtype, scale, zero_point
    output: dict[str, Any]
    accelerator: str | None = None  # what must be present to run it as intended: None (CPU), "gpu", "edgetpu"
    recipe: dict[str, Any] = field(default_factory=dict)  # sparsity, structured, qat, calibration_samples, float_fallback_layers
    accuracy: dict[str, Any] | None = None  # measured on the held-out split: top1, macro_f1, n, ...
    compatibility: dict[str, Any] = field(default_factory=dict)  # summary; full report in reports/
    compiled_from: str | None = None  # for a compiler output: the file it was compiled from
    status: str = "ok"  # "ok" | "not_compiled" (ready, compiler unavailable)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ArtifactEntry":
        return cls(**_strict(cls, d, "artifact"))


@dataclass
class Manifest:
    """Everything in ``manifest.json``."""

    labels: list[str]
    preprocess: dict[str, Any]  # edgekit.preprocess.PreprocessSpec.to_dict()
    source_model: dict[str, Any]  # name, sha256, format
    artifacts: list[ArtifactEntry] = field(default_factory=list)
    task: str = "classification"
    recipe: dict[str, Any] = field(default_factory=dict)  # the recipe actually used, after flags
    variants: list[dict[str, Any]] = field(default_factory=list)  # evaluation table rows (float, pruned, QAT, each tflite)
    reports: list[str] = field(default_factory=list)  # paths relative to the bundle root
    failures: list[dict[str, Any]] = field(default_factory=list)  # targets that could not be built: target, reason
    tools: dict[str, str] = field(default_factory=dict)  # versions: edgekit, tensorflow, tf_keras, tfmot, litert
    schema_version: int = SCHEMA_VERSION
    created: str = field(default_factory=lambda: _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Manifest":
        if not isinstance(d, dict):
            raise BundleError(f"manifest must be a JSON object, got {type(d).__name__}.")
        version = d.get("schema_version")
        if version != SCHEMA_VERSION:
            raise BundleError(
                f"manifest schema_version is {version!r}, this edgekit reads {SCHEMA_VERSION}.",
                hint="Rebuild the bundle with this edgekit version, or install the edgekit that built it.",
            )
        data = _strict(cls, d, "manifest")
        data["artifacts"] = [ArtifactEntry.from_dict(a) for a in data.get("artifacts", [])]
        return cls(**data)

    def artifact(self, target: str) -> ArtifactEntry:
        """The artifact for ``target``; BundleError listing what the bundle has."""
        for a in self.artifacts:
            if a.target == target:
                return a
        have = ", ".join(a.target for a in self.artifacts) or "none"
        raise BundleError(f"the bundle has no artifact for target {target!r}; it has: {have}.")

    @property
    def targets(self) -> list[str]:
        return [a.target for a in self.artifacts]


def _strict(cls: type, d: dict[str, Any], what: str) -> dict[str, Any]:
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(d) - names)
    if unknown:
        raise BundleError(f"{what} has unknown key(s) {', '.join(unknown)}; expected keys from: {', '.join(sorted(names))}.")
    required = {f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING}
    missing = sorted(required - set(d))
    if missing:
        raise BundleError(f"{what} is missing required key(s) {', '.join(missing)}.")
    return dict(d)
