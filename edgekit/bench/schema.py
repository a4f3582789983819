"""The bench result format: a versioned JSON document, its JSON Schema and a strict validator.

``edgekit bench --json`` prints one document, ``--output FILE`` writes it,
``--baseline FILE`` reads one back. :data:`SCHEMA` is a JSON Schema (draft
2020-12) that any JSON Schema tool can check; :func:`validate` checks the same
schema here without extra dependencies. Bump :data:`SCHEMA_VERSION` on any
change an older reader would misread; readers refuse newer versions.

Document (version 1)
--------------------

Top level:

``schema``
    always ``"edgekit.bench"``.
``schema_version``
    ``1``.
``created``, ``edgekit_version``
    when and by which edgekit.
``bundle``
    ``path``, ``source_model`` (name, sha256, format from the manifest),
    ``created`` (when the bundle was built).
``mode``
    ``"frames"``: one fixed synthetic camera frame through the per-frame path,
    over and over (TFLite benchmark_model style); ``"end_to_end"``: the deploy
    pipeline over ``config.source`` (capture included).
``config``
    what was asked: ``runs``, ``warmup``, ``warmup_seconds``, ``min_seconds``,
    ``max_seconds``, ``repeats``, ``threads`` (None: the runtime's default),
    ``frame_size`` ([width, height] of the synthetic frame; None: the model
    input size), ``source``, ``targets``, ``compare``, ``accuracy_budget``.
``environment``
    :data:`edgekit.bench.environment.ENVIRONMENT_KEYS`, read before the run.
``environment_after``
    ``temperature_c``, ``cpu_freq_mhz``, ``load_average`` read after it
    (throttling shows up as a hotter, slower "after"), and
    ``tensorflow_loaded``: whether TensorFlow was in the bench process (then
    the RSS figures include it; a device running the runtime alone has none).
``results``
    one row per measured artifact or peer (below).
``comparison``
    ``None``, or with ``--compare``: ``reference`` (row name the ratios are
    against, None when there is no fp32), ``reference_accuracy``,
    ``accuracy_budget`` (percentage points), ``rows`` (name, speedup_p50,
    speedup_p90, size_ratio, top1, accuracy_delta_pts, within_budget),
    ``recommended`` (target -> row name: the fastest within the accuracy
    budget), ``notes``, ``variants`` (the manifest's evaluation rows that have
    no artifact to time).
``gate``
    ``None``, or the :class:`~edgekit.bench.gate.GateResult` of ``--baseline``.

A result row:

``name``
    ``"<target>:<variant>"`` for an artifact, ``"peer:<name>"`` for a peer.
``kind``
    ``"artifact"`` | ``"peer"``. ``status``: ``"ok"`` | ``"skipped"`` (with
    ``reason``).
``target``, ``variant``, ``file``, ``bytes``, ``accuracy``
    from the manifest (``accuracy``: as the build side measured it on the
    held-out split; ``top1`` is a fraction).
``requested``
    the accelerator the artifact was built for (cpu, gpu, edgetpu).
``accelerator``, ``via``, ``threads``, ``backend``
    what actually ran it (``via``: e.g. ``"CPU, 4 threads"``, a delegate).
``fallback``
    why it did not run as built (None when it did).
``init_ms``
    what deploy pays before the first frame: sha256 check, interpreter and
    delegate creation, tensor allocation. ``integrity_ms``: the sha256 part.
``first_ms``
    the first inference after init (cold caches, lazy delegate work).
``latency_ms``
    warm per-frame latency: n, min, mean, std, p50, p90, p99, max. With
    repeats, each statistic is the median over repeats and ``n`` the total.
    ``p90`` is MLPerf's single-stream result only under ``profile: "mlperf"``
    (>= 1024 queries and >= 60 s per repeat).
``stages_ms``
    the same statistics per stage: preprocess (incl. quantize), invoke,
    postprocess (+ capture end to end).
``fps``
    single-stream frames per second over the measured runs.
``rss_peak_mb``, ``rss_increase_mb``
    the bench *process's* peak resident memory while this row ran (it
    includes whatever else the process holds: TensorFlow when ``--compare``
    converted peers, or when bench runs inside a build), and its growth over
    the resident memory before the artifact was opened (what opening and
    running this artifact added).
``repeats``
    per repeat: init_ms, first_ms, latency_ms, fps, rss_peak_mb.
``spread``
    ``{"p50", "p90"}``: ``(max - min) / median`` over repeats; None with one.
``samples_ms``
    the per-frame latencies of the last repeat, every k-th when there are
    more than 2,000 (for plots).
``notes``
    anything else the reader should know.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from edgekit.bench.environment import ENVIRONMENT_KEYS
from edgekit.bench.measure import PROFILES
from edgekit.bench.stats import LATENCY_KEYS
from edgekit.errors import ConfigError

SCHEMA_ID = "edgekit.bench"
SCHEMA_VERSION = 1
MODES = ("frames", "end_to_end")
ROW_STATUSES = ("ok", "skipped")
ROW_KINDS = ("artifact", "peer")

_NUM = {"type": "number"}
_NUM_OR_NULL = {"type": ["number", "null"]}
_INT_OR_NULL = {"type": ["integer", "null"]}
_STR_OR_NULL = {"type": ["string", "null"]}


def _obj(props: dict[str, Any], required: list[str] | None = None, extra: bool = False) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": props,
        "required": list(props) if required is None else required,
        "additionalProperties": extra,
    }


_LATENCY = _obj({k: ({"type": "integer", "minimum": 0} if k == "n" else _NUM) for k in LATENCY_KEYS})
_LATENCY_OR_NULL = {"anyOf": [{"$ref": "#/$defs/latency"}, {"type": "null"}]}

_REPEAT = _obj(
    {
        "init_ms": _NUM,
        "first_ms": _NUM,
        "latency_ms": {"$ref": "#/$defs/latency"},
        "fps": _NUM,
        "rss_peak_mb": _NUM_OR_NULL,
    }
)

_ROW = _obj(
    {
        "name": {"type": "string"},
        "kind": {"enum": list(ROW_KINDS)},
        "status": {"enum": list(ROW_STATUSES)},
        "reason": _STR_OR_NULL,
        "target": _STR_OR_NULL,
        "variant": _STR_OR_NULL,
        "file": _STR_OR_NULL,
        "bytes": _INT_OR_NULL,
        "accuracy": {"type": ["object", "null"]},
        "requested": _STR_OR_NULL,
        "accelerator": _STR_OR_NULL,
        "via": _STR_OR_NULL,
        "threads": _INT_OR_NULL,
        "backend": _STR_OR_NULL,
        "fallback": _STR_OR_NULL,
        "init_ms": _NUM_OR_NULL,
        "integrity_ms": _NUM_OR_NULL,
        "first_ms": _NUM_OR_NULL,
        "latency_ms": _LATENCY_OR_NULL,
        "stages_ms": {"type": ["object", "null"], "additionalProperties": {"$ref": "#/$defs/latency"}},
        "fps": _NUM_OR_NULL,
        "rss_peak_mb": _NUM_OR_NULL,
        "rss_increase_mb": _NUM_OR_NULL,
        "repeats": {"type": "array", "items": {"$ref": "#/$defs/repeat"}},
        "spread": _obj({"p50": _NUM_OR_NULL, "p90": _NUM_OR_NULL}),
        "samples_ms": {"type": "array", "items": _NUM},
        "notes": {"type": "array", "items": {"type": "string"}},
    }
)

_COMPARISON_ROW = _obj(
    {
        "name": {"type": "string"},
        "target": _STR_OR_NULL,
        "variant": _STR_OR_NULL,
        "speedup_p50": _NUM_OR_NULL,
        "speedup_p90": _NUM_OR_NULL,
        "size_ratio": _NUM_OR_NULL,
        "top1": _NUM_OR_NULL,
        "accuracy_delta_pts": _NUM_OR_NULL,
        "within_budget": {"type": ["boolean", "null"]},
    }
)

_COMPARISON = _obj(
    {
        "reference": _STR_OR_NULL,
        "reference_accuracy": _NUM_OR_NULL,
        "accuracy_budget": _NUM,
        "rows": {"type": "array", "items": _COMPARISON_ROW},
        "recommended": {"type": "object", "additionalProperties": {"type": "string"}},
        "notes": {"type": "array", "items": {"type": "string"}},
        "variants": {"type": "array", "items": {"type": "object"}},
    }
)

_GATE_ROW = _obj(
    {
        "name": {"type": "string"},
        "metric": {"enum": ["latency_p50_ms", "latency_p90_ms", "bytes", "top1"]},
        "baseline": _NUM_OR_NULL,
        "current": _NUM_OR_NULL,
        "change": _NUM_OR_NULL,
        "spread": _NUM_OR_NULL,
        "status": {"enum": ["pass", "improved", "regressed", "too_noisy", "not_measured"]},
    }
)

_GATE = _obj(
    {
        "outcome": {"enum": ["pass", "regressed", "too_noisy"]},
        "exit_code": {"type": "integer"},
        "max_regression": _NUM,
        "baseline": {"type": "string"},
        "rows": {"type": "array", "items": _GATE_ROW},
        "warnings": {"type": "array", "items": {"type": "string"}},
    }
)

_ENVIRONMENT = _obj({k: {} for k in ENVIRONMENT_KEYS})

SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": f"https://edgekit.dev/schemas/{SCHEMA_ID}.v{SCHEMA_VERSION}.json",
    "title": "edgekit bench result",
    **_obj(
        {
            "schema": {"const": SCHEMA_ID},
            "schema_version": {"const": SCHEMA_VERSION},
            "created": {"type": "string"},
            "edgekit_version": {"type": "string"},
            "bundle": _obj({"path": {"type": "string"}, "source_model": {"type": "object"}, "created": _STR_OR_NULL}),
            "mode": {"enum": list(MODES)},
            "config": _obj(
                {
                    "runs": {"type": "integer", "minimum": 1},
                    "warmup": {"type": "integer", "minimum": 0},
                    "warmup_seconds": {"type": "number", "minimum": 0},
                    "min_seconds": {"type": "number", "minimum": 0},
                    "max_seconds": {"type": "number", "minimum": 0},
                    "repeats": {"type": "integer", "minimum": 1},
                    "threads": _INT_OR_NULL,
                    "frame_size": {"type": ["array", "null"], "items": {"type": "integer"}},
                    "source": _STR_OR_NULL,
                    "targets": {"type": ["array", "null"], "items": {"type": "string"}},
                    "compare": {"type": "boolean"},
                    "accuracy_budget": _NUM,
                    "profile": {"enum": list(PROFILES)},
                },
                # Results written before profiles existed have none: they ran the default.
                required=["runs", "warmup", "warmup_seconds", "min_seconds", "max_seconds", "repeats", "threads",
                          "frame_size", "source", "targets", "compare", "accuracy_budget"],
            ),
            "environment": {"$ref": "#/$defs/environment"},
            "environment_after": _obj(
                {
                    "temperature_c": _NUM_OR_NULL,
                    "cpu_freq_mhz": _NUM_OR_NULL,
                    "load_average": {"type": ["array", "null"]},
                    "tensorflow_loaded": {"type": "boolean"},
                },
                required=["temperature_c", "cpu_freq_mhz", "load_average"],  # tensorflow_loaded: newer results only
            ),
            "results": {"type": "array", "items": {"$ref": "#/$defs/row"}},
            "comparison": {"anyOf": [{"$ref": "#/$defs/comparison"}, {"type": "null"}]},
            "gate": {"anyOf": [{"$ref": "#/$defs/gate"}, {"type": "null"}]},
        }
    ),
    "$defs": {
        "latency": _LATENCY,
        "repeat": _REPEAT,
        "row": _ROW,
        "comparison": _COMPARISON,
        "gate": _GATE,
        "environment": _ENVIRONMENT,
    },
}


# ------------------------------------------------------------------ validator

_TYPES: dict[str, Any] = {
    "object": dict,
    "array": list,
    "string": str,
    "boolean": bool,
    "null": type(None),
}


def _is_type(value: Any, name: str) -> bool:
    if name == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if name == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, _TYPES[name])


def _resolve(node: dict[str, Any]) -> dict[str, Any]:
    ref = node.get("$ref")
    if ref is None:
        return node
    prefix = "#/$defs/"
    if not ref.startswith(prefix):
        raise ValueError(f"unsupported $ref {ref}")
    return SCHEMA["$defs"][ref[len(prefix):]]


def _errors(value: Any, node: dict[str, Any], where: str) -> list[str]:
    node = _resolve(node)
    if "anyOf" in node:
        branches = [_errors(value, sub, where) for sub in node["anyOf"]]
        if any(not b for b in branches):
            return []
        return min(branches, key=len)
    if "const" in node and value != node["const"]:
        return [f"{where}: expected {node['const']!r}, received {value!r}"]
    if "enum" in node and value not in node["enum"]:
        return [f"{where}: expected one of {node['enum']}, received {value!r}"]
    types = node.get("type")
    if types is not None:
        names = [types] if isinstance(types, str) else list(types)
        if not any(_is_type(value, t) for t in names):
            return [f"{where}: expected {' or '.join(names)}, received {type(value).__name__}"]
    if "minimum" in node and _is_type(value, "number") and value < node["minimum"]:
        return [f"{where}: expected >= {node['minimum']}, received {value}"]
    errs: list[str] = []
    if isinstance(value, dict):
        props = node.get("properties", {})
        for key in node.get("required", []):
            if key not in value:
                errs.append(f"{where}: missing key {key!r}")
        extra = node.get("additionalProperties", True)
        for key, item in value.items():
            if key in props:
                errs.extend(_errors(item, props[key], f"{where}.{key}"))
            elif extra is False:
                errs.append(f"{where}: unknown key {key!r}")
            elif isinstance(extra, dict):
                errs.extend(_errors(item, extra, f"{where}.{key}"))
    if isinstance(value, list) and "items" in node:
        for i, item in enumerate(value):
            errs.extend(_errors(item, node["items"], f"{where}[{i}]"))
    return errs


def validation_errors(doc: Any) -> list[str]:
    """Every way ``doc`` breaks :data:`SCHEMA` (empty when it is valid)."""
    return _errors(doc, SCHEMA, "$")


def validate(doc: Any, *, what: str = "bench result") -> dict[str, Any]:
    """Check a bench result against :data:`SCHEMA`; return it unchanged.

    Raises:
        ConfigError: not a bench result, a newer schema version, or invalid
            (the first problems are named).

    Example::

        validate(json.load(open("bench.json")))
    """
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA_ID:
        raise ConfigError(
            f"{what} is not an edgekit bench result: expected a JSON object with \"schema\": \"{SCHEMA_ID}\".",
            hint="Write one with 'edgekit bench BUNDLE --output FILE'.",
        )
    version = doc.get("schema_version")
    if version != SCHEMA_VERSION:
        raise ConfigError(
            f"{what} has bench schema_version {version!r}; this edgekit reads version {SCHEMA_VERSION}.",
            hint="Re-run the baseline with this edgekit version, or use the edgekit that wrote it.",
        )
    errs = validation_errors(doc)
    if errs:
        more = f" (and {len(errs) - 3} more)" if len(errs) > 3 else ""
        raise ConfigError(f"{what} does not match the bench schema: {'; '.join(errs[:3])}{more}.")
    return doc


def load_result(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and validate a bench result JSON file.

    Raises:
        ConfigError: missing, unreadable, not JSON, or not a valid bench result.
    """
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"bench result {p} does not exist.", hint="Write one with 'edgekit bench BUNDLE --output FILE'.")
    from edgekit.jsonio import parse_json

    try:
        text = p.read_bytes()
    except OSError as e:
        raise ConfigError(f"bench result {p} is not readable ({e.strerror or e}).") from e
    doc = parse_json(text, what=f"bench result {p}")
    return validate(doc, what=str(p))


