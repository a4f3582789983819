"""Which artifact runs, on what, and what happens when the accelerator is not there.

The policy, in one place:

1. ``--target`` names an artifact: an exact target name in the manifest, or a
   kind (``cpu``, ``gpu``, ``edgetpu``) matched against each artifact's
   ``accelerator``. ``auto`` tries the kinds in the device profile's order
   (``--device``), else ``edgetpu, gpu, cpu``: best first.
2. An accelerated artifact is tried with what could run it, in order:
   ``--delegate PATH``; for the GPU, LiteRT's GPU accelerator and then any GPU
   delegate library the profile names that is on the library path; for the
   Edge TPU, ``libedgetpu.so.1`` (or the profile's names).
   Before any of these native libraries is loaded, its CPU requirements are
   checked (:mod:`edgekit.runtime.cpu_features`): a library built for ARMv8.2
   aborts the whole process on a Pi 4's ARMv8.0 core, which no ``try`` catches,
   so it is refused with the missing features as the reason instead (for
   LiteRT's own GPU library, in :class:`~edgekit.runtime.engines.CompiledModelEngine`).
3. If none works, the run falls back to the bundle's CPU artifact and the plan
   carries a one-line ``fallback`` reason (the CLI prints it as a warning).
   With ``strict`` that is a :class:`~edgekit.errors.TargetError` instead. With
   ``auto``, ``strict`` means the first candidate in the bundle must run.

To support a new accelerator kind, add it to ``KINDS`` and give
:func:`_attempts` the ways to open it.
"""
from __future__ import annotations

import functools
import glob
import logging
import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from edgekit.bundle import ArtifactEntry, Bundle
from edgekit.errors import TargetError
from edgekit.runtime.backends import LoadedBackend
from edgekit.runtime.cpu_features import library_cpu_problem
from edgekit.runtime.engines import CompiledModelEngine, EngineUnavailable, InterpreterEngine, load_delegate

log = logging.getLogger("edgekit.runtime")

KINDS: tuple[str, ...] = ("cpu", "gpu", "edgetpu")
AUTO_ORDER: tuple[str, ...] = ("edgetpu", "gpu", "cpu")
EDGETPU_LIBRARIES: tuple[str, ...] = ("libedgetpu.so.1", "libedgetpu.1.dylib", "edgetpu.dll")
GPU_DELEGATE_LIBRARIES: tuple[str, ...] = ("libtensorflowlite_gpu_delegate.so",)


# ----------------------------------------------------------------- libraries

_STANDARD_DIRS = (
    "/lib",
    "/lib64",
    "/usr/lib",
    "/usr/lib64",
    "/usr/local/lib",
    "/usr/lib/*-linux-gnu",
    "/lib/*-linux-gnu",
    "/usr/lib/aarch64-linux-gnu/tegra",  # Jetson
    "/opt/homebrew/lib",
)


