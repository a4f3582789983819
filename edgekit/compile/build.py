"""Build a bundle: one checked, analysed, evaluated artifact per target.

The build is a validated request and a fixed list of named stages:

* :class:`BuildRequest` (:meth:`BuildRequest.create`) checks everything before
  any work: targets and profiles, model I/O, spec, labels, samples, float
  fallback layers, pre-made conversions, report names.
* :func:`run_build` takes every target through :data:`STAGES` -- ``convert``
  (through a :class:`~edgekit.compile.convert.ConversionCache`, so int8 targets
  share one calibration and nothing is converted twice), ``check_numerics``
  (against the Keras model, profile tolerance), ``analyse`` (the profile's
  compatibility analysis; float ops in an int8 artifact fail a target whose
  profile forbids float fallback), ``evaluate`` (held-out data through the
  interpreter; one row of the manifest's evaluation table) and ``write`` (the
  profile's adapter, e.g. the Edge TPU compiler, and the manifest entries).
  A stage's error fails that target (``Manifest.failures`` names the stage);
  the others still ship; if none succeeds nothing is written. Seconds per
  stage go to ``reports/build.json``. The bundle appears atomically (see
  :class:`edgekit.bundle.BundleWriter`).
* :func:`build_bundle` is both in one call; ``edgekit compress`` calls it with
  its budget loop's conversion cache.

int8 targets are converted from ``model``; float targets (fp16/fp32) from
``float_model`` when one is given: a QAT model's fake-quant nodes would make
the converter emit int8 ops in them, so compress passes the model before QAT.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from edgekit.bundle import ArtifactEntry, Bundle, BundleWriter, Manifest, json_default, load_bundle
from edgekit.compile.report import CompatReport
from edgekit.errors import ConfigError, DataError, EdgekitError, TargetError
from edgekit.metrics import output_classes
from edgekit.preprocess import PreprocessSpec
from edgekit.profiles import TargetProfile, resolve_targets


@dataclass
class BuildResult:
    """What :func:`build_bundle` made."""

    bundle: Bundle
    reports: dict[str, CompatReport]  # target -> its compatibility report
    failures: list[dict[str, Any]]  # target, stage, reason
    seconds: float
    timings: dict[str, float] = field(default_factory=dict)  # stage -> seconds, summed over targets

    @property
    def path(self) -> Path:
        return self.bundle.path

    @property
    def artifacts(self) -> list[ArtifactEntry]:
        return self.bundle.manifest.artifacts

    def to_dict(self) -> dict[str, Any]:
        return {
            "bundle": str(self.path),
            "artifacts": [
                {k: getattr(a, k) for k in ("target", "file", "variant", "bytes", "accelerator", "status", "accuracy", "compatibility", "compiled_from")}
                for a in self.artifacts
            ],
            "failures": self.failures,
            "reports": self.bundle.manifest.reports,
            "seconds": round(self.seconds, 2),
            "timings": {k: round(v, 2) for k, v in self.timings.items()},
        }


@dataclass(frozen=True)
class BuildRequest:
    """A validated build: everything checked before the first conversion.

    Make one with :meth:`BuildRequest.create` (it validates every field and
    raises before any work); :func:`run_build` carries it out.

    Example::

        req = BuildRequest.create("out/bundle", model=m, spec=spec, labels=names,
                                  representative=x_cal, targets=["cpu", "edgetpu"])
        result = run_build(req)
    """

    out: Path
    model: Any
    spec: PreprocessSpec
    labels: tuple[str, ...]
    targets: tuple[TargetProfile, ...]
    input_shape: tuple[int, ...]
    classes: int | None
    representative: np.ndarray | None
    eval_x: np.ndarray | None
    eval_y: np.ndarray | None
    fallback: tuple[str, ...]
    float_model: Any = None
    converted: Mapping[str, Any] = field(default_factory=dict)  # target -> Converted made elsewhere
    source_model: Mapping[str, Any] = field(default_factory=dict)
    recipe: Mapping[str, Any] = field(default_factory=dict)
    variants: tuple[Mapping[str, Any], ...] = ()
    extra_reports: Mapping[str, Any] = field(default_factory=dict)
    overwrite: bool = True
    reference_top1: float | None = None
    phase_timings: Mapping[str, float] = field(default_factory=dict)  # the caller's earlier phases, for build.json

    @classmethod
    def create(
        cls,
        out: str | os.PathLike[str],
        *,
        model: Any,
        spec: Any,
        labels: Sequence[str] | None,
        representative: np.ndarray | None,
        targets: Sequence[str | Path | TargetProfile] | None = ("cpu",),
        device: str | Path | None = None,
        eval_data: tuple[np.ndarray, np.ndarray] | None = None,
        source_model: Mapping[str, Any] | None = None,
        recipe: Mapping[str, Any] | None = None,
        float_fallback_layers: Sequence[str] = (),
        variants: Sequence[Mapping[str, Any]] | None = None,
        extra_reports: Mapping[str, bytes | str | dict | list] | None = None,
        overwrite: bool = True,
        float_model: Any = None,
        converted: Mapping[str, Any] | None = None,
        reference_top1: float | None = None,
        phase_timings: Mapping[str, float] | None = None,
    ) -> "BuildRequest":
        """Validate the arguments of :func:`build_bundle` (see there) into a request.

        Raises:
            TargetError/ConfigError/DataError: the first thing that is wrong, before any work.
        """
        spec = _as_spec(spec)
        if labels is None:
            raise DataError("labels are required: one class name per model output.")
        parts = _validate(model, targets, device, representative, eval_data, labels, spec, float_fallback_layers)
        _check_extra_reports(extra_reports)
        if float_model is not None:
            _check_float_model(model, float_model)
        req = cls(
            out=Path(out),
            model=model,
            spec=spec,
            labels=tuple(labels),
            float_model=float_model,
            source_model=dict(source_model or {"name": getattr(model, "name", "model")}),
            recipe=dict(recipe or {}),
            variants=tuple(variants or ()),
            extra_reports=dict(extra_reports or {}),
            overwrite=bool(overwrite),
            reference_top1=reference_top1,
            phase_timings={k: float(v) for k, v in (phase_timings or {}).items()},
            **parts,
        )
        object.__setattr__(req, "converted", _check_converted(req, converted))
        return req


def check_build_request(
    *,
    model: Any,
    targets: Sequence[str | Path | TargetProfile] | None = ("cpu",),
    device: str | Path | None = None,
    representative: np.ndarray | None = None,
    eval_data: tuple[np.ndarray, np.ndarray] | None = None,
    labels: Sequence[str] | None = None,
    spec: Any = None,
    float_fallback_layers: Sequence[str] = (),
) -> tuple[TargetProfile, ...]:
    """Validate a build before any long work (call it before fine-tuning too).

    Returns:
        The resolved target profiles, in build order.

    Raises:
        TargetError: unknown target/device, a target that cannot keep float layers.
        ConfigError: a bad profile file, unknown fallback layer.
        DataError: data that does not fit the model.
    """
    return _validate(model, targets, device, representative, eval_data, labels, spec, float_fallback_layers)["targets"]


def _validate(
    model: Any,
    targets: Sequence[str | Path | TargetProfile] | None,
    device: str | Path | None,
    representative: np.ndarray | None,
    eval_data: tuple[np.ndarray, np.ndarray] | None,
    labels: Sequence[str] | None,
    spec: Any,
    float_fallback_layers: Sequence[str],
) -> dict[str, Any]:
    from edgekit.compile.convert import check_fallback_layers, model_io
    from edgekit.compile.registry import check_profile

    profiles = resolve_targets(targets, device)
    for p in profiles:
        check_profile(p)
    shape, out_shape = model_io(model)
    # One output unit is a binary (sigmoid) classifier: it scores 2 classes.
    classes = output_classes(int(out_shape[-1])) if out_shape and out_shape[-1] is not None else None
    if isinstance(float_fallback_layers, str):
        raise ConfigError("float_fallback_layers must be a list of layer names, not one string.")
    fallback = tuple(float_fallback_layers)
    if fallback:
        check_fallback_layers(model, fallback)
        refuse = [p for p in profiles if p.quantization == "int8" and not p.float_fallback]
        if refuse:
            raise TargetError(
                f"target(s) {', '.join(p.name for p in refuse)} cannot keep layers in float (float_fallback = false in "
                f"{refuse[0].source}); asked to keep {', '.join(fallback)} in float.",
                hint="Build those targets in a separate run without float fallback layers.",
            )
    spec = _as_spec(spec) if spec is not None else None
    if spec is not None and tuple(spec.shape) != shape:
        raise DataError(
            f"the preprocessing spec makes {tuple(spec.shape)} images but the model expects {shape}.",
            hint="Fix the spec's input_size/channels to match the model input.",
        )
    if labels is not None:
        if isinstance(labels, str) or not all(isinstance(n, str) for n in labels):
            raise DataError("labels must be a list of class names (strings).")
        if classes is not None and len(labels) != classes:
            raise DataError(f"{len(labels)} labels given but the model outputs {classes} classes; they must match.")
    needs_int8 = any(p.quantization == "int8" for p in profiles)
    rep = None
    if representative is not None:
        rep = _samples("representative", representative, shape)
    elif needs_int8:
        names = ", ".join(p.name for p in profiles if p.quantization == "int8")
        raise DataError(f"target(s) {names} are full int8 and need representative samples (float32 NHWC) to calibrate.")
    ex = ey = None
    if eval_data is not None:
        if not isinstance(eval_data, (tuple, list)) or len(eval_data) != 2:
            raise DataError("eval_data must be a pair (x, y).")
        ex = _samples("eval_data x", eval_data[0], shape)
        ey = np.asarray(eval_data[1])
        if ey.ndim != 1 or len(ey) != len(ex) or not np.issubdtype(ey.dtype, np.integer):
            raise DataError(f"eval_data y must be {len(ex)} integer labels, got shape {ey.shape} dtype {ey.dtype}.")
        if len(ey) and (ey.min() < 0 or (classes is not None and ey.max() >= classes)):
            raise DataError(f"eval_data labels span {ey.min()}..{ey.max()} but the model has {classes} classes.")
    return dict(targets=profiles, input_shape=shape, classes=classes, representative=rep, eval_x=ex, eval_y=ey, fallback=fallback)


def _as_spec(spec: Any) -> PreprocessSpec:
    """The spec as a validated :class:`PreprocessSpec` (a dict goes through ``from_dict``, strictly)."""
    if isinstance(spec, PreprocessSpec):
        return spec
    if isinstance(spec, Mapping):
        return PreprocessSpec.from_dict(dict(spec))
    raise ConfigError(
        f"spec must be a PreprocessSpec or its dict; received {type(spec).__name__}.",
        hint="Build one with PreprocessSpec.from_preset(...); the device needs it to preprocess frames.",
    )


def _samples(what: str, x: Any, shape: tuple[int, ...]) -> np.ndarray:
    from edgekit.data import Dataset

    if isinstance(x, Dataset):  # streamed: decoded (with the spec, so finite float32) a batch at a time when used
        if tuple(x.shape[1:]) != shape or len(x) == 0:
            raise DataError(f"{what} has shape {x.shape}; expected (N, {', '.join(map(str, shape))}) preprocessed samples, N >= 1.")
        return x  # type: ignore[return-value]
    a = np.asarray(x)
    if a.ndim != len(shape) + 1 or tuple(a.shape[1:]) != shape:
        raise DataError(f"{what} has shape {a.shape}; expected (N, {', '.join(map(str, shape))}) preprocessed samples.")
    if len(a) == 0:
        raise DataError(f"{what} is empty; give at least one sample.")
    if not np.issubdtype(a.dtype, np.floating):
        raise DataError(f"{what} is {a.dtype}; expected float32 samples already preprocessed with the spec.")
    a = a.astype(np.float32, copy=False)
    if not np.all(np.isfinite(a)):
        raise DataError(f"{what} contains NaN or infinity; calibration and checks need finite values.")
    return a


def tool_versions(extra: Mapping[str, str | None] | None = None) -> dict[str, str]:
    """Installed versions of edgekit and the stack (read from package metadata, nothing imported)."""
    from edgekit import __version__

    tools = {"edgekit": __version__}
    for key, dist in (
        ("tensorflow", "tensorflow"),
        ("tf_keras", "tf-keras"),
        ("tfmot", "tensorflow-model-optimization"),
        ("litert", "ai-edge-litert"),
        ("numpy", "numpy"),
    ):
        try:
            tools[key] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    for k, v in (extra or {}).items():
        if v:
            tools[k] = v
    return tools


def build_bundle(
    out: str | os.PathLike[str],
    *,
    model: Any,
    spec: Any,
    labels: Sequence[str],
    representative: np.ndarray | None,
    targets: Sequence[str | Path | TargetProfile] | None = ("cpu",),
    device: str | Path | None = None,
    eval_data: tuple[np.ndarray, np.ndarray] | None = None,
    source_model: dict[str, Any] | None = None,
    recipe: dict[str, Any] | None = None,
    float_fallback_layers: Sequence[str] = (),
    variants: list[dict[str, Any]] | None = None,
    extra_reports: Mapping[str, bytes | str | dict | list] | None = None,
    overwrite: bool = True,
    progress: Any = True,
    float_model: Any = None,
    converted: Mapping[str, Any] | None = None,
    reference_top1: float | None = None,
    conversions: Any = None,
    phase_timings: Mapping[str, float] | None = None,
) -> BuildResult:
    """Convert ``model`` for each target and write a verified bundle at ``out``.

    Args:
        out: the bundle folder (replaced atomically if it is a bundle).
        model: the (compressed) tf_keras model, single input and output.
        spec: the :class:`~edgekit.preprocess.PreprocessSpec` (or its dict) the device must apply.
        labels: class names, one per model output; 2 for a single-output (sigmoid) model,
            whose output is the probability of ``labels[1]``.
        representative: float32 preprocessed samples for int8 calibration.
        targets: names, profile paths or profiles; ``None`` = the device's targets.
        device: a device name or profile path (its targets when ``targets`` is None).
        eval_data: held-out ``(x, y)``; each artifact's accuracy is measured on it.
        source_model: name, sha256, format of the input model (for the manifest).
        recipe: the compression recipe actually used (copied into every artifact).
        float_fallback_layers: layers to keep in float in int8 targets that allow it.
        variants: evaluation table rows to store in the manifest; the build appends one
            row per artifact it scored on ``eval_data`` (``kind = "tflite"``, with its
            file and sha256). The whole table is also written to ``reports/variants.json``.
        extra_reports: more files for ``reports/`` (name -> bytes, text, or JSON-able).
        overwrite: replace an existing bundle at ``out``.
        progress: a progress bar on stderr (True), nothing (False), or a reporter
            from :mod:`edgekit.progress` (compress passes its own).
        float_model: the float model for targets whose quantization is not int8
            (fp16/fp32), e.g. the model before QAT (fake-quant nodes would put int8
            ops in a "float" artifact). Same input and output as ``model``. Its
            artifacts record ``converted_from = "float_model"`` (and ``qat = False``
            when the recipe says QAT) in their recipe. Default: ``model`` for every target.
        converted: artifacts already converted, target name -> the
            :class:`~edgekit.compile.convert.Converted` that ``convert_model`` made
            from the model this build converts for that target, with ``representative``
            and the same float fallback layers (e.g. the accuracy-budget loop's). They
            are written, checked, analysed and scored like the others, not converted again.
        reference_top1: top-1 (fraction) of the original float model; each artifact
            row then gets ``drop``, the top-1 points it loses against it (tables show
            the change, negative = a loss).
        conversions: a :class:`~edgekit.compile.convert.ConversionCache` to convert
            through (compress passes the one its budget loop filled); default: a new one.
        phase_timings: seconds of the caller's earlier phases, stored with the build's
            own stage times in ``reports/build.json``.

    Returns:
        A :class:`BuildResult` with the loaded bundle, reports and failures.

    Raises:
        TargetError/ConfigError/DataError: the request is invalid (nothing built;
            e.g. a spec whose ``output`` contradicts the model's last layer),
            or every target failed (nothing written, an older bundle stays).

    Example::

        result = build_bundle("out/bundle", model=m, spec=DIGITS_SPEC, labels=names,
                              representative=x_train[:200], targets=["cpu", "gpu", "edgetpu"],
                              eval_data=(x_test, y_test))
        for a in result.artifacts:
            print(a.target, a.file, a.accuracy["top1"])
    """
    request = BuildRequest.create(
        out, model=model, spec=spec, labels=labels, representative=representative, targets=targets, device=device,
        eval_data=eval_data, source_model=source_model, recipe=recipe, float_fallback_layers=float_fallback_layers,
        variants=variants, extra_reports=extra_reports, overwrite=overwrite, float_model=float_model,
        converted=converted, reference_top1=reference_top1, phase_timings=phase_timings,
    )  # fmt: skip
    return run_build(request, progress=progress, conversions=conversions)


@dataclass
class TargetWork:
    """One target on its way through :data:`STAGES`; each stage fills in its part."""

    profile: TargetProfile
    root: Path  # the staged bundle folder
    model: Any  # the Keras model this target is converted from
    reference: np.ndarray  # its outputs on the check inputs
    recipe: dict[str, Any]
    converted: Any = None  # edgekit.compile.convert.Converted
    graph: Any = None
    interpreter: Any = None
    numeric: dict[str, Any] | None = None
    report: CompatReport | None = None
    accuracy: dict[str, Any] | None = None
    row: dict[str, Any] | None = None
    entries: list[ArtifactEntry] = field(default_factory=list)
    versions: dict[str, Any] = field(default_factory=dict)

    @property
    def path(self) -> Path:
        return self.root / self.profile.artifact


@dataclass
class _Context:
    request: BuildRequest
    conversions: Any  # ConversionCache
    check_x: np.ndarray


def _stage_convert(work: TargetWork, ctx: _Context) -> None:
    """Convert (or take the caller's / the cache's conversion), write the file, load it in the interpreter."""
    from edgekit.compile.check import load_interpreter
    from edgekit.tflite_graph import read_graph

    req, profile = ctx.request, work.profile
    work.converted = req.converted.get(profile.name)
    if work.converted is None:
        fallback = req.fallback if profile.quantization == "int8" else ()
        work.converted = ctx.conversions.convert(work.model, profile, req.representative, float_fallback_layers=fallback)
    work.path.write_bytes(work.converted.content)
    work.graph = read_graph(work.path)
    # Load first: an interpreter that refuses the artifact is this target's
    # recorded failure, before any analysis loads it unguarded.
    work.interpreter = load_interpreter(work.path, target=profile.name)


def _stage_check_numerics(work: TargetWork, ctx: _Context) -> None:
    """Compare the artifact with its Keras model on the check inputs (profile tolerance)."""
    from edgekit.compile.check import numeric_check

    n = work.profile.check_samples
    work.numeric = numeric_check(
        work.model, work.interpreter, ctx.check_x[:n], work.profile.tolerance, target=work.profile.name, reference=work.reference[:n]
    )


def _stage_analyse(work: TargetWork, ctx: _Context) -> None:
    """The profile's compatibility analysis; float ops in an int8 artifact fail a target that forbids them."""
    from edgekit.compile.registry import ANALYSES

    profile, req = work.profile, ctx.request
    numeric = work.numeric
    report = ANALYSES[profile.analysis](work.path, work.graph, profile.name)
    report.numeric = numeric
    floats = float_ops(work.graph) if profile.quantization == "int8" else []
    if floats and not profile.float_fallback:
        names = ", ".join(sorted({op.name for op in floats}))
        raise TargetError(
            f"target {profile.name}: {len(floats)} op(s) stay in float in the int8 artifact ({names}: no int8 kernel), "
            f"but the profile forbids float fallback (float_fallback = false in {profile.source}).",
            hint="Replace those layers with ones that have int8 kernels (e.g. ReLU instead of ELU), or build another target.",
        )
    report.notes.extend(_float_notes(floats, work.converted.float_fallback_layers))
    if req.eval_x is None and req.representative is None:
        report.notes.append("numeric check on uniform random inputs: no representative or evaluation data was given.")
    if numeric is not None and not numeric["ok"]:
        report.notes.append(
            f"WARNING: the artifact differs from the Keras model by {numeric['max_error']:.3g} (relative), "
            f"above the profile's tolerance {profile.tolerance}."
        )
    work.report = report


def _stage_evaluate(work: TargetWork, ctx: _Context) -> None:
    """Score the artifact on the held-out data through the interpreter (skipped without eval data)."""
    from edgekit.compile.check import artifact_row, evaluate

    req = ctx.request
    if req.eval_x is None or req.eval_y is None:
        return
    work.accuracy = evaluate(work.interpreter, req.eval_x, req.eval_y, num_classes=req.classes, output=req.spec.output)
    row = artifact_row(_row_label(work.profile, work.converted.float_fallback_layers), work.path, work.accuracy, target=work.profile.name)
    row["file"] = work.profile.artifact
    if req.reference_top1 is not None:
        row["drop"] = round((float(req.reference_top1) - row["top1"]) * 100.0, 4)  # points lost: positive = a loss
    work.row = row


def _stage_write(work: TargetWork, ctx: _Context) -> None:
    """Run the profile's adapter (the Edge TPU compiler) and make the manifest entries."""
    from edgekit.compile.check import io_info
    from edgekit.compile.registry import ADAPTERS
    from edgekit.runtime.backends import select_backend

    profile, report, root = work.profile, work.report, work.root
    inp, outp = io_info(work.interpreter)
    art_recipe = {
        **work.recipe,
        "quantization": profile.quantization,
        "io_dtype": profile.io_dtype,
        "calibration_samples": work.converted.calibration_samples,
        "float_fallback_layers": list(work.converted.float_fallback_layers),
    }
    backend = select_backend()
    work.versions["backend"] = {"interpreter": f"{backend.name} {backend.version}"}
    status = "ok"
    extra_entries: list[ArtifactEntry] = []
    if profile.adapter is not None:
        adapter = ADAPTERS[profile.adapter]()
        result = adapter.run(work.path, report, bundle_hint=str(ctx.request.out))
        status = result.status
        report.extra["compiler"] = result.info
        if result.info.get("version"):
            work.versions["compilers"] = {profile.adapter: result.info["version"]}
        for name, text in result.reports.items():
            (root / "reports" / name).write_text(text, encoding="utf-8")
        for f in result.extra_files:
            extra_entries.append(_compiled_entry(root, profile, f, art_recipe, result.info))
    entry = ArtifactEntry(
        target=profile.name,
        file=profile.artifact,
        sha256="",
        bytes=0,
        variant=profile.variant,
        input=inp,
        output=outp,
        accelerator=profile.accelerator,
        recipe=art_recipe,
        accuracy=work.accuracy,
        compatibility={**report.summary(), "report": f"reports/compat_{profile.name}.json"},
        status=status,
    )
    work.entries = [entry, *extra_entries]


#: The per-target stages, in order. A stage's EdgekitError fails that target
#: (recorded in ``Manifest.failures`` with the stage name); the others go on.
STAGES: tuple[tuple[str, Any], ...] = (
    ("convert", _stage_convert),
    ("check_numerics", _stage_check_numerics),
    ("analyse", _stage_analyse),
    ("evaluate", _stage_evaluate),
    ("write", _stage_write),
)


def run_build(request: BuildRequest, *, progress: Any = True, conversions: Any = None) -> BuildResult:
    """Carry out a :class:`BuildRequest`: every target through :data:`STAGES`, then the bundle, atomically.

    Args:
        request: from :meth:`BuildRequest.create`.
        progress: True (bars on stderr), False, or a reporter from :mod:`edgekit.progress`.
        conversions: a :class:`~edgekit.compile.convert.ConversionCache` (default: a new one).

    Returns:
        A :class:`BuildResult`; ``timings`` holds seconds per stage (summed over targets).

    Raises:
        ConfigError: the spec's output kind contradicts the model.
        TargetError: every target failed (nothing written, an older bundle stays).
    """
    from edgekit.compile.check import check_output_kind, keras_reference, model_output_kind
    from edgekit.compile.convert import ConversionCache
    from edgekit.progress import as_progress

    start = time.perf_counter()
    req = request
    timings: dict[str, float] = {}
    conversions = conversions if conversions is not None else ConversionCache()
    # The Keras outputs every artifact is compared with, computed once; they
    # also show whether the model ends in softmax, which the spec must say.
    check_x = _check_inputs(req)
    reference = keras_reference(req.model, check_x)
    check_output_kind(reference, req.spec.output)
    if reference.shape[-1] == 1 and model_output_kind(req.model) != req.spec.output:
        # A single output's values cannot reveal a sigmoid declared as logits
        # (the device would apply sigmoid twice): the architecture decides.
        raise ConfigError(
            f"the preprocessing spec says output={req.spec.output!r} but the model's single output "
            f"is {model_output_kind(req.model)} (read from its last layer).",
            hint=f"Set the spec's output={model_output_kind(req.model)!r}.",
        )
    uses_float = req.float_model is not None and any(p.quantization != "int8" for p in req.targets)
    float_reference = keras_reference(req.float_model, check_x) if uses_float else None
    timings["reference"] = time.perf_counter() - start
    ctx = _Context(req, conversions, check_x)
    writer = BundleWriter(req.out, overwrite=req.overwrite)
    reports: dict[str, CompatReport] = {}
    failures: list[dict[str, Any]] = []
    entries: list[ArtifactEntry] = []
    rows: list[dict[str, Any]] = []
    compiler_versions: dict[str, str | None] = {}
    backend_info: dict[str, str] = {}
    prog = as_progress(progress)
    with writer as w, prog.task("building", len(req.targets) * len(STAGES)) as task:
        for profile in req.targets:
            if uses_float and profile.quantization != "int8":
                work = TargetWork(profile, w.path, req.float_model, float_reference, _float_recipe(dict(req.recipe)))
            else:
                work = TargetWork(profile, w.path, req.model, reference, dict(req.recipe))
            done = 0
            try:
                for name, stage in STAGES:
                    task.update(info=f"{profile.name}: {name}")
                    t = time.perf_counter()
                    try:
                        stage(work, ctx)
                    except EdgekitError as e:
                        e.stage = name  # type: ignore[attr-defined]
                        raise
                    finally:
                        timings[name] = timings.get(name, 0.0) + time.perf_counter() - t
                    done += 1
                    task.advance()
            except EdgekitError as e:
                _discard(w.path, profile)
                failures.append({"target": profile.name, "stage": e.stage, "reason": e.message, "hint": e.hint})  # type: ignore[attr-defined]
                task.advance(len(STAGES) - done)
                continue
            entries.extend(work.entries)
            if work.row is not None:
                rows.append(work.row)
            reports[profile.name] = work.report
            compiler_versions.update(work.versions.get("compilers", {}))
            backend_info.update(work.versions.get("backend", {}))
            failures.extend(failures_from(work.report, profile))
        if not entries:
            detail = " ".join(f["reason"] for f in failures)
            hints = list(dict.fromkeys(f["hint"] for f in failures if f.get("hint")))
            raise TargetError(f"no target could be built, so no bundle was written: {detail}", hint=" ".join(hints) or None)
        tools = tool_versions({**backend_info, **compiler_versions})
        table = [*(dict(v) for v in req.variants), *rows]
        timings["total"] = time.perf_counter() - start
        build_times = {
            "phases": {k: round(v, 2) for k, v in req.phase_timings.items()},
            "build_stages": {k: round(v, 2) for k, v in timings.items()},
            "conversions": {k: (round(v, 2) if isinstance(v, float) else int(v)) for k, v in conversions.stats.items()},
        }
        _write_reports(w.path, reports, failures, tools, req.extra_reports, table, build_times)
        w.manifest = Manifest(
            labels=list(req.labels),
            preprocess=req.spec.to_dict(),
            source_model=dict(req.source_model),
            artifacts=entries,
            recipe=dict(req.recipe),
            variants=table,
            failures=failures,
            tools=tools,
        )
    return BuildResult(load_bundle(writer.dest), reports, failures, time.perf_counter() - start, timings)


def _discard(root: Path, profile: TargetProfile) -> None:
    """Remove a failed target's files from the staged bundle: nothing unlisted may ship."""
    stem = Path(profile.artifact).stem
    for name in (profile.artifact, f"{stem}_edgetpu.tflite"):  # the compiler's output name
        (root / name).unlink(missing_ok=True)


def failures_from(report: CompatReport, profile: TargetProfile) -> list[dict[str, Any]]:
    """Adapter steps that ran and failed (the artifact itself still ships)."""
    comp = report.extra.get("compiler") or {}
    if comp.get("status") == "failed":
        return [{"target": profile.name, "stage": "edgetpu_compiler", "reason": comp.get("message", "failed")}]
    return []


def _float_recipe(recipe: dict[str, Any]) -> dict[str, Any]:
    """The recipe of an artifact converted from ``float_model`` (the model before QAT)."""
    out = {**recipe, "converted_from": "float_model"}
    if out.get("qat"):
        out["qat"] = False
    return out


def _check_float_model(model: Any, float_model: Any) -> None:
    """``float_model`` must take and give what ``model`` does.

    Raises:
        ConfigError: a different input or output shape.
        TargetError: a model with several inputs/outputs or unknown sizes.
    """
    from edgekit.compile.convert import model_io

    if not hasattr(float_model, "inputs") or not hasattr(float_model, "layers"):
        raise ConfigError(f"float_model must be a tf_keras model; received {type(float_model).__name__}.")
    want, got = model_io(model), model_io(float_model)
    if (want[0], tuple(want[1])[1:]) != (got[0], tuple(got[1])[1:]):
        raise ConfigError(
            f"float_model must have the same input and output as model. Expected input {want[0]}, output "
            f"{tuple(want[1])[1:]}; received input {got[0]}, output {tuple(got[1])[1:]}.",
            hint="Pass the same network before QAT (pruned or original weights) as float_model.",
        )


def _check_converted(plan: BuildRequest, converted: Mapping[str, Any] | None) -> dict[str, Any]:
    """Pre-converted artifacts, checked against the plan (target names, fallback layers, calibration).

    Raises:
        ConfigError: a name that is not one of the build's targets, or a conversion
            made with other fallback layers or another number of calibration samples.
    """
    from edgekit.compile.convert import Converted

    if not converted:
        return {}
    if not isinstance(converted, Mapping):
        raise ConfigError(f"converted must map target names to Converted results; received {type(converted).__name__}.")
    by_name = {p.name: p for p in plan.targets}
    for name, c in converted.items():
        if name not in by_name:
            raise ConfigError(
                f"converted names target {name!r}, which this build does not make; its targets are: {', '.join(by_name)}."
            )
        if not isinstance(c, Converted):
            raise ConfigError(f"converted[{name!r}] must be a Converted from convert_model; received {type(c).__name__}.")
        profile = by_name[name]
        int8 = profile.quantization == "int8"
        want_fallback = plan.fallback if int8 else ()
        if tuple(c.float_fallback_layers) != want_fallback:
            raise ConfigError(
                f"converted[{name!r}] keeps {list(c.float_fallback_layers)} in float but this build keeps {list(want_fallback)}.",
                hint="Pass only a conversion made with the build's float_fallback_layers.",
            )
        want_samples = len(plan.representative) if int8 and plan.representative is not None else 0
        if c.calibration_samples != want_samples:
            raise ConfigError(
                f"converted[{name!r}] was calibrated on {c.calibration_samples} samples but this build's "
                f"representative set has {want_samples}.",
                hint="Pass only a conversion made with the build's representative samples.",
            )
    return dict(converted)


def _row_label(profile: TargetProfile, kept: Sequence[str]) -> str:
    """The evaluation-table name of a target's artifact, e.g. "cpu int8 + 2 float layer(s) .tflite"."""
    extra = f" + {len(kept)} float layer(s)" if kept else ""
    return f"{profile.name} {profile.variant}{extra} .tflite"


def _check_inputs(plan: BuildRequest) -> np.ndarray:
    """Inputs for the numeric checks: held-out data, else the calibration samples, else uniform noise."""
    n = max(p.check_samples for p in plan.targets)
    x = plan.eval_x if plan.eval_x is not None else plan.representative
    if x is None:
        return np.random.default_rng(0).random((n, *plan.input_shape), dtype=np.float32)
    return x[:n]


def _compiled_entry(root: Path, profile: TargetProfile, f: dict[str, Any], recipe: dict[str, Any], info: dict[str, Any]) -> ArtifactEntry:
    from edgekit.compile.edgetpu_compiler import compiled_entry

    return compiled_entry(
        root, f["file"], target=profile.name, accelerator=profile.accelerator, recipe=recipe, info=info, compiled_from=f["compiled_from"]
    )


def float_ops(graph: Any) -> list[Any]:
    """Ops of an int8 artifact that compute in float (no int8 kernel), besides the I/O (de)quantization."""
    boundary = {"QUANTIZE", "DEQUANTIZE"}
    return [
        op for op in graph.ops
        if op.name not in boundary
        and any(graph.tensors[i].dtype in ("float32", "float16") for i in op.outputs)
    ]


def _float_notes(floats: Sequence[Any], kept: Sequence[str]) -> list[str]:
    """For int8 targets: the float ops, and whether they were asked for."""
    if not floats:
        return []
    names = ", ".join(sorted({op.name for op in floats}))
    why = f" ({len(kept)} requested float fallback layer(s): {', '.join(kept)})" if kept else ""
    return [f"{len(floats)} op(s) run in float inside this int8 artifact: {names}{why}; the rest is int8."]


_OWN_REPORTS = ("build.json", "variants.json", "edgetpu_compiler.log")  # edgetpu_compiler.LOG_REPORT  # plus compat_<target>.json/.txt


def _check_extra_reports(extra: Mapping[str, Any] | None) -> None:
    for name, value in (extra or {}).items():
        if name in _OWN_REPORTS or str(name).startswith("compat_"):
            raise ConfigError(f"extra report name {name!r} is reserved for the build's own reports; choose another name.")
        if not isinstance(name, str) or not name or name.startswith((".", "/")) or ".." in Path(name).parts:
            raise ConfigError(f"extra report name {name!r} must be a relative file name inside reports/.")
        if not isinstance(value, (bytes, str, dict, list)):
            raise ConfigError(f"extra report {name!r} is {type(value).__name__}; expected bytes, text, or a JSON-able dict/list.")


def _write_reports(
    root: Path,
    reports: dict[str, CompatReport],
    failures: list[dict[str, Any]],
    tools: dict[str, str],
    extra: Mapping[str, Any] | None,
    variants: list[dict[str, Any]],
    timings: Mapping[str, Any] | None = None,
) -> None:
    rdir = root / "reports"
    for target, rep in reports.items():
        (rdir / f"compat_{target}.json").write_text(json.dumps(rep.to_dict(), indent=2, default=json_default) + "\n")
        (rdir / f"compat_{target}.txt").write_text(rep.to_text())
    summary = {
        "targets": {t: r.summary() for t, r in reports.items()},
        "failures": failures,
        "tools": tools,
        "timings": dict(timings or {}),  # seconds: the caller's phases, the build's stages, conversion counts
    }
    (rdir / "build.json").write_text(json.dumps(summary, indent=2, default=json_default) + "\n")
    if variants:  # the manifest's evaluation table, on its own
        (rdir / "variants.json").write_text(json.dumps(variants, indent=2, default=json_default) + "\n")
    for name, value in (extra or {}).items():
        dest = rdir / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(value, bytes):
            dest.write_bytes(value)
        elif isinstance(value, str):
            dest.write_text(value, encoding="utf-8")
        else:
            dest.write_text(json.dumps(value, indent=2, default=json_default) + "\n")