def is_result_file(path: str | os.PathLike[str]) -> bool:
    """True when ``path`` is a JSON file that says it is a bench result (validity is checked on load)."""
    p = Path(path)
    if not p.is_file() or p.name == "manifest.json":
        return False
    from edgekit.errors import EdgekitError
    from edgekit.jsonio import parse_json

    try:
        doc = parse_json(p.read_bytes(), what=str(p))
    except (OSError, EdgekitError):
        return False
    return isinstance(doc, dict) and doc.get("schema") == SCHEMA_ID


def save_result(doc: dict[str, Any], path: str | os.PathLike[str]) -> Path:
    """Write a validated result as JSON, atomically (a temp file beside it, then rename)."""
    validate(doc)
    data = (json.dumps(doc, indent=2) + "\n").encode("utf-8")
    return write_output(path, data, what="bench result", hint="Choose a writable --output path.")


def write_output(path: str | os.PathLike[str], data: bytes, *, what: str = "", hint: str = "Choose a writable path.") -> Path:
    """Write one of the bench's output files atomically; an OSError becomes a one-line ConfigError."""
    from edgekit.bundle import write_bytes_atomic

    p = Path(path)
    try:
        return write_bytes_atomic(p, data)
    except OSError as e:
        raise ConfigError(f"cannot write {what + ' ' if what else ''}{p}: {e.strerror or e}.", hint=hint) from e
