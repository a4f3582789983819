"""``--compare``: every variant side by side, ratios against fp32, and a recommendation per target.

The reference is the bundle's fp32 artifact (a CPU one first), else the
``tflite-default`` peer (also float32); without either, ratios are None and a
note says why. The reference *accuracy* is the float model's, taken from the
manifest's evaluation rows (``variants``), else the reference artifact's,
else the best measured.

The recommended artifact for a target is the fastest (p50) among its measured
variants whose top-1 is within ``accuracy_budget`` percentage points of the
reference accuracy. A variant without a recorded accuracy is never
recommended over one that has it; when none has one, the fastest is
recommended and a note says accuracy was not checked.
"""
from __future__ import annotations

from typing import Any

# Names the build side uses for the unconverted float model in ``variants``.
FLOAT_NAMES = ("float", "fp32", "keras", "baseline", "original")
DEFAULT_ACCURACY_BUDGET = 1.0  # percentage points of top-1


def top1(accuracy: Any) -> float | None:
    """Top-1 as a fraction from an ``accuracy`` field (a dict with top1/accuracy, or a number)."""
    if isinstance(accuracy, dict):
        for key in ("top1", "accuracy", "top1_accuracy"):
            v = accuracy.get(key)
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                return float(v)
        return None
    if isinstance(accuracy, (int, float)) and not isinstance(accuracy, bool):
        return float(accuracy)
    return None


def _variant_name(row: dict[str, Any]) -> str | None:
    for key in ("variant", "name", "label"):
        if isinstance(row.get(key), str):
            return row[key]
    return None


def _variant_top1(row: dict[str, Any]) -> float | None:
    v = top1(row.get("accuracy"))
    return v if v is not None else top1(row)


