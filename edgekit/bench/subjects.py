"""What a bench measures: the bundle's artifacts, each opened the way the runtime opens it.

Every artifact is measured *as itself*: the runtime's policy
(:func:`edgekit.runtime.accelerators.open_plan`, strict) opens it on the
accelerator it was built for, through a view of the bundle that holds only
that artifact (a bundle may hold several variants per target, and the policy
picks by target). When that accelerator is missing here, a GPU artifact (a
plain float model) is measured on the CPU interpreter instead, and the row
says so; anything else that cannot run is a skipped row with the runtime's
reason. Tampered artifacts are never skipped: their IntegrityError stops the
bench, as it stops a deploy.
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from edgekit.bundle import ArtifactEntry, Bundle, sha256_file
from edgekit.errors import TargetError
from edgekit.runtime.accelerators import KINDS, DevicePrefs, find_artifact, kind_of, open_plan
from edgekit.runtime.backends import LoadedBackend


@dataclass
class Subject:
    """One row of a bench: what it is and how to open it (a Predictor-like object)."""

    name: str
    kind: str  # "artifact" | "peer"
    target: str | None
    variant: str | None
    file: str | None
    bytes: int | None
    accuracy: dict[str, Any] | None
    requested: str | None  # the accelerator it was built for
    open: Callable[[], Any] | None  # None: cannot be measured here (see reason)
    reason: str | None = None
    integrity_ms: float | None = None
    backend: str | None = None  # what runs it: "ai_edge_litert 2.3.0", "onnxruntime 1.32.0"
    notes: list[str] = field(default_factory=list)

    def base_row(self) -> dict[str, Any]:
        """The row's identity fields (everything measured is added by the caller)."""
        return {
            "name": self.name,
            "kind": self.kind,
            "status": "ok" if self.open is not None else "skipped",
            "reason": self.reason,
            "target": self.target,
            "variant": self.variant,
            "file": self.file,
            "bytes": self.bytes,
            "accuracy": self.accuracy,
            "requested": self.requested,
        }


def select_artifacts(bundle: Bundle, targets: list[str] | None = None) -> list[ArtifactEntry]:
    """The artifacts to measure: all of them, or those ``targets`` name (target names or kinds).

    A target name matches every variant built for it; a kind (cpu, gpu,
    edgetpu) matches every artifact built for that accelerator.

    Raises:
        TargetError: a name matches nothing (lists what the bundle has).
    """
    artifacts = bundle.manifest.artifacts
    if not targets:
        return list(artifacts)
    chosen: list[ArtifactEntry] = []
    for name in targets:
        matches = [a for a in artifacts if a.target == name]
        if not matches and name in KINDS:
            matches = [a for a in artifacts if kind_of(a) == name]
        if not matches:
            find_artifact(bundle, name)  # raises the runtime's TargetError listing the bundle's targets
        chosen.extend(m for m in matches if m not in chosen)
    return chosen


def artifact_name(entry: ArtifactEntry) -> str:
    return f"{entry.target}:{entry.variant}"


def _only(bundle: Bundle, entry: ArtifactEntry) -> Bundle:
    # The policy selects by target name; a view holding just this artifact
    # makes it open exactly this file, through the public API.
    return Bundle(path=bundle.path, manifest=dataclasses.replace(bundle.manifest, artifacts=[entry]))


def artifact_subject(
    bundle: Bundle,
    entry: ArtifactEntry,
    backend: LoadedBackend,
    *,
    threads: int | None = None,
    device: DevicePrefs | None = None,
    delegate: str | None = None,
) -> Subject:
    """Probe how ``entry`` runs here and return a Subject that opens it that way.

    Raises:
        IntegrityError: the artifact's sha256 does not match the manifest.
    """
    from edgekit.runtime.pipeline import Predictor

    subject = Subject(
        name=artifact_name(entry),
        kind="artifact",
        target=entry.target,
        variant=entry.variant,
        file=entry.file,
        bytes=entry.bytes,
        accuracy=entry.accuracy,
        requested=kind_of(entry),
        open=None,
        backend=f"{backend.name} {backend.version}",
    )
    if entry.status == "ok" and (bundle.path / entry.file).is_file():
        t0 = time.perf_counter()
        sha256_file(bundle.path / entry.file)
        subject.integrity_ms = round((time.perf_counter() - t0) * 1e3, 4)

    def opener(view: Bundle, fallback: str | None) -> Callable[[], Any]:
        def open_() -> Any:
            plan, engine = open_plan(view, backend, target=entry.target, device=device, threads=threads, delegate=delegate, strict=True)
            if fallback is not None:
                plan.fallback = fallback
                plan.entry = entry
            try:
                return Predictor(bundle, plan, engine, backend)
            except BaseException:
                engine.close()
                raise

        return open_

    as_built = opener(_only(bundle, entry), None)
    try:
        as_built().close()  # the probe: proves it opens, and how (not timed)
        subject.open = as_built
        return subject
    except TargetError as e:
        reason = e.message.rstrip(".")
    if kind_of(entry) == "gpu" and entry.status == "ok" and delegate is None:
        # A GPU artifact is a plain float model: the CPU interpreter runs it too,
        # and its CPU latency is still worth a row. Deploy would fall back to
        # the bundle's CPU artifact instead; the note says so.
        note = f"{reason}; measured this artifact on the CPU (deploy falls back to the bundle's CPU artifact)"
        on_cpu = opener(_only(bundle, dataclasses.replace(entry, accelerator=None)), note)
        try:
            on_cpu().close()
            subject.open = on_cpu
            return subject
        except TargetError as e:
            reason = f"{reason}; on the CPU too: {e.message.rstrip('.')}"
    subject.reason = reason
    return subject


def artifact_subjects(
    bundle: Bundle,
    backend: LoadedBackend,
    *,
    targets: list[str] | None = None,
    threads: int | None = None,
    device: DevicePrefs | None = None,
    delegate: str | None = None,
) -> list[Subject]:
    """One probed :class:`Subject` per selected artifact, in manifest order."""
    subjects = [
        artifact_subject(bundle, entry, backend, threads=threads, device=device, delegate=delegate)
        for entry in select_artifacts(bundle, targets)
    ]
    names = [s.name for s in subjects]
    for s in subjects:
        if names.count(s.name) > 1:  # same target and variant twice (e.g. a compiled copy): the file tells them apart
            s.name = f"{s.name} ({s.file})"
    return subjects
