"""``edgekit bench BUNDLE``: latency, throughput and memory per artifact; comparisons; CI gates."""
from __future__ import annotations

from pathlib import Path
from typing import Any, List, Optional

import typer

from edgekit.cli._common import console, err_console, print_json, run_command

# Measurement options that mean nothing when BUNDLE is a saved result.
_MEASURE_ONLY = ("--profile", "--target", "--threads", "--runs", "--warmup", "--warmup-seconds", "--min-seconds", "--max-seconds",
                 "--repeats", "--frame-size", "--device", "--delegate", "--end-to-end", "--source", "--compare", "--model",
                 "--calibration")


@run_command
def bench(
    bundle: Path = typer.Argument(..., help="A bundle folder, or a saved bench result (.json) to re-render or gate."),
    profile: Optional[str] = typer.Option(
        None, "--profile",
        help="Run-length rules: 'default' (benchmark_model's: >=50 frames, >=1 s) or 'mlperf' "
        "(MLPerf single-stream: >=1024 queries, >=60 s per repeat; p90 is the result).",
    ),
    target: Optional[List[str]] = typer.Option(None, "--target", "-t", help="Target name or kind to measure (repeatable; default: every artifact)."),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, help="CPU threads (default: the device profile's, else all usable cores)."),
    runs: Optional[int] = typer.Option(None, "--runs", min=1, help="Minimum measured frames per repeat (default 50; mlperf 1024)."),
    warmup: Optional[int] = typer.Option(None, "--warmup", min=0, help="Warm-up frames after the first inference (default 1)."),
    warmup_seconds: Optional[float] = typer.Option(None, "--warmup-seconds", min=0, help="Minimum warm-up time (default 0.5)."),
    min_seconds: Optional[float] = typer.Option(None, "--min-seconds", min=0, help="Minimum measured time per repeat (default 1.0; mlperf 60)."),
    max_seconds: Optional[float] = typer.Option(None, "--max-seconds", min=0, help="Stop a repeat after this long (default 150; mlperf 3600)."),
    repeats: Optional[int] = typer.Option(None, "--repeats", min=1, help="Independent repeats; medians are reported (default 1, or 3 with --baseline)."),
    frame_size: Optional[str] = typer.Option(None, "--frame-size", help="Synthetic camera frame WIDTHxHEIGHT (default: the model input; e.g. 640x480 adds the resize)."),
    device: Optional[str] = typer.Option(None, "--device", help="Device profile (e.g. rpi4): threads and delegate libraries."),
    delegate: Optional[str] = typer.Option(None, "--delegate", help="Path of an external TFLite delegate library (.so)."),
    end_to_end: bool = typer.Option(False, "--end-to-end", help="Time the whole deploy pipeline over --source, per stage."),
    source: Optional[str] = typer.Option(None, "--source", "-s", help="Source for --end-to-end: video, image folder, camera index or URL."),
    compare: bool = typer.Option(False, "--compare", help="Every variant side by side: ratios vs fp32, recommendation per target, peers."),
    model: Optional[Path] = typer.Option(None, "--model", help="The source model, for --compare's peers (tf.lite default, ONNX Runtime fp32 and int8)."),
    calibration: Optional[Path] = typer.Option(
        None, "--calibration",
        help="--compare: images (a folder or .npz) to calibrate the ONNX Runtime int8 peer on; give the ones compress calibrated on.",
    ),
    accuracy_budget: float = typer.Option(1.0, "--accuracy-budget", min=0, max=100, help="--compare: top-1 drop allowed, percentage points."),
    baseline: Optional[Path] = typer.Option(None, "--baseline", help="Gate against this saved result: exit 1 on regression, 3 when too noisy."),
    max_regression: str = typer.Option("10%", "--max-regression", help="Gate budget for p50/p90 latency, size and accuracy."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Write the JSON result here (e.g. to become the next baseline)."),
    plot: Optional[Path] = typer.Option(None, "--plot", help="Write the latency distribution per variant as PNG."),
    html_out: Optional[Path] = typer.Option(None, "--html", help="Write a self-contained HTML report."),
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON on stdout (schema: edgekit.bench.schema)."),
) -> None:
    """Benchmark a bundle on this device, after TFLite's benchmark_model and MLPerf Mobile.

    Per artifact: init time, first inference, warm latency (min, mean, std,
    p50, p90, p99, max), FPS, the process's peak RSS and what each artifact
    added to it, and size, with the environment. --profile mlperf follows
    MLPerf's single-stream rules and reports p90 as the result.
    Exit codes with --baseline: 0 pass, 1 regressed, 3 spread too wide to judge.
    """
    from edgekit.bench.schema import is_result_file, load_result
    from edgekit.bundle.store import check_writable_target

    for flag, path in (("--output", output), ("--plot", plot), ("--html", html_out)):
        if path is not None:
            check_writable_target(path, what=flag)  # a device/FIFO/folder there fails now, not after measuring
    threshold = None
    base = None
    if baseline is not None:
        from edgekit.bench.gate import parse_threshold

        threshold = parse_threshold(max_regression)
        base = load_result(baseline)  # a bad baseline fails before minutes of measuring

    if is_result_file(bundle):
        given = _measurement_options_given(locals())
        if given:
            from edgekit.errors import ConfigError

            raise ConfigError(
                f"{bundle} is a saved bench result, so {', '.join(given)} cannot apply.",
                hint="Pass a bundle folder to measure, or drop those options to re-render or gate the saved result.",
            )
        result = load_result(bundle)
        result["gate"] = None
    else:
        result = _measure(
            bundle, target=target, threads=threads, runs=runs, warmup=warmup, warmup_seconds=warmup_seconds,
            min_seconds=min_seconds, max_seconds=max_seconds, repeats=repeats if repeats else (3 if baseline else 1),
            frame_size=frame_size, device=device, delegate=delegate, end_to_end=end_to_end, source=source,
            compare=compare, model=model, calibration=calibration, accuracy_budget=accuracy_budget, quiet=json_out,
            profile=profile,
        )

    verdict = None
    if base is not None:
        from edgekit.bench.gate import gate
        from edgekit.bench.schema import validate

        verdict = gate(result, base, threshold, baseline_name=str(baseline))
        result["gate"] = verdict.to_dict()
        validate(result)

    _write_outputs(result, output=output, plot=plot, html_out=html_out)
    if json_out:
        print_json(result)
    else:
        from edgekit.bench.report import print_result

        print_result(result, console)
    if verdict is not None and verdict.outcome != "pass":
        if json_out:  # people still need the rows that failed; stdout stays pure JSON
            _print_failing(result["gate"])
        verdict.raise_for_outcome()


