"""``compress``: model + data + recipe → a measured, verified bundle.

The order is fixed: check everything that can be checked (recipe, targets,
output path, preprocessing, labels) before any training; then structured
pruning, magnitude pruning, QAT, per-layer int8 error, the accuracy budget
loop, and finally :func:`edgekit.compile.build_bundle`, which converts, checks
and scores one artifact per target (its rows close the evaluation table; float
targets are converted from the model before QAT) and writes the bundle
atomically. The budget loop and the build convert through one
:class:`~edgekit.compile.convert.ConversionCache`, so each distinct artifact is
converted once and int8 targets share one calibration. Nothing is written under ``out`` before that last step, so
Ctrl-C or a failure at any point leaves an earlier bundle there untouched.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from edgekit.bundle.store import locks_output
from edgekit.compress.calibrate import DEBUG_SAMPLES
from edgekit.compress.progress import NullProgress, as_progress
from edgekit.compress.recipe import Recipe, load_recipe
from edgekit.errors import ConfigError, EdgekitError, first_line
from edgekit.interrupts import checkpoint, handles_signals

MIN_PER_CLASS = 5  # a class needs a held-out sample and a few to train on


@dataclass
class CompressResult:
    """What :func:`compress` did: the bundle, the evaluation table and every step's report."""

    bundle: Path
    recipe: Recipe
    variants: list[dict[str, Any]]  # evaluation rows: float, structured, pruned, QAT, each .tflite
    reports: dict[str, Any]  # structured / pruning / qat / budget / layer_errors / data
    notes: list[str]
    timings: dict[str, float]
    build: Any = field(repr=False, default=None)  # edgekit.compile.BuildResult

    @property
    def budget_met(self) -> bool:
        budget = self.reports.get("budget") or {}
        return bool(budget.get("met", True))

    def to_dict(self) -> dict[str, Any]:
        return {
            "bundle": str(self.bundle),
            "recipe": self.recipe.to_dict(),
            "variants": self.variants,
            "reports": self.reports,
            "notes": self.notes,
            "timings": self.timings,
            "artifacts": self.build.to_dict()["artifacts"] if self.build is not None else [],
            "failures": self.build.failures if self.build is not None else [],
        }


def resolve_recipe(recipe: Recipe | str | Path | None = None, overrides: Mapping[str, Any] | None = None) -> Recipe:
    """The recipe to run: a Recipe, a shipped name or a .toml path (default: ``default``), then flag overrides.

    An override of ``sparsity`` switches the recipe's ``mn`` off and vice versa
    (a flag wins over the file). Override values of None mean "not given".

    Example:
        >>> resolve_recipe("aggressive-size", {"sparsity": 0.5}).sparsity
        0.5
    """
    base = recipe if isinstance(recipe, Recipe) else load_recipe(recipe if recipe is not None else "default")
    given = {k: v for k, v in (overrides or {}).items() if v is not None}
    if "sparsity" in given and "mn" not in given and base.mn is not None:
        base = base.without("mn")
    if "mn" in given and "sparsity" not in given and base.sparsity is not None:
        base = base.without("sparsity")
    return base.with_overrides(**given)


def describe_recipe(recipe: Recipe) -> str:
    """What a recipe does, read from its fields (not its description, which flags may contradict).

    Example:
        >>> describe_recipe(resolve_recipe("default", {"qat": False}))
        'full int8 (200 calibration samples), at most 1 top-1 point lost'
    """
    steps = []
    if recipe.structured is not None:
        steps.append(f"remove {recipe.structured:.0%} of channels")
    if recipe.sparsity is not None:
        steps.append(f"prune {recipe.sparsity:.0%}")
    if recipe.mn is not None:
        steps.append(f"prune {recipe.mn}")
    if recipe.distill and (recipe.prunes or recipe.qat):
        steps.append("distill")
    if recipe.qat:
        steps.append("QAT")
    steps.append(f"full int8 ({recipe.calibration_samples} calibration samples)")
    text = " + ".join(steps)
    if recipe.max_accuracy_drop is not None:
        pts = f"{recipe.max_accuracy_drop:g}"
        text += f", at most {pts} top-1 point{'' if pts == '1' else 's'} lost"
    return text


