"""The bundle manifest: the one contract between the build side and the device.

``manifest.json`` is plain JSON, schema-versioned. The device reads it with
nothing but the standard library and numpy. Bump ``SCHEMA_VERSION`` on any
change a reader of the previous version would misread, and keep
:func:`Manifest.from_dict` strict so a mismatch is caught, not guessed at.
"""
from __future__ import annotations

import datetime as _dt
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import PurePosixPath, PureWindowsPath
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
    def from_dict(cls, d: dict[str, Any], *, what: str = "artifact") -> "ArtifactEntry":
        """Read one ``artifacts`` entry strictly: keys, their types, and relative file paths.

        Raises:
            BundleError: not an object, an unknown/missing key, a value of the
                wrong type, or a ``file``/``compiled_from`` outside the bundle.
        """
        if not isinstance(d, dict):
            raise BundleError(f"manifest {what} is {_describe(d)}; expected an object.", hint=_DAMAGED)
        data = _strict(cls, d, f"manifest {what}")
        _check_types(data, _ARTIFACT_TYPES, f"manifest {what}")
        for key in ("file", "compiled_from"):
            if data.get(key) is not None:
                check_relative_path(data[key], f"manifest {what} {key!r}")
        return cls(**data)


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
        _check_types(data, _MANIFEST_TYPES, "manifest")
        for i, rel in enumerate(data.get("reports", [])):
            check_relative_path(rel, f"manifest reports[{i}]")
        data["artifacts"] = [
            ArtifactEntry.from_dict(a, what=f"artifacts[{i}]") for i, a in enumerate(data.get("artifacts", []))
        ]
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


_DAMAGED = "The manifest is damaged or was edited by hand: rebuild the bundle (or copy it again)."

# What each key must hold. Checked on every read, so a damaged manifest is a
# one-line BundleError, never a TypeError somewhere on the device.
_MANIFEST_TYPES = {
    "labels": "list[str]",
    "preprocess": "dict",
    "source_model": "dict",
    "artifacts": "list",  # each entry is checked by ArtifactEntry.from_dict
    "task": "str",
    "recipe": "dict",
    "variants": "list[dict]",
    "reports": "list[str]",
    "failures": "list[dict]",
    "tools": "dict",
    "created": "str",
}
_ARTIFACT_TYPES = {
    "target": "str",
    "file": "str",
    "sha256": "str",
    "bytes": "int",
    "variant": "str",
    "input": "dict",
    "output": "dict",
    "accelerator": "str?",
    "recipe": "dict",
    "accuracy": "dict?",
    "compatibility": "dict",
    "compiled_from": "str?",
    "status": "str",
}
_KINDS = {
    "str": ("a string", lambda v: isinstance(v, str)),
    "str?": ("a string or null", lambda v: v is None or isinstance(v, str)),
    "int": ("an integer", lambda v: isinstance(v, int) and not isinstance(v, bool)),
    "dict": ("an object", lambda v: isinstance(v, dict)),
    "dict?": ("an object or null", lambda v: v is None or isinstance(v, dict)),
    "list": ("a list", lambda v: isinstance(v, list)),
    "list[str]": ("a list of strings", lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v)),
    "list[dict]": ("a list of objects", lambda v: isinstance(v, list) and all(isinstance(x, dict) for x in v)),
}


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 40 else text[:37] + '...'}"


def _check_types(data: dict[str, Any], types: dict[str, str], what: str) -> None:
    for key, kind in types.items():
        if key not in data:
            continue
        expected, ok = _KINDS[kind]
        if not ok(data[key]):
            raise BundleError(f"{what} key {key!r} is {_describe(data[key])}; expected {expected}.", hint=_DAMAGED)


def check_relative_path(value: Any, what: str) -> str:
    """``value`` as a path inside the bundle: relative, no ``..``, not empty.

    Raises:
        BundleError: anything that could name a file outside the bundle folder.
    """
    if not isinstance(value, str) or not value.strip():
        raise BundleError(f"{what} is {_describe(value)}; expected a file path relative to the bundle.", hint=_DAMAGED)
    posix, windows = PurePosixPath(value), PureWindowsPath(value)
    if posix.is_absolute() or windows.anchor or ".." in posix.parts or ".." in windows.parts:
        raise BundleError(
            f"{what} is {value!r}, which points outside the bundle; expected a relative path inside it (no '..', not absolute).",
            hint=_DAMAGED,
        )
    return value


def _strict(cls: type, d: dict[str, Any], what: str) -> dict[str, Any]:
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(d) - names)
    if unknown:
        raise BundleError(
            f"{what} has unknown key(s) {', '.join(unknown)}; expected keys from: {', '.join(sorted(names))}.",
            hint="It was written by another edgekit version or edited by hand: rebuild the bundle with this edgekit.",
        )
    required = {f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING}
    missing = sorted(required - set(d))
    if missing:
        raise BundleError(f"{what} is missing required key(s) {', '.join(missing)}.", hint=_DAMAGED)
    return dict(d)
