"""``run_bench``: measure a bundle's artifacts (and peers) and return a schema-valid result.

Device-side: nothing here imports TensorFlow; only the peers of
``compare=True`` with a ``model`` need the build side, and they import it
lazily.
"""
from __future__ import annotations

import datetime as _dt
import os
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable

from edgekit.bench import environment as _env
from edgekit.bench.compare import DEFAULT_ACCURACY_BUDGET, compare_rows
from edgekit.bench.measure import BenchConfig, frame_step, measure_once, source_step, summarize_repeats, synthetic_frame
from edgekit.bench.schema import SCHEMA_ID, SCHEMA_VERSION, validate
from edgekit.bench.subjects import Subject, artifact_subjects
from edgekit.errors import ConfigError, TargetError

# progress(label, done, total): called before each repeat and once at the end.
Progress = Callable[[str, int, int], None]


def _skipped_row(subject: Subject) -> dict[str, Any]:
    row = subject.base_row()
    row.update(
        accelerator=None, via=None, threads=None, backend=subject.backend, fallback=None,
        init_ms=None, integrity_ms=subject.integrity_ms, first_ms=None, latency_ms=None, stages_ms=None,
        fps=None, rss_peak_mb=None, rss_increase_mb=None, repeats=[], spread={"p50": None, "p90": None},
        samples_ms=[], notes=list(subject.notes),
    )
    return row


def _measured_row(subject: Subject, repeats: list[Any]) -> dict[str, Any]:
    plan = repeats[-1].plan
    row = subject.base_row()
    row.update(
        accelerator=getattr(plan, "accelerator", None),
        via=getattr(plan, "via", None),
        threads=getattr(plan, "threads", None),
        backend=subject.backend,
        fallback=getattr(plan, "fallback", None),
        integrity_ms=subject.integrity_ms,
    )
    numbers = summarize_repeats(repeats)
    row.update(
        init_ms=numbers["init_ms"],
        first_ms=numbers["first_ms"],
        latency_ms=numbers["latency_ms"],
        stages_ms=numbers["stages_ms"],
        fps=numbers["fps"],
        rss_peak_mb=numbers["rss_peak_mb"],
        rss_increase_mb=numbers["rss_increase_mb"],
        repeats=numbers["repeats"],
        spread=numbers["spread"],
        samples_ms=numbers["samples_ms"],
        notes=list(subject.notes) + list(getattr(plan, "notes", []) or []),
    )
    # Keep the schema's key order stable for readers that diff results.
    order = (
        "name kind status reason target variant file bytes accuracy requested accelerator via threads backend "
        "fallback init_ms integrity_ms first_ms latency_ms stages_ms fps rss_peak_mb rss_increase_mb repeats "
        "spread samples_ms notes"
    ).split()
    return {k: row[k] for k in order}