def resolve_preprocess(model_path: str | Path, loaded: Any, preprocess: Any = None) -> tuple[Any, list[str] | None, str]:
    """The preprocessing spec (and labels, when known) for a model.

    Order: ``preprocess`` when given (a PreprocessSpec, a dict, a preset name,
    or a JSON file holding a spec or ``{"preprocess": spec, "labels": [...]}``),
    else the ``<model>.preprocess.json`` sidecar written beside the model.

    Returns:
        (spec, labels or None, where the spec came from).

    Raises:
        ConfigError: no spec found, an unreadable file, an unknown preset, or a
            spec whose image shape differs from the model input.
    """
    from edgekit.example import spec_path_for
    from edgekit.preprocess import PreprocessSpec, list_presets

    h, w, c = loaded.input_shape
    labels = None
    source = ""
    rescales = _rescaling_layer(loaded.model)
    if preprocess is None and rescales and not spec_path_for(model_path).is_file():
        # The model scales its own pixels: feeding it x / 255 would scale twice (a model at chance, silently).
        from edgekit.compile.check import model_output_kind

        spec = PreprocessSpec.from_preset("raw", (h, w), channels=c, output=model_output_kind(loaded.model))
        preprocess, source = spec, f"inferred: the model starts with {rescales}, so pixels go in as 0-255 floats (preset raw)"
    if preprocess is None:
        sidecar = spec_path_for(model_path)
        if not sidecar.is_file():
            raise ConfigError(
                f"no preprocessing spec for {Path(model_path).name}: expected {sidecar.name} beside it, or --preprocess "
                f"with a preset ({', '.join(list_presets())}) or a JSON spec file.",
                hint=f"e.g. --preprocess unit (pixels / 255) for a {h}x{w}x{c} input.",
            )
        spec, labels = _spec_from_json(sidecar)
        source = str(sidecar)
    elif isinstance(preprocess, PreprocessSpec):
        spec = preprocess
        source = source if rescales and source.startswith("inferred") else "argument"
    elif isinstance(preprocess, dict):
        spec, labels = _spec_from_obj(preprocess, "the preprocess argument")
        source = "argument"
    elif str(preprocess) in list_presets():
        from edgekit.compile.check import model_output_kind

        spec = PreprocessSpec.from_preset(str(preprocess), (h, w), channels=c, output=model_output_kind(loaded.model))
        source = f"preset {preprocess}"
    else:
        p = Path(preprocess)
        if not p.is_file():
            raise ConfigError(
                f"--preprocess {str(preprocess)!r} is neither a preset ({', '.join(list_presets())}) nor an existing JSON file."
            )
        spec, labels = _spec_from_json(p)
        source = str(p)
    if tuple(spec.shape) != (h, w, c):
        raise ConfigError(
            f"the preprocessing spec ({source}) makes {spec.shape[0]}x{spec.shape[1]}x{spec.shape[2]} inputs "
            f"but the model expects {h}x{w}x{c}.",
            hint="Fix input_size/channels in the spec, or pass the spec that belongs to this model.",
        )
    return spec, labels, source


def _rescaling_layer(model: Any) -> str | None:
    """The class name of a Rescaling/Normalization layer the model starts with, or None."""
    for layer in getattr(model, "layers", [])[:3]:
        name = type(layer).__name__
        if name in ("Rescaling", "Normalization"):
            return name
        if name != "InputLayer":
            return None
    return None


def check_inputs_early(data: str | Path, preprocess: Any, targets: Any = ()) -> None:
    """Refuse unknown targets, a missing data path or an unusable --preprocess before the model's 8-12 s load."""
    from edgekit.errors import DataError
    from edgekit.preprocess import list_presets
    from edgekit.profiles import resolve_target

    for t in targets or ():
        resolve_target(t)

    if not Path(data).exists():
        raise DataError(f"data {data} does not exist.", hint="Give a folder of labelled images (one subfolder per class) or an .npz.")
    if isinstance(preprocess, (str, Path)) and str(preprocess) not in list_presets():
        p = Path(preprocess)
        if not p.is_file():
            raise ConfigError(
                f"--preprocess {str(preprocess)!r} is neither a preset ({', '.join(list_presets())}) nor an existing JSON file."
            )
        _spec_from_json(p)