def _measurement_options_given(values: dict[str, Any]) -> list[str]:
    names = {
        "--profile": values["profile"], "--calibration": values["calibration"],
        "--target": values["target"], "--threads": values["threads"], "--runs": values["runs"],
        "--warmup": values["warmup"], "--warmup-seconds": values["warmup_seconds"], "--min-seconds": values["min_seconds"],
        "--max-seconds": values["max_seconds"], "--repeats": values["repeats"], "--frame-size": values["frame_size"],
        "--device": values["device"], "--delegate": values["delegate"], "--end-to-end": values["end_to_end"] or None,
        "--source": values["source"], "--compare": values["compare"] or None, "--model": values["model"],
    }
    return [n for n in _MEASURE_ONLY if names[n]]


def _measure(bundle: Path, *, quiet: bool, runs, warmup, warmup_seconds, min_seconds, max_seconds, repeats, threads,  # noqa: ANN001
             frame_size, profile, **kwargs: Any) -> dict[str, Any]:
    from edgekit.bench.measure import BenchConfig, parse_frame_size
    from edgekit.bench.run import run_bench
    from edgekit.progress import NullProgress, RichProgress

    given = {
        "runs": runs, "warmup": warmup, "warmup_seconds": warmup_seconds, "min_seconds": min_seconds,
        "max_seconds": max_seconds, "repeats": repeats, "threads": threads, "frame_size": parse_frame_size(frame_size),
    }
    config = BenchConfig.for_profile(profile or "default", **given)
    targets = list(kwargs.pop("target") or []) or None
    prog = NullProgress() if quiet else RichProgress(err_console)  # the reporter compress and the build use
    with prog.task("benchmarking probing artifacts", None) as task:

        def on_progress(label: str, done: int, total: int) -> None:
            task.update(completed=done, total=total, description=f"benchmarking {label}")

        return run_bench(bundle, config=config, targets=targets, progress=on_progress, **kwargs)


def _write_outputs(result: dict[str, Any], *, output: Optional[Path], plot: Optional[Path], html_out: Optional[Path]) -> None:
    if output is not None:
        from edgekit.bench.schema import save_result

        save_result(result, output)
    png = None
    if plot is not None or html_out is not None:
        from edgekit.bench.report import plot_png

        png = plot_png(result)
    if plot is not None:
        from edgekit.bench.report import plot_latency

        plot_latency(result, plot, png=png)
    if html_out is not None:
        from edgekit.bench.report import write_html

        write_html(result, html_out, plot=png)


def _print_failing(gate: dict[str, Any]) -> None:
    from rich.table import Table

    from edgekit.bench.report import gate_rows

    header, body = gate_rows(gate, only_failing=True)
    t = Table(title=f"gate: {gate['outcome']}", title_justify="left", header_style="bold")
    for h in header:
        t.add_column(h)
    for row in body:
        t.add_row(*row)
    err_console.print(t)
