"""The CI regression gate: this bench against a baseline bench, with noise taken seriously.

For every artifact measured in both (matched by name: ``<target>:<variant>``),
four metrics are compared; a *change* is relative and positive when worse:

- ``latency_p50_ms``, ``latency_p90_ms``: the median over repeats of each
  repeat's p50/p90 (more is worse);
- ``bytes``: the artifact's size (more is worse);
- ``top1``: the accuracy recorded in the manifest (less is worse).

A row *regressed* when its change exceeds ``max_regression``. Latency rows
also carry the *spread* of their repeats (``(max - min) / median``, the larger
of baseline and current). When that spread exceeds ``max_regression`` the
row is *too noisy*: the repeats disagree more than the budget, so a change
within ``max_regression + spread`` either way proves nothing. A change beyond
that is judged anyway (no noise of that size explains it).

Outcomes and exit codes (``edgekit bench --baseline``):

===========  =====  ==========================================================
outcome      exit   meaning
===========  =====  ==========================================================
pass         0      nothing regressed past the threshold
regressed    1      at least one row regressed (:class:`~edgekit.errors.GateError`)
too_noisy    3      nothing provably regressed, but some row's spread is wider
                    than the threshold (:class:`SpreadTooWideError`): pin the
                    CPU governor, close other work, or raise ``--repeats``
===========  =====  ==========================================================

Size and accuracy are deterministic, so a regression there is reported even
when latency is too noisy to judge.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from edgekit.bench.compare import top1
from edgekit.errors import ConfigError, GateError

METRICS: tuple[str, ...] = ("latency_p50_ms", "latency_p90_ms", "bytes", "top1")
EXIT_PASS, EXIT_REGRESSED, EXIT_TOO_NOISY = 0, 1, 3
# Environment fields that make two latencies incomparable when they differ.
_ENV_CHECKED = ("cpu_model", "device_model", "cpu_cores_usable", "governor", "backend", "backend_version")


class SpreadTooWideError(GateError):
    """The runs disagree more than the threshold: the gate cannot judge (exit 3)."""

    exit_code = EXIT_TOO_NOISY


def parse_threshold(text: str | float) -> float:
    """``"10%"`` or ``"10"`` -> 0.10 (always percent).

    Raises:
        ConfigError: not a number, negative, or 1000 % and more.

    Example::

        parse_threshold("7.5%")  # 0.075
    """
    raw = str(text).strip()
    number = raw[:-1].strip() if raw.endswith("%") else raw
    try:
        value = float(number)
    except ValueError:
        value = float("nan")
    if not math.isfinite(value) or value < 0 or value >= 1000:
        raise ConfigError(f"--max-regression must be a percentage like 10% (0 to 1000); received {text!r}.")
    return value / 100.0


@dataclass
class GateRow:
    name: str
    metric: str
    baseline: float | None
    current: float | None
    change: float | None  # relative; positive = worse
    spread: float | None  # latency only
    status: str  # pass | improved | regressed | too_noisy | not_measured

    def to_dict(self) -> dict[str, Any]:
        r = lambda v: None if v is None else round(float(v), 6)  # noqa: E731
        return {
            "name": self.name,
            "metric": self.metric,
            "baseline": r(self.baseline),
            "current": r(self.current),
            "change": r(self.change),
            "spread": r(self.spread),
            "status": self.status,
        }


@dataclass
class GateResult:
    outcome: str  # pass | regressed | too_noisy
    max_regression: float
    baseline: str
    rows: list[GateRow]
    warnings: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return {"pass": EXIT_PASS, "regressed": EXIT_REGRESSED, "too_noisy": EXIT_TOO_NOISY}[self.outcome]

    @property
    def failing(self) -> list[GateRow]:
        """The rows behind the outcome: regressed ones, else too-noisy ones."""
        want = {"regressed": "regressed", "too_noisy": "too_noisy"}.get(self.outcome)
        return [r for r in self.rows if r.status == want]

    def to_dict(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome,
            "exit_code": self.exit_code,
            "max_regression": self.max_regression,
            "baseline": self.baseline,
            "rows": [r.to_dict() for r in self.rows],
            "warnings": list(self.warnings),
        }

    def raise_for_outcome(self) -> None:
        """Raise GateError (exit 1) or SpreadTooWideError (exit 3); return on pass."""
        pct = f"{self.max_regression * 100:g}%"
        if self.outcome == "regressed":
            what = "; ".join(_describe(r) for r in self.failing)
            raise GateError(f"regressed past {pct} against {self.baseline}: {what}.")
        if self.outcome == "too_noisy":
            what = "; ".join(f"{r.name} {r.metric} spread {r.spread * 100:.1f}%" for r in self.failing if r.spread is not None)
            raise SpreadTooWideError(
                f"spread too wide to judge at {pct} against {self.baseline}: {what}.",
                hint="Pin the CPU governor to performance, stop other load, raise --repeats/--min-seconds, or widen --max-regression.",
            )


def _describe(r: GateRow) -> str:
    return f"{r.name} {r.metric} {_fmt(r.baseline)} -> {_fmt(r.current)} ({r.change * 100:+.1f}%)" if r.change is not None else r.name


def _fmt(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v:.4g}"


def _key(row: dict[str, Any]) -> tuple:
    # The name is "<target>:<variant>" (file added when that pair repeats), unique in a result.
    return (row["kind"], row["name"])


def _metric_values(row: dict[str, Any]) -> dict[str, tuple[float | None, float | None]]:
    lat = row.get("latency_ms") or {}
    spread = row.get("spread") or {}
    return {
        "latency_p50_ms": (lat.get("p50"), spread.get("p50")),
        "latency_p90_ms": (lat.get("p90"), spread.get("p90")),
        "bytes": (row.get("bytes"), None),
        "top1": (top1(row.get("accuracy")), None),
    }


def _judge(metric: str, base: float, cur: float, spread: float | None, threshold: float) -> tuple[float, str]:
    if metric == "top1":
        change = (base - cur) / base if base else (0.0 if cur == base else math.inf)
    else:
        change = (cur - base) / base if base else (0.0 if cur == base else math.inf)
    eps = 1e-12
    if spread is not None and spread > threshold + eps:
        # Only a change larger than the noise can be told apart from it.
        if change > threshold + spread + eps:
            return change, "regressed"
        if change < -(threshold + spread) - eps:
            return change, "improved"
        return change, "too_noisy"
    if change > threshold + eps:
        return change, "regressed"
    if change < -threshold - eps:
        return change, "improved"
    return change, "pass"


def gate(current: dict[str, Any], baseline: dict[str, Any], max_regression: float, *, baseline_name: str = "baseline") -> GateResult:
    """Compare two bench results.

    Args:
        current, baseline: validated bench results (``edgekit.bench.schema``).
        max_regression: the relative budget, e.g. 0.10 for 10 %.
        baseline_name: how the baseline is named in messages (its path).

    Returns:
        A :class:`GateResult`; call :meth:`GateResult.raise_for_outcome` to enforce it.

    Raises:
        ConfigError: the two were measured differently (end to end vs frames).
        GateError: no artifact was measured in both.

    Example::

        result = gate(load_result("new.json"), load_result("old.json"), parse_threshold("10%"))
        result.raise_for_outcome()
    """
    if current.get("mode") != baseline.get("mode"):
        raise ConfigError(
            f"the baseline was measured in mode {baseline.get('mode')!r} and this run in {current.get('mode')!r}; "
            "their latencies are not comparable.",
            hint="Run the bench the same way as the baseline (with or without --end-to-end).",
        )
    warnings = _environment_warnings(current, baseline)
    cur_rows = {_key(r): r for r in current["results"]}
    rows: list[GateRow] = []
    compared = 0
    for b in baseline["results"]:
        if b["status"] != "ok":
            continue
        c = cur_rows.get(_key(b))
        if c is None or c["status"] != "ok":
            rows.append(GateRow(b["name"], "latency_p50_ms", (b.get("latency_ms") or {}).get("p50"), None, None, None, "not_measured"))
            continue
        compared += 1
        base_values, cur_values = _metric_values(b), _metric_values(c)
        for metric in METRICS:
            bv, bs = base_values[metric]
            cv, cs = cur_values[metric]
            if bv is None or cv is None:
                continue
            spreads = [s for s in (bs, cs) if s is not None]
            spread = max(spreads) if spreads else None
            change, status = _judge(metric, float(bv), float(cv), spread, max_regression)
            rows.append(GateRow(c["name"], metric, float(bv), float(cv), change, spread, status))
    if compared == 0:
        have = ", ".join(r["name"] for r in baseline["results"]) or "none"
        raise GateError(
            f"nothing to compare: no artifact measured in this run was measured in {baseline_name} (it has: {have}).",
            hint="Bench the same bundle targets as the baseline, or write a new baseline.",
        )
    if all(
        (r.get("spread") or {}).get("p50") is None
        for r in (*baseline["results"], *current["results"])
        if r["status"] == "ok"
    ):
        warnings.append("single runs on both sides: noise was not measured; use --repeats 3 or more for a robust gate")
    statuses = {r.status for r in rows}
    outcome = "regressed" if "regressed" in statuses else "too_noisy" if "too_noisy" in statuses else "pass"
    return GateResult(outcome, max_regression, baseline_name, rows, warnings)


def _environment_warnings(current: dict[str, Any], baseline: dict[str, Any]) -> list[str]:
    out = []
    ce, be = current.get("environment", {}), baseline.get("environment", {})
    for key in _ENV_CHECKED:
        if ce.get(key) != be.get(key):
            out.append(f"{key} differs: baseline {be.get(key)!r}, now {ce.get(key)!r}")
    cc, bc = current.get("config", {}), baseline.get("config", {})
    for key in ("threads", "frame_size", "source"):
        if cc.get(key) != bc.get(key):
            out.append(f"config {key} differs: baseline {bc.get(key)!r}, now {cc.get(key)!r}")
    return out