def _spec_from_json(path: Path) -> tuple[Any, list[str] | None]:
    from edgekit.jsonio import parse_json

    try:
        text = path.read_bytes()
    except OSError as e:
        raise ConfigError(f"cannot read preprocessing spec {path}: {e.strerror or e}.") from e
    return _spec_from_obj(parse_json(text, what=f"preprocessing spec {path}"), str(path))


def _spec_from_obj(data: Any, where: str) -> tuple[Any, list[str] | None]:
    from edgekit.preprocess import PreprocessSpec

    if isinstance(data, dict) and "preprocess" in data:
        labels = data.get("labels")
        if labels is not None and (not isinstance(labels, list) or not all(isinstance(x, str) for x in labels)):
            raise ConfigError(f"{where}: 'labels' must be a list of class names.")
        try:
            return PreprocessSpec.from_dict(data["preprocess"]), labels
        except ConfigError as e:
            raise ConfigError(f"{where}: {e.message}", hint=e.hint) from None
    try:
        return PreprocessSpec.from_dict(data), None
    except ConfigError as e:
        raise ConfigError(f"{where}: {e.message}", hint=e.hint) from None


@handles_signals  # SIGTERM like Ctrl-C; an interrupt something swallowed still ends the run
@locks_output("out")  # a second run on the same --out fails at once, naming this one's PID
def compress(
    model_path: str | Path,
    data: str | Path,
    out: str | Path,
    *,
    recipe: Recipe | str | Path | None = None,
    targets: list[str] | tuple[str, ...] | None = None,
    device: str | Path | None = None,
    preprocess: Any = None,
    overrides: Mapping[str, Any] | None = None,
    allow_unsafe: bool = False,
    overwrite: bool = True,
    progress: bool | NullProgress = True,
    strategy: str = "auto",
) -> CompressResult:
    """Compress a trained Keras CNN with a recipe and write a bundle with measured accuracy.

    Args:
        model_path: a .keras / .h5 file or a tf_keras SavedModel folder.
        data: labelled images (one subfolder per class) or an .npz with x and y.
        out: the bundle folder to create (an earlier bundle there is replaced atomically).
        recipe: a :class:`Recipe`, a shipped recipe name or a .toml path; default ``default``.
        targets: target names (overrides the recipe's ``targets``).
        device: a device profile name or .toml file: builds the device's targets in its order,
            replacing the recipe's ``targets``; with ``targets`` given too, every one of them
            must be a target the device runs.
        preprocess: a preset name, JSON file, dict or PreprocessSpec; default: the model's sidecar.
        overrides: recipe fields to replace (the CLI flags); None values are ignored.
        allow_unsafe: allow Lambda layers / custom objects in the model file.
        overwrite: replace an existing bundle at ``out``.
        progress: Rich progress bars on stderr (or a reporter from :mod:`edgekit.compress.progress`).
        strategy: fine-tuning's ``tf.distribute`` strategy: "auto", "none", "mirrored" or
            "multiworker" (see :mod:`edgekit.compress.distribute`); the recipe's batch_size is per replica.

    Returns:
        A :class:`CompressResult`; ``budget_met`` is False when ``max_accuracy_drop`` could not be met
        (the bundle then holds the closest variant, and the reports say so).

    Raises:
        ConfigError, DataError, TargetError, ModelLoadError, BundleError: bad input, before any training.

    Example::

        result = compress("digits_cnn.keras", "calibration/digits", "out/bundle", recipe="aggressive-size")
        for row in result.variants:
            print(row["variant"], row["top1"], row["gzip_bytes"])
    """
    from edgekit.bundle import BundleWriter
    from edgekit.compile.build import build_bundle, check_build_request
    from edgekit.compile.check import model_output_kind
    from edgekit.data import check_labels, load_dataset, sample_stratified, split_dataset
    from edgekit.intake import load_model

    t0 = time.perf_counter()
    timings: dict[str, float] = {}
    notes: list[str] = []
    over = dict(overrides or {})
    if targets is not None:
        over["targets"] = tuple(targets)
    if device is not None:
        from edgekit.profiles import resolve_targets

        # The device decides the targets unless they were named; named ones must be the device's.
        over["targets"] = tuple(p.name for p in resolve_targets(over.get("targets"), device))
    rcp = resolve_recipe(recipe, over)
    prog = as_progress(progress)
    BundleWriter(out, overwrite=overwrite)  # refuses a non-bundle folder at `out` now, not after training
    from edgekit.compress.distribute import resolve_strategy

    training = resolve_strategy(strategy)  # before TensorFlow runs anything: multi-worker needs that

    check_inputs_early(data, preprocess, rcp.targets)
    loaded = load_model(model_path, allow_unsafe=allow_unsafe, require_bridge=False)
    notes.extend(loaded.notes)  # what intake changed: nested models inlined, no-op layers removed, --allow-unsafe layers
    rcp = _without_bridge(loaded, rcp, over, notes)
    spec, labels, spec_source = resolve_preprocess(model_path, loaded, preprocess)
    output_kind = model_output_kind(loaded.model)
    if spec.output != output_kind and loaded.num_outputs == 1:
        # Unlike softmax rows, a single output's values cannot show the mismatch later: refuse it now.
        raise ConfigError(
            f"the preprocessing spec ({spec_source}) says the model outputs {spec.output}, but its single output "
            f"gives {output_kind}; the device would {'apply sigmoid twice' if output_kind == 'probabilities' else 'take logits for probabilities'}.",
            hint=f"Set the spec's output={output_kind!r}.",
        )
    if loaded.num_outputs == 1 and output_kind == "logits":
        notes.append(
            "the model has a single linear output: it is treated as a binary classifier's logit (sigmoid > 0.5 is class 1). "
            "edgekit builds classifiers only; if this is a regression head, every accuracy below is meaningless."
        )
    if spec.output != output_kind:
        notes.append(
            f"the preprocessing spec says the model outputs {spec.output}, but its last layer gives {output_kind}; "
            f"fine-tuning treats the outputs as {output_kind}."
        )
    ds = load_dataset(data, spec, labelled=True, class_names=labels)
    counts = check_labels(ds, loaded.num_outputs, min_per_class=MIN_PER_CLASS)
    labels = list(ds.class_names)
    profiles = check_build_request(
        model=loaded.model, targets=list(rcp.targets), representative=ds[:1], labels=labels, spec=spec
    )
    train, held = split_dataset(ds, holdout=rcp.holdout, seed=rcp.seed)
    if rcp.eval_samples is not None and rcp.eval_samples < len(held):
        held = sample_stratified(held, rcp.eval_samples, seed=rcp.seed)
    timings["load"] = time.perf_counter() - t0
    peaks: dict[str, float | None] = {"load": _peak_rss_mb()}
    data_report = {
        "source": str(data),
        "samples": len(ds),
        "train": len(train),
        "held_out": len(held),  # scored for every variant (at most eval_samples of the split)
        "per_class": counts,
        "skipped_files": len(ds.skipped),
        "preprocess_from": spec_source,
        "fine_tuning": {**training.to_dict(), "batch_per_replica": rcp.batch_size, "global_batch": training.global_batch(rcp.batch_size)},
    }

    state = _Run(loaded.model, train, held, len(labels), output_kind, rcp, prog, timings)
    state.global_batch = training.global_batch(rcp.batch_size)
    with training.scope():  # tfmot wrappers, compile and fit are built under the strategy
        rows = state.run()
    notes.extend(state.notes)
    checkpoint()
    chance = chance_warning(rows[0]["top1"], len(labels), len(held), spec_source)
    if chance:
        notes.insert(0, chance)
    peaks["fine_tune"] = _peak_rss_mb()

    t = time.perf_counter()
    rep = _representative(train, rcp, prog)
    errors = []
    try:
        from edgekit.compress.calibrate import layer_errors

        int8 = [p for p in profiles if p.quantization == "int8" and p.batch == 1]
        # Through the run's conversion cache: an int8 conversion of the float model later reuses this calibration.
        errors = layer_errors(state.float_model, rep, progress=prog, conversions=state.conversions, profile=int8[0] if int8 else None)
    except Exception as e:  # noqa: BLE001 - the debug report is informative; a failure must not cost the run
        checkpoint()  # ...but a Ctrl-C that surfaced as OSError in TF's cleanup is not a report failure
        notes.append(f"per-layer quantization error report unavailable: {first_line(e, limit=200)}")
    timings["layer_errors"] = time.perf_counter() - t
    checkpoint()
    peaks["layer_errors"] = _peak_rss_mb()

    t = time.perf_counter()
    noted = len(state.notes)
    budget, final_model, fallback = state.budget(profiles, rep, errors)
    notes.extend(state.notes[noted:])  # the budget loop's own notes (a QAT model that does not convert, ...)
    timings["budget"] = time.perf_counter() - t
    checkpoint()
    peaks["budget"] = _peak_rss_mb()
    if budget is not None and not budget.met:
        notes.append(budget.message)
    if state.qat_unusable:
        for row in rows:
            if row["variant"] in ("QAT", "PQAT"):
                row["note"] = "not shipped: no working int8 artifact from it"
    from edgekit.compress.evaluate import add_drops

    add_drops(rows, state.reference_top1)

    reports: dict[str, Any] = {
        "data": data_report,
        "structured": state.structured.to_dict() if state.structured else None,
        "pruning": state.pruning.to_dict() if state.pruning else None,
        "qat": state.qat.to_dict() if state.qat else None,
        "qat_int8_problem": state.qat_unusable,  # why the int8 artifacts come from the model before QAT, or None
        "budget": budget.to_dict() if budget else None,
        "layer_errors": [e.to_dict() for e in errors],
        # QAT models have learned ranges the debugger cannot re-calibrate; the report is of the model before QAT.
        "layer_errors_of": "the float model int8 calibration starts from" + (" (after pruning)" if state.pruning or state.structured else "")
        + (", before QAT" if state.qat_model is not None else "")
        + f"; measured on {min(len(rep), DEBUG_SAMPLES)} of the {len(rep)} calibration samples",
    }
    t = time.perf_counter()
    build = build_bundle(
        out,
        model=final_model,
        # fp16/fp32 targets: the model before QAT, whose weights carry no fake-quant nodes.
        float_model=state.float_model if final_model is not state.float_model else None,
        conversions=state.conversions,  # the budget loop's conversions and calibrations are reused
        phase_timings=dict(timings),
        reference_top1=state.reference_top1,
        spec=spec,
        labels=labels,
        representative=rep,
        targets=list(rcp.targets),
        eval_data=(held, held.y),  # streamed: the interpreter reads one sample at a time
        source_model=loaded.source_info(),
        recipe=rcp.to_dict(),
        float_fallback_layers=fallback,
        variants=rows,
        extra_reports={
            "compression.json": {"recipe": rcp.to_dict(), **{k: v for k, v in reports.items() if k != "layer_errors"}, "notes": notes},
            # rmse/scale: the int8 output's error in quantization steps, per op, worst first.
            "quant_layer_errors.json": reports["layer_errors"],
        },
        overwrite=overwrite,
        progress=prog,
    )
    timings["build"] = time.perf_counter() - t
    peaks["build"] = _peak_rss_mb()
    # The process's peak resident memory after each phase (MiB): where it rises is where the peak was reached.
    reports["peak_rss_mb"] = {k: (None if v is None else round(v)) for k, v in peaks.items()}
    for stage, seconds in build.timings.items():
        if stage != "total":
            timings[f"build.{stage}"] = seconds
    for target, report in build.reports.items():
        numeric = getattr(report, "numeric", None) or {}
        if numeric and not numeric.get("ok", True):  # on the console, not only in reports/
            notes.append(
                f"WARNING: target {target}: the artifact differs from the Keras model by {numeric['max_error']:.3g} "
                f"({numeric.get('metric', 'relative')}; {numeric.get('max_abs_error', float('nan')):.3g} absolute), above the "
                f"tolerance {numeric['tolerance']}; see reports/compat_{target}.json."
            )
    rows = list(build.bundle.manifest.variants)  # the Keras rows, then one per shipped artifact
    timings["total"] = time.perf_counter() - t0
    return CompressResult(build.path, rcp, rows, reports, notes, {k: round(v, 2) for k, v in timings.items()}, build)