@functools.lru_cache(maxsize=1)
def _ldconfig_cache() -> dict[str, str]:
    ldconfig = shutil.which("ldconfig") or ("/sbin/ldconfig" if os.path.exists("/sbin/ldconfig") else None)
    if not ldconfig:
        return {}
    try:
        out = subprocess.run([ldconfig, "-p"], capture_output=True, text=True, timeout=5, check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    found: dict[str, str] = {}
    for m in re.finditer(r"^\s*(\S+) \([^)]*\) => (\S+)$", out, re.M):
        found.setdefault(m.group(1), m.group(2))
    return found


def library_dirs() -> list[str]:
    """Where shared libraries are looked for: LD_LIBRARY_PATH, then the standard folders."""
    dirs = [d for d in os.environ.get("LD_LIBRARY_PATH", "").split(os.pathsep) if d]
    for pattern in _STANDARD_DIRS:
        dirs.extend(sorted(glob.glob(pattern)))
    return list(dict.fromkeys(d for d in dirs if os.path.isdir(d)))


def find_library(name: str) -> str | None:
    """The path of shared library ``name`` as the dynamic loader would find it, or None.

    A name with a slash is a path and is returned if the file exists.
    """
    if os.sep in name or "/" in name:
        return name if os.path.isfile(name) else None
    for d in library_dirs():
        p = os.path.join(d, name)
        if os.path.isfile(p):
            return p
    return _ldconfig_cache().get(name)


def find_first(names: Sequence[str]) -> str | None:
    for name in names:
        path = find_library(name)
        if path:
            return path
    return None


# ------------------------------------------------------------------ profiles


@dataclass(frozen=True)
class DevicePrefs:
    """What the runtime needs from a device profile."""

    name: str
    targets: tuple[str, ...]  # preference order, best first
    threads: int | None
    edgetpu_libraries: tuple[str, ...] = EDGETPU_LIBRARIES
    gpu_libraries: tuple[str, ...] = GPU_DELEGATE_LIBRARIES
    delegate_options: dict[str, dict[str, str]] = field(default_factory=dict)  # accelerator -> load_delegate options


def device_prefs(ref: str | os.PathLike[str]) -> DevicePrefs:
    """A device profile by name (``targets/<name>.toml``) or the path of a user's ``.toml``.

    Raises:
        TargetError: unknown device (the message lists the valid ones).
        ConfigError: a profile file with a wrong key or type.
    """
    from edgekit.profiles import resolve_device

    dev = resolve_device(ref if isinstance(ref, str) else Path(ref))
    libs = dict(dev.delegates)
    return DevicePrefs(
        name=dev.name,
        targets=tuple(dev.targets),
        threads=dev.threads,
        edgetpu_libraries=tuple(libs.get("edgetpu", ())) or EDGETPU_LIBRARIES,
        gpu_libraries=tuple(libs.get("gpu", ())) or GPU_DELEGATE_LIBRARIES,
        delegate_options={k: dict(v) for k, v in dev.delegate_options.items()},
    )


def default_threads() -> int:
    """All the cores this process may run on (respects CPU affinity / container limits)."""
    try:
        return max(len(os.sched_getaffinity(0)), 1)
    except (AttributeError, OSError):
        return os.cpu_count() or 1


# ---------------------------------------------------------------- the policy


def kind_of(entry: ArtifactEntry) -> str:
    return entry.accelerator or "cpu"


def _runnable(entry: ArtifactEntry) -> str | None:
    """Why this artifact cannot run at all, whatever the hardware; None if it can."""
    if entry.status != "ok":
        if kind_of(entry) == "edgetpu":
            return (
                f"the bundle's Edge TPU artifact {entry.file} was not compiled for the Edge TPU "
                f"(status {entry.status}: edgetpu_compiler was missing when the bundle was built)"
            )
        return f"artifact {entry.file} has status {entry.status}"
    return None


def find_artifact(bundle: Bundle, target: str) -> ArtifactEntry:
    """The artifact ``target`` names: an exact target name, else a kind.

    For the Edge TPU a compiled artifact (``compiled_from`` set) wins over the
    uncompiled one it came from.

    Raises:
        TargetError: nothing in the bundle matches (lists what it has).
    """
    m = bundle.manifest

    def best(matches: list[ArtifactEntry]) -> ArtifactEntry:
        # A compiler's output may share its source's target name; ready and compiled first.
        return sorted(matches, key=lambda a: (a.status != "ok", a.compiled_from is None))[0]

    exact = [a for a in m.artifacts if a.target == target]
    if exact:
        return best(exact)
    if target in KINDS:
        matches = [a for a in m.artifacts if kind_of(a) == target]
        if matches:
            return best(matches)
    have = ", ".join(f"{a.target} ({kind_of(a)})" for a in m.artifacts) or "none"
    raise TargetError(
        f"target {target!r} is not in bundle {bundle.path}; it has: {have}.",
        hint="Pick one of those with --target, or rebuild the bundle with that target.",
    )


def cpu_artifact(bundle: Bundle) -> ArtifactEntry | None:
    """The artifact to fall back to: target ``cpu`` if present, else any ready CPU artifact."""
    cpu = [a for a in bundle.manifest.artifacts if kind_of(a) == "cpu" and a.status == "ok"]
    cpu.sort(key=lambda a: a.target != "cpu")
    return cpu[0] if cpu else None


@dataclass
class Plan:
    """The decision: which artifact runs on what, and why, in words."""

    requested: str  # what was asked: a target, a kind or "auto"
    entry: ArtifactEntry  # the artifact that runs
    accelerator: str  # "cpu" | "gpu" | "edgetpu": what actually runs it
    via: str  # e.g. "XNNPACK (4 threads)", "LiteRT GPU accelerator", "delegate /usr/lib/libedgetpu.so.1"
    threads: int
    fallback: str | None = None  # set when this is not what was asked for
    notes: list[str] = field(default_factory=list)  # auto: why better candidates were passed over

    def to_dict(self) -> dict[str, Any]:
        return {
            "requested": self.requested,
            "target": self.entry.target,
            "file": self.entry.file,
            "variant": self.entry.variant,
            "accelerator": self.accelerator,
            "via": self.via,
            "threads": self.threads,
            "fallback": self.fallback,
            "notes": list(self.notes),
        }


Opener = Callable[[], Any]


def _attempts(
    entry: ArtifactEntry,
    path: Path,
    backend: LoadedBackend,
    threads: int,
    delegate: str | None,
    prefs: DevicePrefs | None,
    content: bytes | None = None,
) -> list[tuple[str, Opener]]:
    """The ways to run ``entry`` as intended, best first: (description, engine opener)."""
    kind = kind_of(entry)

    options = dict(prefs.delegate_options.get(kind, {})) if prefs else {}

    def with_delegate(lib: str, accel: str) -> Opener:
        def open_() -> Any:
            # A delegate built with a fail-fast CPU guard would abort the process on load.
            why = library_cpu_problem(lib)
            if why:
                raise EngineUnavailable(f"delegate {lib} was not loaded: {why}")
            d = load_delegate(backend, lib, options)
            return InterpreterEngine(path, backend, threads=threads, delegates=[d], accelerator=accel, content=content)

        return open_

    if delegate:
        return [(f"delegate {delegate}", with_delegate(delegate, kind if kind != "cpu" else "delegate"))]
    if kind == "cpu":
        return [(f"CPU, {threads} threads", lambda: InterpreterEngine(path, backend, threads=threads, accelerator="cpu", content=content))]
    if kind == "gpu":
        # CompiledModelEngine checks the CPU before LiteRT loads its GPU library.
        ways: list[tuple[str, Opener]] = [
            ("LiteRT GPU accelerator", lambda: CompiledModelEngine(path, backend, accelerator="gpu", threads=threads, content=content))
        ]
        names = prefs.gpu_libraries if prefs else GPU_DELEGATE_LIBRARIES
        lib = find_first(names)
        if lib:
            ways.append((f"delegate {lib}", with_delegate(lib, "gpu")))
        else:
            ways.append((f"GPU delegate {'/'.join(names)}", _missing(f"no GPU delegate library ({', '.join(names)}) on the library path")))
        return ways
    if kind == "edgetpu":
        names = prefs.edgetpu_libraries if prefs else EDGETPU_LIBRARIES
        lib = find_first(names)
        if lib:
            return [(f"delegate {lib}", with_delegate(lib, "edgetpu"))]
        return [("Edge TPU delegate", _missing(
            f"{names[0]} not found on the library path (install the Edge TPU runtime, libedgetpu1-std) to run {path.name}"
        ))]
    return [(kind, _missing(f"no way to run accelerator {kind!r}"))]


def _missing(reason: str) -> Opener:
    def open_() -> Any:
        raise EngineUnavailable(reason)

    return open_


def _try(entry: ArtifactEntry, bundle: Bundle, backend: LoadedBackend, threads: int, delegate: str | None, prefs: DevicePrefs | None):
    """Open ``entry`` as intended: (engine, via) or (None, reason)."""
    why = _runnable(entry)
    if why:
        return None, why
    # sha256 checked here: IntegrityError is never a fallback. The engines load
    # these very bytes, so what runs is what was hashed.
    content = bundle.artifact_bytes(entry)
    path = bundle.artifact_path(entry, verify=False)
    reasons = []
    for via, opener in _attempts(entry, path, backend, threads, delegate, prefs, content):
        try:
            return opener(), via
        except EngineUnavailable as e:
            reasons.append(str(e))
    return None, "; ".join(reasons)


def open_plan(
    bundle: Bundle,
    backend: LoadedBackend,
    *,
    target: str = "auto",
    device: DevicePrefs | None = None,
    threads: int | None = None,
    delegate: str | None = None,
    strict: bool = False,
) -> tuple[Plan, Any]:
    """Apply the policy: choose, open and return (plan, engine).

    Raises:
        TargetError: unknown target; a ``delegate`` path that does not exist;
            ``strict`` and the accelerator is not available; nothing runnable.
        IntegrityError: the chosen artifact's sha256 does not match.
    """
    if delegate is not None and not os.path.isfile(delegate):
        raise TargetError(
            f"delegate library {delegate} does not exist.",
            hint="Give the full path of the delegate .so, e.g. --delegate /usr/lib/libedgetpu.so.1.",
        )
    n_threads = threads or (device.threads if device else None) or default_threads()
    if threads is not None and threads < 1:
        raise TargetError(f"--threads must be >= 1; received {threads}.")

    if target == "auto":
        return _open_auto(bundle, backend, device, n_threads, delegate, strict)

    entry = find_artifact(bundle, target)
    engine, via = _try(entry, bundle, backend, n_threads, delegate, device)
    if engine is not None:
        return Plan(target, entry, engine.accelerator, via, n_threads), engine
    reason = via
    if kind_of(entry) == "cpu" and delegate is None:
        raise TargetError(f"target {target!r} cannot run: {reason}.", hint="Rebuild the bundle; see 'edgekit doctor'.")
    if strict:
        raise TargetError(
            f"target {target!r} cannot run here: {reason}.",
            hint="Drop --strict to fall back to the CPU artifact, or fix the accelerator setup (see 'edgekit doctor').",
        )
    return _fall_back(bundle, backend, entry, target, reason, n_threads)


def _open_auto(bundle, backend, device, threads, delegate, strict):
    order = device.targets if device else AUTO_ORDER
    candidates: list[ArtifactEntry] = []
    for name in order:
        try:
            entry = find_artifact(bundle, name)
        except TargetError:
            continue
        if entry not in candidates:
            candidates.append(entry)
    if not candidates:
        # A device profile may not list this bundle's targets; its CPU artifact still runs.
        fallback = cpu_artifact(bundle)
        if fallback is None:
            have = ", ".join(bundle.manifest.targets) or "none"
            raise TargetError(f"bundle {bundle.path} has no artifact for {', '.join(order)}; it has: {have}.")
        candidates.append(fallback)
    notes: list[str] = []
    for i, entry in enumerate(candidates):
        engine, via = _try(entry, bundle, backend, threads, delegate, device)
        if engine is not None:
            return Plan("auto", entry, engine.accelerator, via, threads, notes=notes), engine
        if strict and i == 0:
            raise TargetError(
                f"auto: the preferred target {entry.target!r} cannot run here: {via}.",
                hint="Drop --strict to let auto take the next target, or see 'edgekit doctor'.",
            )
        notes.append(f"{entry.target}: {via}")
    if delegate is None:
        raise TargetError(f"no artifact in bundle {bundle.path} can run here: {'; '.join(notes)}.")
    # Every candidate failed with the user's delegate: the plain CPU is the fallback.
    return _fall_back(bundle, backend, candidates[-1], "auto", "; ".join(notes), threads)


def _fall_back(bundle, backend, wanted: ArtifactEntry, target: str, reason: str, threads: int):
    """Run the CPU artifact (plainly, no delegate) because ``wanted`` could not run as asked."""
    fallback = cpu_artifact(bundle)
    if fallback is None:
        if kind_of(wanted) in ("gpu", "cpu") and wanted.status == "ok":
            # A GPU artifact is a plain float model: the CPU interpreter runs it too.
            fallback = wanted
        else:
            raise TargetError(f"target {target!r} cannot run here ({reason}) and the bundle has no CPU artifact to fall back to.")
    content = bundle.artifact_bytes(fallback)
    path = bundle.artifact_path(fallback, verify=False)
    try:
        engine = InterpreterEngine(path, backend, threads=threads, accelerator="cpu", content=content)
    except EngineUnavailable as e:
        raise TargetError(f"target {target!r} cannot run here ({reason}), and the CPU fallback failed too: {e}.") from e
    message = f"{target} unavailable: {reason}; running {fallback.file} on the CPU instead"
    log.warning(message)
    return Plan(target, fallback, "cpu", f"CPU, {threads} threads", threads, fallback=message), engine
