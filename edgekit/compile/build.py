"""Build a bundle: one checked, analysed, evaluated artifact per target.

:func:`build_bundle` is what ``edgekit compress`` calls after fine-tuning. For
each target it converts, runs the profile's compatibility analysis, checks the
artifact numerically against the Keras model, runs the profile's adapter (the
Edge TPU compiler) and scores the artifact on the held-out data through the
interpreter; each scored artifact adds a row to the manifest's evaluation
table (``variants``), after the caller's own rows. A target that fails (e.g.
the converter raises) is recorded in ``Manifest.failures`` and the others
still ship; if none succeeds nothing is written. The bundle appears atomically
(see :class:`edgekit.bundle.BundleWriter`).

int8 targets are converted from ``model``; float targets (fp16/fp32) from
``float_model`` when one is given: a QAT model's fake-quant nodes would make
the converter emit int8 ops in them, so compress passes the model before QAT.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
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
        }


@dataclass
class _Plan:
    """The validated request; everything checked before the first conversion."""

    targets: tuple[TargetProfile, ...]
    input_shape: tuple[int, ...]
    classes: int | None
    representative: np.ndarray | None
    eval_x: np.ndarray | None
    eval_y: np.ndarray | None
    fallback: tuple[str, ...]


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
    return _plan(model, targets, device, representative, eval_data, labels, spec, float_fallback_layers).targets


def _plan(
    model: Any,
    targets: Sequence[str | Path | TargetProfile] | None,
    device: str | Path | None,
    representative: np.ndarray | None,
    eval_data: tuple[np.ndarray, np.ndarray] | None,
    labels: Sequence[str] | None,
    spec: Any,
    float_fallback_layers: Sequence[str],
) -> _Plan:
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
    return _Plan(profiles, shape, classes, rep, ex, ey, fallback)


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
    progress: bool = True,
    float_model: Any = None,
    converted: Mapping[str, Any] | None = None,
    reference_top1: float | None = None,
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
        progress: show a progress bar on stderr.
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
            row then gets ``drop``, the top-1 points it loses against it.

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
    from edgekit.compile.check import check_output_kind, keras_reference, model_output_kind

    start = time.perf_counter()
    spec = _as_spec(spec)
    if labels is None:
        raise DataError("labels are required: one class name per model output.")
    plan = _plan(model, targets, device, representative, eval_data, labels, spec, float_fallback_layers)
    _check_extra_reports(extra_reports)
    if float_model is not None:
        _check_float_model(model, float_model)
    prebuilt = _check_converted(plan, converted)
    # The Keras outputs every artifact is compared with, computed once; they
    # also show whether the model ends in softmax, which the spec must say.
    check_x = _check_inputs(plan)
    reference = keras_reference(model, check_x)
    check_output_kind(reference, spec.output)
    if reference.shape[-1] == 1 and model_output_kind(model) != spec.output:
        # A single output's values cannot reveal a sigmoid declared as logits
        # (the device would apply sigmoid twice): the architecture decides.
        raise ConfigError(
            f"the preprocessing spec says output={spec.output!r} but the model's single output "
            f"is {model_output_kind(model)} (read from its last layer).",
            hint=f"Set the spec's output={model_output_kind(model)!r}.",
        )
    uses_float = float_model is not None and any(p.quantization != "int8" for p in plan.targets)
    float_reference = keras_reference(float_model, check_x) if uses_float else None
    writer = BundleWriter(out, overwrite=overwrite)
    reports: dict[str, CompatReport] = {}
    failures: list[dict[str, Any]] = []
    entries: list[ArtifactEntry] = []
    rows: list[dict[str, Any]] = []
    compiler_versions: dict[str, str | None] = {}
    backend_info: dict[str, str] = {}
    with writer as w, _progress(progress, len(plan.targets)) as step:
        for profile in plan.targets:
            step(f"{profile.name}: converting")
            source = _Source(model, reference, recipe or {})
            if uses_float and profile.quantization != "int8":
                source = _Source(float_model, float_reference, _float_recipe(recipe or {}))
            try:
                built, report, versions, row = _build_target(
                    w.path, profile, plan, source, step, check_x, bundle_hint=str(out), prebuilt=prebuilt.get(profile.name),
                    output=spec.output,
                )
            except EdgekitError as e:
                _discard(w.path, profile)
                failures.append(
                    {"target": profile.name, "stage": getattr(e, "stage", "build"), "reason": e.message, "hint": e.hint}
                )
                step(f"{profile.name}: failed", advance=True)
                continue
            entries.extend(built)
            if row is not None:
                if reference_top1 is not None:
                    row["drop"] = round((float(reference_top1) - row["top1"]) * 100.0, 4)
                rows.append(row)
            reports[profile.name] = report
            compiler_versions.update(versions.get("compilers", {}))
            backend_info.update(versions.get("backend", {}))
            for p in failures_from(report, profile):
                failures.append(p)
            step(f"{profile.name}: done", advance=True)
        if not entries:
            detail = " ".join(f["reason"] for f in failures)
            hints = list(dict.fromkeys(f["hint"] for f in failures if f.get("hint")))
            raise TargetError(f"no target could be built, so no bundle was written: {detail}", hint=" ".join(hints) or None)
        tools = tool_versions({**backend_info, **compiler_versions})
        table = [*(variants or []), *rows]
        _write_reports(w.path, reports, failures, tools, extra_reports, table)
        w.manifest = Manifest(
            labels=list(labels),
            preprocess=spec.to_dict(),
            source_model=dict(source_model or {"name": getattr(model, "name", "model")}),
            artifacts=entries,
            recipe=dict(recipe or {}),
            variants=table,
            failures=failures,
            tools=tools,
        )
    return BuildResult(load_bundle(writer.dest), reports, failures, time.perf_counter() - start)


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


@dataclass(frozen=True)
class _Source:
    """The Keras model one target is converted from, its outputs on the check inputs, and its recipe."""

    model: Any
    reference: np.ndarray
    recipe: dict[str, Any]


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


def _check_converted(plan: _Plan, converted: Mapping[str, Any] | None) -> dict[str, Any]:
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


def _build_target(
    root: Path,
    profile: TargetProfile,
    plan: _Plan,
    source: _Source,
    step: Any,
    check_x: np.ndarray,
    *,
    bundle_hint: str,
    prebuilt: Any = None,
    output: str = "probabilities",
) -> tuple[list[ArtifactEntry], CompatReport, dict[str, Any], dict[str, Any] | None]:
    from edgekit.compile.check import artifact_row, evaluate, io_info, load_interpreter, numeric_check
    from edgekit.compile.convert import convert_model
    from edgekit.compile.registry import ADAPTERS, ANALYSES
    from edgekit.runtime.backends import select_backend
    from edgekit.tflite_graph import read_graph

    model, reference, recipe = source.model, source.reference, source.recipe
    converted = prebuilt
    if converted is None:
        converted = _staged("convert", convert_model, model, profile, plan.representative, float_fallback_layers=plan.fallback)
    path = root / profile.artifact
    path.write_bytes(converted.content)
    graph = read_graph(path)
    # Load first: an interpreter that refuses the artifact is this target's
    # recorded failure, before any analysis loads it unguarded.
    interp = _staged("load", load_interpreter, path, target=profile.name)
    step(f"{profile.name}: compatibility")
    report = _staged("analysis", ANALYSES[profile.analysis], path, graph, profile.name)
    report.notes.extend(_float_notes(graph, profile, converted.float_fallback_layers))
    step(f"{profile.name}: numeric check")
    if plan.eval_x is None and plan.representative is None:
        report.notes.append("numeric check on uniform random inputs: no representative or evaluation data was given.")
    n = profile.check_samples
    numeric = _staged(
        "numeric_check", numeric_check, model, interp, check_x[:n], profile.tolerance, target=profile.name, reference=reference[:n]
    )
    report.numeric = numeric
    if not numeric["ok"]:
        report.notes.append(
            f"WARNING: the artifact differs from the Keras model by {numeric['max_error']:.3g} (relative), "
            f"above the profile's tolerance {profile.tolerance}."
        )
    accuracy = row = None
    if plan.eval_x is not None and plan.eval_y is not None:
        step(f"{profile.name}: evaluating")
        accuracy = _staged(
            "evaluate", evaluate, interp, plan.eval_x, plan.eval_y, num_classes=plan.classes, output=output
        )
        row = artifact_row(_row_label(profile, converted.float_fallback_layers), path, accuracy, target=profile.name)
        row["file"] = profile.artifact
    inp, outp = io_info(interp)
    art_recipe = {
        **recipe,
        "quantization": profile.quantization,
        "io_dtype": profile.io_dtype,
        "calibration_samples": converted.calibration_samples,
        "float_fallback_layers": list(converted.float_fallback_layers),
    }
    versions: dict[str, Any] = {}
    backend = select_backend()
    versions["backend"] = {"interpreter": f"{backend.name} {backend.version}"}
    status = "ok"
    extra_entries: list[ArtifactEntry] = []
    if profile.adapter is not None:
        step(f"{profile.name}: {profile.adapter}")
        adapter = ADAPTERS[profile.adapter]()
        result = adapter.run(path, report, bundle_hint=bundle_hint)
        status = result.status
        report.extra["compiler"] = result.info
        if result.info.get("version"):
            versions["compilers"] = {profile.adapter: result.info["version"]}
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
        accuracy=accuracy,
        compatibility={**report.summary(), "report": f"reports/compat_{profile.name}.json"},
        status=status,
    )
    return [entry, *extra_entries], report, versions, row


def _check_inputs(plan: _Plan) -> np.ndarray:
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


def _float_notes(graph: Any, profile: TargetProfile, kept: Sequence[str]) -> list[str]:
    """For int8 targets: ops the converter left in float (no int8 kernel) besides the requested ones."""
    if profile.quantization != "int8":
        return []
    boundary = {"QUANTIZE", "DEQUANTIZE"}
    floats = [
        op for op in graph.ops
        if op.name not in boundary
        and any(graph.tensors[i].dtype in ("float32", "float16") for i in op.outputs)
    ]
    if not floats:
        return []
    names = ", ".join(sorted({op.name for op in floats}))
    why = f" ({len(kept)} requested float fallback layer(s): {', '.join(kept)})" if kept else ""
    return [f"{len(floats)} op(s) run in float inside this int8 artifact: {names}{why}; the rest is int8."]


def _staged(stage: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Run one build stage; its EdgekitError carries the stage name into Manifest.failures."""
    try:
        return fn(*args, **kwargs)
    except EdgekitError as e:
        e.stage = stage  # type: ignore[attr-defined]
        raise


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
) -> None:
    rdir = root / "reports"
    for target, rep in reports.items():
        (rdir / f"compat_{target}.json").write_text(json.dumps(rep.to_dict(), indent=2, default=json_default) + "\n")
        (rdir / f"compat_{target}.txt").write_text(rep.to_text())
    summary = {
        "targets": {t: r.summary() for t, r in reports.items()},
        "failures": failures,
        "tools": tools,
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


class _progress:
    """A Rich progress bar on stderr (or nothing); call the instance to update it."""

    def __init__(self, enabled: bool, total: int):
        self.enabled = enabled
        self.total = total
        self._bar: Any = None
        self._task: Any = None

    def __enter__(self) -> "_progress":
        if self.enabled:
            from rich.console import Console
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

            self._bar = Progress(
                TextColumn("[bold]building[/]"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                TextColumn("{task.description}"), TimeElapsedColumn(),
                console=Console(stderr=True), transient=True,
            )
            self._bar.__enter__()
            self._task = self._bar.add_task("", total=self.total)
        return self

    def __call__(self, description: str, *, advance: bool = False) -> None:
        if self._bar is not None:
            self._bar.update(self._task, description=description, advance=1 if advance else 0)

    def __exit__(self, *exc: Any) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)