def chance_warning(top1: float, classes: int, n: int, spec_source: str) -> str | None:
    """A warning when the float model scores no better than guessing on the data (3 sigma of a binomial).

    Almost always the preprocessing differs from training (pixels scaled
    twice, wrong colour order) or the data is not what the model was trained on.
    """
    if classes < 2 or n < 1:
        return None
    p0 = 1.0 / classes
    if top1 > p0 + 3 * (p0 * (1 - p0) / n) ** 0.5:
        return None
    return (
        f"WARNING: the original float model scores {top1:.1%} on this data, which is chance for {classes} classes "
        f"({p0:.1%}); every variant below inherits that. The preprocessing ({spec_source}) probably differs from what "
        "the model was trained with, or the data is not what it was trained on."
    )


def _peak_rss_mb() -> float | None:
    from edgekit.bench.measure import peak_rss_mb

    return peak_rss_mb()


def _without_bridge(loaded: Any, rcp: Recipe, over: Mapping[str, Any], notes: list[str]) -> Recipe:
    """A Keras 3 model that could not be rebuilt in tf_keras is converted as it is: int8 by calibration only.

    Pruning anywhere in the recipe, or QAT asked for with ``--qat``, is refused
    (they need tfmot, hence the bridge); the recipe's own QAT default is
    dropped with a note.
    """
    if loaded.bridged:
        return rcp
    line = f"pruning and QAT need the tf_keras bridge, and {loaded.bridge_blocker.rstrip('.')}"
    asked = [k for k in ("sparsity", "mn", "structured") if getattr(rcp, k) is not None]
    if over.get("qat") is True:
        asked.append("qat")
    if asked:
        raise ConfigError(
            f"{line}; the recipe asks for {', '.join(asked)}.",
            hint="Drop those settings (compress then converts the Keras 3 model with calibration-only int8), or replace that layer.",
        )
    notes.append(f"{line}; converting the Keras 3 model itself with calibration-only int8.")
    return rcp.with_overrides(qat=False) if rcp.qat else rcp


