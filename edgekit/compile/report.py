"""The compatibility report of one artifact: where each op will run, and why not.

Every analysis (XNNPACK, GPU delegate, Edge TPU) fills the same
:class:`CompatReport`; the bundle gets ``reports/compat_<target>.json`` (all
of it) and ``.txt`` (for people), and the manifest gets :meth:`summary`.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


#: Why an op is (or is not) on the accelerator: a value, not prose (the prose is ``reason``).
PLACEMENT_CODES = (
    "delegated",  # on the accelerator
    "unsupported_op",  # the accelerator has no kernel for this op
    "unsupported_params",  # it has one, but not for these options / operand counts / shapes
    "tensor_type_or_shape",  # the delegate's own tensor checks refuse a tensor (GPU: rank >= 5, int32...)
    "outside_partition",  # supported, but not in the partition(s) the delegate takes
    "after_split",  # Edge TPU: supported, but after the op where the graph splits
    "not_delegated",  # measured: the delegate did not take it (runs on the builtin kernel)
    "unknown",  # the placement could not be determined; no figure is derived from it
)


@dataclass
class OpPlacement:
    """One op of the artifact's main graph.

    ``on_accelerator`` is None when the placement is unknown (``code = "unknown"``).
    """

    index: int
    op: str
    on_accelerator: bool | None
    reason: str | None  # why it is not on the accelerator, in words (None when it is)
    macs: int = 0
    code: str = ""  # one of PLACEMENT_CODES; derived when not given

    def __post_init__(self) -> None:
        if not self.code:
            self.code = "delegated" if self.on_accelerator else ("unknown" if self.on_accelerator is None else "unsupported_op")
        if self.code not in PLACEMENT_CODES:
            raise ValueError(f"placement code {self.code!r} is not one of {', '.join(PLACEMENT_CODES)}")
        if (self.code == "delegated") != (self.on_accelerator is True) or (self.code == "unknown") != (self.on_accelerator is None):
            raise ValueError(f"placement code {self.code!r} contradicts on_accelerator={self.on_accelerator!r}")


@dataclass
class CompatReport:
    target: str
    analysis: str  # "xnnpack" | "gpu" | "edgetpu"
    accelerator: str  # who runs the supported ops, in words: "XNNPACK", "GPU delegate", "Edge TPU"
    method: str  # how the placement was determined, one sentence
    placements: list[OpPlacement]
    requirements: list[dict[str, Any]] = field(default_factory=list)  # model-level checks: name, ok, detail
    notes: list[str] = field(default_factory=list)
    split: dict[str, Any] | None = None  # Edge TPU: the op where the accelerated part ends
    extra: dict[str, Any] = field(default_factory=dict)  # analysis-specific (compiler run, partitions, ...)
    numeric: dict[str, Any] | None = None  # the numeric check against Keras (filled by the builder)
    fallback: str = "CPU"  # who runs the other ops, in words

    # ------------------------------------------------------------ figures
    @property
    def ops_total(self) -> int:
        return len(self.placements)

    @property
    def known(self) -> bool:
        """Whether every op's placement is known (else the fractions are None, not a guess)."""
        return all(p.on_accelerator is not None for p in self.placements)

    @property
    def ops_on(self) -> int:
        return sum(p.on_accelerator is True for p in self.placements)

    @property
    def macs_total(self) -> int:
        return sum(p.macs for p in self.placements)

    @property
    def macs_on(self) -> int:
        return sum(p.macs for p in self.placements if p.on_accelerator is True)

    @property
    def fraction_ops(self) -> float | None:
        if not self.known:
            return None
        return self.ops_on / self.ops_total if self.ops_total else 0.0

    @property
    def fraction_macs(self) -> float | None:
        if not self.known:
            return None
        # A graph with no MAC-heavy op: the op fraction is the honest figure.
        return self.macs_on / self.macs_total if self.macs_total else self.fraction_ops

    @property
    def status(self) -> str:
        """"full" (every op on the accelerator), "partial", "none", or "unknown"."""
        if not self.known:
            return "unknown"
        if self.ops_total and self.ops_on == self.ops_total:
            return "full"
        return "partial" if self.ops_on else "none"

    def unsupported(self) -> list[dict[str, Any]]:
        """Ops not on the accelerator, grouped by (op, reason), in graph order."""
        groups: dict[tuple[str, str], dict[str, Any]] = {}
        for p in self.placements:
            if p.on_accelerator is not False:  # on it, or unknown
                continue
            key = (p.op, p.reason or "")
            g = groups.setdefault(key, {"op": p.op, "code": p.code, "reason": p.reason, "count": 0, "first_index": p.index})
            g["count"] += 1
        return list(groups.values())

    # ---------------------------------------------------------- rendering
    def summary(self) -> dict[str, Any]:
        """The short form stored in the manifest's ``ArtifactEntry.compatibility``."""
        d: dict[str, Any] = {
            "analysis": self.analysis,
            "accelerator": self.accelerator,
            "status": self.status,
            "ops": self.ops_total,
            "ops_on_accelerator": self.ops_on,
            "fraction_ops": None if self.fraction_ops is None else round(self.fraction_ops, 4),
            "fraction_macs": None if self.fraction_macs is None else round(self.fraction_macs, 4),
            "not_on_accelerator": sorted({p.op for p in self.placements if p.on_accelerator is False}),
            "requirements_failed": [r["name"] for r in self.requirements if not r["ok"]],
        }
        if self.split is not None:
            d["split"] = self.split
        if self.numeric is not None:
            d["numeric"] = {k: self.numeric[k] for k in ("ok", "max_error", "tolerance", "top1_agreement") if k in self.numeric}
        if "compiler" in self.extra:
            d["compiler"] = {k: v for k, v in self.extra["compiler"].items() if k in ("status", "command", "agrees")}
        return d

    def to_dict(self) -> dict[str, Any]:
        d = {
            "target": self.target,
            "analysis": self.analysis,
            "accelerator": self.accelerator,
            "fallback": self.fallback,
            "method": self.method,
            "status": self.status,
            "ops": self.ops_total,
            "ops_on_accelerator": self.ops_on,
            "macs": self.macs_total,
            "macs_on_accelerator": self.macs_on,
            "fraction_ops": self.fraction_ops,
            "fraction_macs": self.fraction_macs,
            "requirements": self.requirements,
            "split": self.split,
            "unsupported": self.unsupported(),
            "notes": self.notes,
            "numeric": self.numeric,
            "extra": self.extra,
            "placements": [asdict(p) for p in self.placements],
        }
        return d

    def headline(self) -> str:
        """One line: how much runs on the accelerator."""
        if not self.known:
            unknown = sum(p.on_accelerator is None for p in self.placements)
            return f"{self.target}: placement of {unknown}/{self.ops_total} ops on {self.accelerator} is unknown"
        return (
            f"{self.target}: {self.ops_on}/{self.ops_total} ops ({self.fraction_ops:.0%}) and "
            f"{self.fraction_macs:.0%} of MACs on {self.accelerator}"
        )

    def to_text(self) -> str:
        lines = [f"Compatibility report: target {self.target} ({self.accelerator})", self.headline(), f"method: {self.method}"]
        for r in self.requirements:
            lines.append(f"  [{'ok' if r['ok'] else 'FAIL'}] {r['name']}: {r['detail']}")
        if self.split is not None:
            s = self.split
            lines.append(f"split: op #{s['index']} {s['op']} cannot map ({s['reason']}); it and every op after it run on the CPU.")
        bad = self.unsupported()
        if not self.known:
            lines.append(f"placement unknown for {sum(p.on_accelerator is None for p in self.placements)} op(s): no fraction is reported.")
        if bad:
            lines.append(f"not on {self.accelerator} (run by {self.fallback}):")
            for g in bad:
                lines.append(f"  {g['op']} x{g['count']} (first #{g['first_index']}): {g['reason']}")
        elif self.known:
            lines.append(f"every op runs on {self.accelerator}.")
        if self.numeric is not None:
            n = self.numeric
            verdict = "within" if n.get("ok") else "OUTSIDE"
            agree = n.get("top1_agreement")
            lines.append(
                f"numeric check vs Keras on {n.get('samples')} samples: max error {n.get('max_error', float('nan')):.4g} "
                f"({verdict} tolerance {n.get('tolerance')})"
                + (f", top-1 agreement {agree:.1%}" if agree is not None else "")
            )
        comp = self.extra.get("compiler")
        if comp:
            lines.append(f"edgetpu_compiler: {comp.get('status')}")
            if comp.get("message"):
                lines.append(f"  {comp['message']}")
            if comp.get("command"):
                lines.append(f"  run: {comp['command']}")
        for note in self.notes:
            lines.append(f"note: {note}")
        lines.append("")
        lines.append("ops (index, op, where, MACs, code, reason):")
        for p in self.placements:
            where = self.accelerator if p.on_accelerator else ("unknown" if p.on_accelerator is None else self.fallback)
            lines.append(f"  #{p.index:<4} {p.op:<26} {where:<16} {p.macs:>12,}  {p.code:<20} {p.reason or ''}".rstrip())
        return "\n".join(lines) + "\n"