def run_bench(
    bundle: str | os.PathLike[str],
    *,
    config: BenchConfig | None = None,
    targets: list[str] | None = None,
    device: str | None = None,
    delegate: str | None = None,
    backend: str | None = None,
    end_to_end: bool = False,
    source: str | None = None,
    compare: bool = False,
    model: str | os.PathLike[str] | None = None,
    calibration: str | os.PathLike[str] | None = None,
    accuracy_budget: float = DEFAULT_ACCURACY_BUDGET,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Benchmark a bundle on this device.

    Args:
        bundle: the bundle folder.
        config: run lengths, repeats, threads, frame size (:class:`BenchConfig`).
        targets: target names or kinds to measure (default: every artifact).
        device: a device profile (threads, delegate library names).
        delegate: an external TFLite delegate library to run artifacts with.
        backend: force an interpreter backend (default: the runtime's order).
        end_to_end: time the deploy pipeline over ``source`` (capture included).
        source: the ``--source`` for ``end_to_end``.
        compare: add ratios, recommendations and the peers.
        model: the source model, for the peers (compare only).
        calibration: images (a folder or ``.npz``) for the ONNX Runtime int8
            peer's static calibration; the ones compress calibrated on.
        accuracy_budget: compare's top-1 budget in percentage points.
        progress: called as ``progress(label, done, total)``.

    Returns:
        A bench result (see :mod:`edgekit.bench.schema`).

    Raises:
        ConfigError: inconsistent options. BundleError / IntegrityError /
        TargetError / SourceError / MissingExtraError: as the runtime raises them.

    Example::

        result = run_bench("bundle/", config=BenchConfig(runs=100, repeats=3))
        print(result["results"][0]["latency_ms"]["p90"])
    """
    from edgekit.bundle import load_bundle
    from edgekit.runtime.accelerators import device_prefs
    from edgekit.runtime.backends import select_backend

    config = config or BenchConfig()
    if end_to_end and not source:
        raise ConfigError("--end-to-end needs --source SRC (a video, a folder of images, a camera index or a URL).")
    if source and not end_to_end:
        raise ConfigError("--source is only used with --end-to-end; add --end-to-end or drop --source.")
    if model is not None and not compare:
        raise ConfigError("--model is only used with --compare (to measure the peers); add --compare or drop --model.")
    if calibration is not None and model is None:
        raise ConfigError("--calibration is only used for --compare's ONNX Runtime int8 peer; add --compare --model MODEL or drop it.")
    if not (0 <= accuracy_budget <= 100):
        raise ConfigError(f"--accuracy-budget must be 0..100 percentage points; received {accuracy_budget}.")

    if delegate is not None and not os.path.isfile(delegate):
        raise TargetError(
            f"delegate library {delegate} does not exist.",
            hint="Give the full path of the delegate .so, e.g. --delegate /usr/lib/libedgetpu.so.1.",
        )
    b = load_bundle(bundle)
    loaded = select_backend(backend)
    prefs = device_prefs(device) if device else None
    if end_to_end:
        from edgekit.runtime.sources import open_source

        open_source(source).close()  # a bad --source fails now, before anything is measured

        def open_src() -> Any:
            return open_source(source)

    environment = _env.capture_environment(loaded)
    subjects = artifact_subjects(b, loaded, targets=targets, threads=config.threads, device=prefs, delegate=delegate)

    with tempfile.TemporaryDirectory(prefix="edgekit-bench-") as work:
        if compare:
            from edgekit.bench.peers import peer_subjects
            from edgekit.runtime.accelerators import default_threads

            threads = config.threads or (prefs.threads if prefs else None) or default_threads()
            subjects += peer_subjects(model, b, loaded, threads=threads, workdir=work, calibration=calibration)

        measured = [s for s in subjects if s.open is not None]
        if not measured:
            why = "; ".join(f"{s.name}: {s.reason}" for s in subjects) or "the bundle has no artifacts"
            raise TargetError(f"nothing in {b.path} can be measured here ({why}).", hint="See 'edgekit doctor'.")
        total = config.repeats * len(measured)
        if end_to_end:
            make_step = lambda p: source_step(p, open_src)  # noqa: E731
        else:
            make_step = lambda p: frame_step(p, synthetic_frame(p.spec, config.frame_size, config.seed))  # noqa: E731
        # One-time process costs (importing OpenCV, first-touch allocations) are
        # paid here, not by whichever artifact happens to be measured first.
        from edgekit.preprocess import PreprocessSpec

        spec = PreprocessSpec.from_dict(b.manifest.preprocess)
        spec.apply(synthetic_frame(spec, config.frame_size, config.seed))
        # Repeats go round-robin over the subjects, so slow drift (other load,
        # heat, clocks) touches every variant alike and their ratios hold.
        repeats: dict[int, list[Any]] = {id(s): [] for s in measured}
        done = 0
        for i in range(config.repeats):
            for subject in measured:
                if progress:
                    progress(f"{subject.name} ({i + 1}/{config.repeats})", done, total)
                repeats[id(subject)].append(measure_once(subject.open, make_step, config))
                done += 1
        if progress:
            progress("done", done, total)
        rows = [_measured_row(s, repeats[id(s)]) if s.open is not None else _skipped_row(s) for s in subjects]

    after = _env.capture_environment(loaded)
    result: dict[str, Any] = {
        "schema": SCHEMA_ID,
        "schema_version": SCHEMA_VERSION,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "edgekit_version": environment["edgekit"],
        "bundle": {
            "path": str(Path(b.path)),
            "source_model": dict(b.manifest.source_model or {}),
            "created": b.manifest.created,
        },
        "mode": "end_to_end" if end_to_end else "frames",
        "config": {
            **config.to_dict(),
            "source": str(source) if source else None,
            "targets": list(targets) if targets else None,
            "compare": bool(compare),
            "accuracy_budget": float(accuracy_budget),
        },
        "environment": environment,
        "environment_after": {
            **{k: after[k] for k in ("temperature_c", "cpu_freq_mhz", "load_average")},
            # RSS is the whole process's: say when TensorFlow (a peer's converter, a build) is part of it.
            "tensorflow_loaded": sys.modules.get("tensorflow") is not None,  # None: blocked, as on a device
        },
        "results": rows,
        "comparison": compare_rows(
            rows, b.manifest.variants, accuracy_budget=accuracy_budget, artifact_hashes={a.sha256 for a in b.manifest.artifacts}
        )
        if compare
        else None,
        "gate": None,
    }
    return validate(result)
