"""Latency benchmarks for bundles: measurement, statistics, environment, reports, CI gates.

Device-side: importing this package (and running a bench) needs no
TensorFlow; only ``--compare``'s peers convert the source model with it.

    from edgekit.bench import BenchConfig, run_bench, gate, load_result, parse_threshold

    result = run_bench("bundle/", config=BenchConfig(runs=100, repeats=5))
    mlperf = run_bench("bundle/", config=BenchConfig.for_profile("mlperf"))  # >= 1024 queries, >= 60 s; p90
    verdict = gate(result, load_result("baseline.json"), parse_threshold("10%"))
    verdict.raise_for_outcome()   # GateError (exit 1) / SpreadTooWideError (exit 3)

Modules: :mod:`~edgekit.bench.measure` (the loop, after benchmark_model),
:mod:`~edgekit.bench.stats`, :mod:`~edgekit.bench.environment`,
:mod:`~edgekit.bench.subjects` (what is measured, opened by the runtime's
policy), :mod:`~edgekit.bench.peers` (tf.lite default, ONNX Runtime fp32 and int8),
:mod:`~edgekit.bench.compare`, :mod:`~edgekit.bench.gate`,
:mod:`~edgekit.bench.schema` (the versioned JSON format), :mod:`~edgekit.bench.run`
(``run_bench``, which ties them together) and
:mod:`~edgekit.bench.report` (tables, plot, HTML).
"""
from edgekit.bench.compare import compare_rows
from edgekit.bench.environment import ENVIRONMENT_KEYS, capture_environment
from edgekit.bench.gate import GateResult, SpreadTooWideError, gate, parse_threshold
from edgekit.bench.measure import PROFILES, BenchConfig, BenchProfile, parse_frame_size
from edgekit.bench.run import run_bench
from edgekit.bench.schema import SCHEMA, SCHEMA_VERSION, load_result, save_result, validate
from edgekit.bench.stats import latency_summary, spread

__all__ = [
    "ENVIRONMENT_KEYS",
    "PROFILES",
    "SCHEMA",
    "SCHEMA_VERSION",
    "BenchConfig",
    "BenchProfile",
    "GateResult",
    "SpreadTooWideError",
    "capture_environment",
    "compare_rows",
    "gate",
    "latency_summary",
    "load_result",
    "parse_frame_size",
    "parse_threshold",
    "run_bench",
    "save_result",
    "spread",
    "validate",
]