def _reference(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    ok = [r for r in rows if r["status"] == "ok" and r.get("latency_ms")]
    fp32 = [r for r in ok if r["kind"] == "artifact" and (r.get("variant") or "").lower() in ("fp32", "float32", "float")]
    fp32.sort(key=lambda r: (r.get("requested") != "cpu", r.get("target") != "cpu"))
    if fp32:
        return fp32[0]
    peer = [r for r in ok if r["name"] == "peer:tflite-default"]
    return peer[0] if peer else None


def _ratio(num: float | None, den: float | None) -> float | None:
    if not num or not den:
        return None
    return round(float(num) / float(den), 4)


def compare_rows(
    rows: list[dict[str, Any]],
    variants: list[dict[str, Any]] | None = None,
    *,
    accuracy_budget: float = DEFAULT_ACCURACY_BUDGET,
    artifact_hashes: set[str] | None = None,
) -> dict[str, Any]:
    """The ``comparison`` section of a bench result.

    Args:
        rows: the bench's result rows (artifacts and peers).
        variants: the manifest's evaluation rows (may be empty).
        accuracy_budget: the top-1 drop allowed, in percentage points.
        artifact_hashes: sha256 of the bundle's artifacts: evaluation rows of
            the same file are already timed and not listed again.

    Returns:
        reference, reference_accuracy, accuracy_budget, rows, recommended, notes, variants.

    Example::

        c = compare_rows(result["results"], manifest.variants, accuracy_budget=1.0)
        print(c["recommended"])   # {"cpu": "cpu:int8"}
    """
    variants = [v for v in (variants or []) if isinstance(v, dict)]
    notes: list[str] = []
    ref = _reference(rows)
    if ref is None:
        notes.append("no fp32 artifact or tflite-default peer was measured: ratios need a float32 reference")
    ref_p50 = ref["latency_ms"]["p50"] if ref else None
    ref_p90 = ref["latency_ms"]["p90"] if ref else None
    ref_bytes = ref.get("bytes") if ref else None

    floats = [t for v in variants if (_variant_name(v) or "").lower() in FLOAT_NAMES and (t := _variant_top1(v)) is not None]
    ref_acc = floats[0] if floats else (top1(ref.get("accuracy")) if ref else None)
    if ref_acc is None:
        measured = [t for r in rows if (t := top1(r.get("accuracy"))) is not None]
        ref_acc = max(measured) if measured else None
        if ref_acc is not None:
            notes.append("no float model accuracy in the manifest: the budget is measured from the most accurate artifact")

    out_rows = []
    for r in rows:
        if r["status"] != "ok" or not r.get("latency_ms"):
            continue
        acc = top1(r.get("accuracy"))
        delta = None if acc is None or ref_acc is None else round((acc - ref_acc) * 100.0, 3)
        out_rows.append(
            {
                "name": r["name"],
                "target": r.get("target"),
                "variant": r.get("variant"),
                "speedup_p50": _ratio(ref_p50, r["latency_ms"]["p50"]),
                "speedup_p90": _ratio(ref_p90, r["latency_ms"]["p90"]),
                "size_ratio": _ratio(ref_bytes, r.get("bytes")),
                "top1": acc,
                "accuracy_delta_pts": delta,
                "within_budget": None if delta is None else bool(delta >= -accuracy_budget - 1e-9),
            }
        )

    recommended: dict[str, str] = {}
    by_name = {r["name"]: r for r in rows}
    targets = list(dict.fromkeys(r["target"] for r in out_rows if by_name[r["name"]]["kind"] == "artifact"))
    for target in targets:
        mine = [c for c in out_rows if c["target"] == target and by_name[c["name"]]["kind"] == "artifact"]
        with_acc = [c for c in mine if c["within_budget"] is not None]
        pool = [c for c in with_acc if c["within_budget"]]
        if not with_acc:
            pool = mine
            notes.append(f"{target}: no accuracy recorded for its artifacts; recommended the fastest without an accuracy check")
        elif not pool:
            notes.append(f"{target}: no variant is within {accuracy_budget:g} pts of the reference accuracy; nothing recommended")
            continue
        best = min(pool, key=lambda c: by_name[c["name"]]["latency_ms"]["p50"])
        recommended[target] = best["name"]
        measured_on = by_name[best["name"]].get("accelerator")
        if measured_on and measured_on != by_name[best["name"]].get("requested"):
            notes.append(f"{target}: chosen from timings on the {measured_on}, not the {by_name[best['name']].get('requested')} it was built for")

    # The recommended CPU artifact against each measured peer, as a plain
    # ratio: where a peer (e.g. ONNX Runtime int8) is faster, this says so.
    for target, name in recommended.items():
        mine = by_name[name]
        if mine.get("requested") != "cpu":
            continue
        for peer in rows:
            if peer["kind"] != "peer" or peer["status"] != "ok" or not peer.get("latency_ms"):
                continue
            ratio = _ratio(peer["latency_ms"]["p50"], mine["latency_ms"]["p50"])
            if ratio is None:
                continue
            verdict = "faster than" if ratio > 1 else "slower than" if ratio < 1 else "as fast as"
            notes.append(
                f"{target}: recommended {name} is {verdict} {peer['name']}: p50 {mine['latency_ms']['p50']:.3f} ms vs "
                f"{peer['latency_ms']['p50']:.3f} ms, {ratio:.2f}× its speed"
            )

    files = {r.get("file") for r in rows if r.get("file")}
    names = {r.get("variant") for r in rows if r["kind"] == "artifact"}
    hashes = artifact_hashes or set()
    untimed = []
    for v in variants:
        name = _variant_name(v)
        if v.get("sha256") in hashes or v.get("file") in files or (name in names and name not in FLOAT_NAMES):
            continue
        untimed.append({"variant": name, "top1": _variant_top1(v), "note": "no artifact in the bundle to time"})

    return {
        "reference": ref["name"] if ref else None,
        "reference_accuracy": ref_acc,
        "accuracy_budget": float(accuracy_budget),
        "rows": out_rows,
        "recommended": recommended,
        "notes": notes,
        "variants": untimed,
    }