def _layers_by_type(layers: list[dict[str, Any]], shown: int = 3) -> str:
    """``[{"name", "type"}, ...]`` as one short phrase per type, e.g. "58 BatchNormalization (bn1, bn2, bn3, … bn)".

    Example:
        >>> _layers_by_type([{"name": "n", "type": "Normalization"}])
        'Normalization (n)'
    """
    groups: dict[str, list[str]] = {}
    for f in layers:
        groups.setdefault(f["type"], []).append(f["name"])
    parts = []
    for kind, names in groups.items():
        listed = ", ".join(names) if len(names) <= shown + 1 else ", ".join(names[:shown]) + f", … {names[-1]}"
        parts.append(f"{len(names)} {kind} ({listed})" if len(names) > 1 else f"{kind} ({listed})")
    return "; ".join(parts)


def _representative(train: Any, rcp: Recipe, prog: NullProgress) -> np.ndarray:
    from edgekit.compress.calibrate import representative_samples

    with prog.task(f"drawing {min(rcp.calibration_samples, len(train))} calibration samples (stratified)", 1) as task:
        rep = representative_samples(train, rcp.calibration_samples, seed=rcp.seed)
        task.advance()
    return rep


class _Run:
    """The training side of one compress run: each step adds a Keras model and a table row."""

    def __init__(self, model: Any, train: Any, held: Any, classes: int, output_kind: str, rcp: Recipe, prog: NullProgress, timings: dict[str, float]):
        self.original = model
        self.train, self.held = train, held
        self.classes = classes
        self.output_kind = output_kind
        self.rcp = rcp
        self.prog = prog
        self.timings = timings
        self.notes: list[str] = []
        self.structured = None
        self.pruning = None
        self.qat = None
        self.float_model = model  # the model quantization starts from (after pruning)
        self.qat_model = None
        self.qat_unusable: str | None = None  # why the QAT model gives no usable int8 artifact
        self.reference_top1 = 0.0
        self.float_top1 = 0.0
        from edgekit.compile.convert import ConversionCache

        # One cache for the budget loop and the build: each distinct artifact is converted once.
        self.conversions = ConversionCache()
        self.global_batch = rcp.batch_size  # per replica x replicas, set by compress()

    def _row(self, variant: str, model: Any, note: str = "", macs: int | None = None) -> dict[str, Any]:
        from edgekit.compress.evaluate import keras_row

        return keras_row(
            variant, model, self.held, num_classes=self.classes, note=note, macs=macs, output=self.output_kind
        )

    def _teacher(self) -> Any:
        if not self.rcp.distill:
            return None
        from edgekit.compress.distill import log_probs
        from edgekit.compress.finetune import Teacher, predict

        return Teacher(log_probs(predict(self.original, self.train), self.output_kind), self.rcp.distill_temperature, self.rcp.distill_alpha)

    def _ft(self) -> dict[str, Any]:
        r = self.rcp
        return dict(
            epochs=r.epochs, batch_size=self.global_batch, learning_rate=r.learning_rate, output_kind=self.output_kind,
            progress=self.prog, seed=r.seed,
        )  # fmt: skip

    def run(self) -> list[dict[str, Any]]:
        r = self.rcp
        t = time.perf_counter()
        rows = [self._row("float", self.original, note="the original model")]
        self.reference_top1 = self.float_top1 = rows[0]["top1"]
        teacher = self._teacher()
        current = self.original
        self.timings["evaluate_float"] = time.perf_counter() - t
        if r.structured is not None:
            from edgekit.compress.finetune import fine_tune
            from edgekit.compress.structured import prune_channels

            t = time.perf_counter()
            current, self.structured, _ = prune_channels(current, r.structured, norm=r.structured_norm)
            if r.epochs > 0:
                kw = self._ft()
                fine_tune(current, self.train, teacher=teacher, description=f"fine-tuning after removing {r.structured:.0%} of channels", **kw)
            rows.append(self._row(f"structured {r.structured:.0%}", current, note=f"MACs {self.structured.macs_before:,} → {self.structured.macs_after:,}"))
            self.timings["structured"] = time.perf_counter() - t
            checkpoint()
        if r.sparsity is not None or r.mn is not None:
            from edgekit.compress.prune import prune_magnitude

            t = time.perf_counter()
            current, self.pruning = prune_magnitude(
                current, self.train, self.train.y, sparsity=r.sparsity, mn=r.mn_pair, teacher=teacher,
                prune_output=r.prune_output_layer, min_weights=r.prune_min_weights, **self._ft()
            )
            label = f"pruned {r.sparsity:.0%}" if r.sparsity is not None else f"pruned {r.mn}"
            rows.append(self._row(label, current, note=f"{self.pruning.achieved:.1%} of pruned weights are zero"))
            self.timings["pruning"] = time.perf_counter() - t
            checkpoint()
        self.float_model = current
        self.float_top1 = rows[-1]["top1"]
        if r.qat:
            from edgekit.compress.qat import QATUnavailable, quantize_aware

            t = time.perf_counter()
            kw = self._ft()
            kw["learning_rate"] = r.qat_learning_rate
            try:
                self.qat_model, self.qat = quantize_aware(
                    current, self.train, self.train.y, preserve_sparsity=r.sparsity is not None or r.mn is not None, teacher=teacher, **kw
                )
            except QATUnavailable as e:
                checkpoint()
                what = "sparsity-preserving QAT (PQAT)" if r.sparsity is not None or r.mn is not None else "QAT"
                self.notes.append(f"{what} was asked for but NOT applied; the artifacts are post-training int8. {e}")
            else:
                label = "PQAT" if self.qat.scheme != "default_8bit" else "QAT"
                rows.append(self._row(label, self.qat_model, macs=rows[-1]["macs"]))
                if self.qat.float_layers:
                    self.notes.append(
                        f"QAT left {len(self.qat.float_layers)} layer(s) in float (tfmot cannot quantize them; calibrated at "
                        f"conversion): {_layers_by_type(self.qat.float_layers)}"
                    )
            self.timings["qat"] = time.perf_counter() - t
        return rows

    def budget(self, profiles: tuple[Any, ...], rep: np.ndarray, errors: list[Any]) -> tuple[Any, Any, list[str]]:
        """Run the accuracy budget loop on the first int8 target; returns (result, model to build, float layers)."""
        from edgekit.compress.evaluate import tflite_row

        main_key = "qat" if self.qat_model is not None else "float"
        models = {"qat": self.qat_model, "float": self.float_model}
        int8 = [p for p in profiles if p.quantization == "int8"]
        if not int8:
            if self.rcp.max_accuracy_drop is not None:
                self.notes.append("max_accuracy_drop applies to int8 artifacts; none of the targets is int8, so it was not used.")
            return None, models[main_key], []
        profile = next((p for p in int8 if p.float_fallback), int8[0])
        refusing = [p.name for p in int8 if not p.float_fallback]
        if main_key == "qat":
            self.qat_unusable = self._qat_int8_problem(int8, rep)
            if self.qat_unusable:
                main_key = "float"
                self.notes.append(
                    f"QAT trained, but its model does not give a working int8 artifact ({self.qat_unusable}); every int8 "
                    "artifact is post-training int8, calibrated from the model before QAT. --no-qat skips the QAT step."
                )

        def convert(key: str, layers: Any) -> bytes:
            return self.conversions.convert(models[key], profile, rep, float_fallback_layers=list(layers)).content

        def score(content: bytes, label: str) -> dict[str, Any]:
            return tflite_row(
                f"{profile.name} {label} .tflite", content, self.held,
                num_classes=self.classes, target=profile.name, output=self.output_kind,
            )  # fmt: skip

        try:
            return self._fit(profile, refusing, convert, score, main_key, models, errors)
        except EdgekitError as e:
            self.notes.append(f"{profile.name}: the int8 conversion failed, so no accuracy budget was applied: {e}")
            return None, models[main_key], []

    def _qat_int8_problem(self, int8: list[Any], rep: np.ndarray) -> str | None:
        """Why the QAT model gives no usable int8 artifact for some target, or None.

        tfmot's fake-quant ranges can break what the converter or XNNPACK
        accept (DenseNet121: an average pool whose input and output ranges
        differ; Xception, NASNetMobile: an artifact XNNPACK refuses to load),
        where calibrating the float model works. The conversions are cached,
        so the budget loop and the build reuse them when the model is usable.
        """
        from edgekit.compress.evaluate import check_loads

        for profile in int8:
            try:
                check_loads(self.conversions.convert(self.qat_model, profile, rep).content, target=profile.name)
            except EdgekitError as e:
                checkpoint()
                return e.message.splitlines()[0][:300].rstrip(".") if e.message.strip() else type(e).__name__
        return None

    def _fit(self, profile: Any, refusing: list[str], convert: Any, score: Any, main_key: str, models: dict[str, Any], errors: list[Any]) -> tuple[Any, Any, list[str]]:
        from edgekit.compress.calibrate import change_words, fallback_candidates, fit_budget

        result = fit_budget(
            convert=convert,
            score=score,
            reference_top1=self.reference_top1,
            max_drop=self.rcp.max_accuracy_drop,
            main_model=main_key,
            candidates=fallback_candidates(errors),
            fallback_allowed=profile.float_fallback,
            float_drop=(self.reference_top1 - self.float_top1) * 100.0,
            progress=self.prog,
        )
        chosen = result.chosen
        if chosen.float_layers and refusing:
            plain = [a for a in result.attempts if not a.float_layers]
            best = min(plain, key=lambda a: a.drop)
            self.notes.append(
                f"the budget loop kept {', '.join(chosen.float_layers)} in float for {profile.name}, but target(s) "
                f"{', '.join(refusing)} cannot keep layers in float, so the bundle is built without float layers "
                f"(int8 {change_words(best.drop)})."
            )
            result.chosen, result.met = best, best.drop <= (self.rcp.max_accuracy_drop or 0.0)
            result.message += " Not applied: " + self.notes[-1]
            chosen = best
        return result, models[chosen.model], list(chosen.float_layers)
