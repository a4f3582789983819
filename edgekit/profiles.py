"""Target and device profiles: one TOML file each, parsed into frozen dataclasses.

A *target* says how to build one artifact (quantization, I/O dtype, static
batch, accelerator, which compatibility analysis and adapter apply, numeric
tolerance). A *device* names the targets it can run, best first, and its
runtime settings (threads, delegate libraries). Both sides read this module,
so it imports nothing but the standard library.

The built-ins are the ``*.toml`` files in :func:`edgekit.resources.targets_dir`;
to add a target, add a file there (``kind = "target"``) and, only if it needs
new behaviour, one adapter in :mod:`edgekit.compile.adapters`. A user's own
file works anywhere a name does: pass its path instead of the name.

    from edgekit.profiles import get_target, get_device, list_targets
    for name in list_targets():
        print(name, get_target(name).quantization)
    print(get_device("coral-usb").targets)   # ('edgetpu', 'cpu')
"""
from __future__ import annotations

import functools
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Callable, Mapping, Sequence, Union

from edgekit.errors import ConfigError, TargetError

QUANTIZATIONS = ("int8", "fp16", "fp32")
IO_DTYPES = ("int8", "uint8", "float32")
ACCELERATORS = ("gpu", "edgetpu")  # None (absent) means the CPU
KINDS = ("target", "device")

# Built-ins in their fixed listing order; any other file in targets/ follows, by name.
BUILTIN_ORDER = (
    "cpu",
    "gpu",
    "edgetpu",
    "rpi4",
    "rpi5",
    "jetson-nano",
    "jetson-orin-nano",
    "coral-usb",
    "coral-devboard",
)

_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


@dataclass(frozen=True)
class TargetProfile:
    """How to build one artifact. Mostly data; see ``targets/cpu.toml``."""

    name: str
    description: str
    artifact: str  # file name inside the bundle, e.g. "model_cpu.tflite"
    # -- conversion
    quantization: str  # "int8" (weights + activations), "fp16" (weights), "fp32"
    io_dtype: str  # dtype of the artifact's input and output tensors
    batch: int  # static batch baked into the artifact (edgekit builds 1)
    float_fallback: bool  # may named layers stay float (accuracy budgets)?
    # -- what it runs on and how it is checked
    accelerator: str | None  # None = CPU, "gpu", "edgetpu"
    analysis: str  # compatibility report, a name from edgekit.compile.analysis
    adapter: str | None  # extra build step, a name from edgekit.compile.adapters
    tolerance: float  # max |tflite - keras| relative to the largest |keras| output
    check_samples: int  # samples for that numeric check
    source: str  # the file it was read from

    kind = "target"

    @property
    def variant(self) -> str:
        return self.quantization

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name": self.name,
            "description": self.description,
            "artifact": self.artifact,
            "quantization": self.quantization,
            "io_dtype": self.io_dtype,
            "batch": self.batch,
            "float_fallback": self.float_fallback,
            "accelerator": self.accelerator,
            "analysis": self.analysis,
            "adapter": self.adapter,
            "check": {"tolerance": self.tolerance, "samples": self.check_samples},
            "source": self.source,
        }


@dataclass(frozen=True)
class DeviceProfile:
    """A board: the targets it runs (best first) and its runtime settings."""

    name: str
    description: str
    targets: tuple[str, ...]  # target names in preference order
    threads: int | None  # CPU threads for the interpreter; None = all cores
    arch: str | None  # e.g. "aarch64"; None when the host varies (USB accelerators)
    delegates: Mapping[str, tuple[str, ...]]  # accelerator -> delegate libraries, tried in order
    delegate_options: Mapping[str, Mapping[str, str]]  # accelerator -> load_delegate options
    source: str

    kind = "device"

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name": self.name,
            "description": self.description,
            "targets": list(self.targets),
            "threads": self.threads,
            "arch": self.arch,
            "delegates": {k: list(v) for k, v in self.delegates.items()},
            "delegate_options": {k: dict(v) for k, v in self.delegate_options.items()},
            "source": self.source,
        }


Profile = Union[TargetProfile, DeviceProfile]


# ----------------------------------------------------------------- parsing


class _Reader:
    """Strict access to one TOML table: every key read once, leftovers are errors."""

    def __init__(self, data: dict[str, Any], file: str, prefix: str = ""):
        self.data = dict(data)
        self.file = file
        self.prefix = prefix

    def _where(self, key: str) -> str:
        return f"{self.file}: key '{self.prefix}{key}'"

    def get(self, key: str, kind: type | tuple[type, ...], *, required: bool = True, default: Any = None) -> Any:
        if key not in self.data:
            if required:
                raise ConfigError(f"{self.file}: missing required key '{self.prefix}{key}'.")
            return default
        value = self.data.pop(key)
        # bool is an int in Python; a TOML 'true' where a number belongs is a mistake.
        if isinstance(value, bool) and bool not in _as_tuple(kind):
            raise ConfigError(f"{self._where(key)} must be {_type_name(kind)}, got boolean {value!r}.")
        if not isinstance(value, kind):
            raise ConfigError(f"{self._where(key)} must be {_type_name(kind)}, got {_toml_type(value)} {value!r}.")
        return value

    def choice(self, key: str, allowed: Sequence[str], *, required: bool = True) -> str | None:
        value = self.get(key, str, required=required)
        if value is not None and value not in allowed:
            raise ConfigError(f"{self._where(key)} is {value!r}; expected one of: {', '.join(allowed)}.")
        return value

    def table(self, key: str) -> "_Reader":
        value = self.get(key, dict, required=False, default={})
        return _Reader(value, self.file, f"{self.prefix}{key}.")

    def finish(self, what: str, known: Sequence[str]) -> None:
        if self.data:
            extra = ", ".join(f"'{self.prefix}{k}'" for k in sorted(self.data))
            raise ConfigError(
                f"{self.file}: unknown key {extra} in a {what}; expected keys: {', '.join(known)}."
            )


def _as_tuple(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


def _type_name(kind: type | tuple[type, ...]) -> str:
    names = {str: "a string", int: "an integer", float: "a number", bool: "true or false", list: "a list", dict: "a table"}
    return " or ".join(names.get(k, k.__name__) for k in _as_tuple(kind))


def _toml_type(value: Any) -> str:
    return {str: "string", int: "integer", float: "float", bool: "boolean", list: "array", dict: "table"}.get(
        type(value), type(value).__name__
    )


def _check_name(name: str, file: str) -> None:
    if not _NAME.match(name):
        raise ConfigError(
            f"{file}: key 'name' is {name!r}; expected lower-case letters, digits, '-' or '_' (e.g. 'my-board')."
        )


def _parse_target(r: _Reader) -> TargetProfile:
    known = ("kind", "name", "description", "artifact", "quantization", "io_dtype", "batch", "accelerator",
             "analysis", "adapter", "float_fallback", "check.tolerance", "check.samples")
    name = r.get("name", str)
    _check_name(name, r.file)
    description = r.get("description", str)
    artifact = r.get("artifact", str)
    if not artifact.endswith(".tflite") or "/" in artifact or "\\" in artifact or artifact.startswith("."):
        raise ConfigError(
            f"{r.file}: key 'artifact' is {artifact!r}; expected a plain file name ending in .tflite (e.g. 'model_{name}.tflite')."
        )
    quantization = r.choice("quantization", QUANTIZATIONS)
    io_dtype = r.choice("io_dtype", IO_DTYPES)
    batch = r.get("batch", int)
    if batch != 1:
        # run_batch and every accelerator here assume batch 1; a bigger static batch is not built.
        raise ConfigError(f"{r.file}: key 'batch' is {batch}; edgekit builds batch-1 artifacts only, set batch = 1.")
    accelerator = r.choice("accelerator", ACCELERATORS, required=False)
    analysis = r.get("analysis", str)
    adapter = r.get("adapter", str, required=False)
    float_fallback = r.get("float_fallback", bool, required=False, default=False)
    check = r.table("check")
    tolerance = float(check.get("tolerance", (int, float)))
    samples = check.get("samples", int, required=False, default=32)
    check.finish("target profile", known)
    r.finish("target profile", known)
    if tolerance <= 0:
        raise ConfigError(f"{r.file}: key 'check.tolerance' is {tolerance}; expected a number > 0.")
    if samples < 1:
        raise ConfigError(f"{r.file}: key 'check.samples' is {samples}; expected an integer >= 1.")
    if quantization in ("fp16", "fp32") and io_dtype != "float32":
        raise ConfigError(
            f"{r.file}: key 'io_dtype' is {io_dtype!r} but quantization is {quantization!r}; "
            "integer input/output needs quantization = \"int8\", else set io_dtype = \"float32\"."
        )
    if accelerator == "edgetpu" and (quantization != "int8" or io_dtype == "float32" or float_fallback):
        # The Edge TPU executes only 8-bit integer ops; a float tensor ends its part of the graph.
        raise ConfigError(
            f"{r.file}: an Edge TPU target needs quantization = \"int8\", io_dtype \"uint8\" or \"int8\" "
            "and float_fallback = false."
        )
    return TargetProfile(
        name=name,
        description=description,
        artifact=artifact,
        quantization=quantization,
        io_dtype=io_dtype,
        batch=batch,
        float_fallback=float_fallback,
        accelerator=accelerator,
        analysis=analysis,
        adapter=adapter,
        tolerance=tolerance,
        check_samples=samples,
        source=r.file,
    )


def _parse_device(r: _Reader) -> DeviceProfile:
    known = ("kind", "name", "description", "arch", "targets", "threads", "delegates.<accelerator>",
             "delegate_options.<accelerator>.<option>")
    name = r.get("name", str)
    _check_name(name, r.file)
    description = r.get("description", str)
    arch = r.get("arch", str, required=False)
    targets = r.get("targets", list)
    if not targets or not all(isinstance(t, str) for t in targets):
        raise ConfigError(f"{r.file}: key 'targets' must be a non-empty list of target names, got {targets!r}.")
    if len(set(targets)) != len(targets):
        raise ConfigError(f"{r.file}: key 'targets' lists a target twice: {targets!r}.")
    threads = r.get("threads", int, required=False)
    if threads is not None and threads < 1:
        raise ConfigError(f"{r.file}: key 'threads' is {threads}; expected an integer >= 1 (or leave it out for all cores).")
    delegates_r = r.table("delegates")
    delegates: dict[str, tuple[str, ...]] = {}
    for acc in list(delegates_r.data):
        if acc not in ACCELERATORS:
            raise ConfigError(f"{r.file}: key 'delegates.{acc}' names no accelerator; expected one of: {', '.join(ACCELERATORS)}.")
        libs = delegates_r.get(acc, list)
        if not libs or not all(isinstance(x, str) and x for x in libs):
            raise ConfigError(f"{r.file}: key 'delegates.{acc}' must be a non-empty list of library names, got {libs!r}.")
        delegates[acc] = tuple(libs)
    options_r = r.table("delegate_options")
    options: dict[str, Mapping[str, str]] = {}
    for acc in list(options_r.data):
        if acc not in ACCELERATORS:
            raise ConfigError(
                f"{r.file}: key 'delegate_options.{acc}' names no accelerator; expected one of: {', '.join(ACCELERATORS)}."
            )
        table = options_r.table(acc)
        opts = {k: table.get(k, str) for k in list(table.data)}
        options[acc] = MappingProxyType(opts)
    r.finish("device profile", known)
    return DeviceProfile(
        name=name,
        description=description,
        targets=tuple(targets),
        threads=threads,
        arch=arch,
        delegates=MappingProxyType(delegates),
        delegate_options=MappingProxyType(options),
        source=r.file,
    )


_PARSERS: dict[str, Callable[[_Reader], Profile]] = {"target": _parse_target, "device": _parse_device}


def load_profile(path: str | Path) -> Profile:
    """Read one target or device profile file (a built-in or your own).

    Raises:
        ConfigError: unreadable TOML, an unknown key, a wrong type or value (names the file and key).
    """
    p = Path(path)
    file = str(p)
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise ConfigError(f"profile file {file} does not exist.", hint="Check the path, or pass a built-in name.") from e
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read profile file {file}: {e}.") from e
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{file} is not valid TOML: {e}.") from e
    r = _Reader(data, file)
    kind = r.choice("kind", KINDS)
    return _PARSERS[kind](r)


# ---------------------------------------------------------------- registry


@dataclass(frozen=True)
class _Registry:
    targets: Mapping[str, TargetProfile]
    devices: Mapping[str, DeviceProfile]


def _ordered(paths: list[Path]) -> list[Path]:
    rank = {name: i for i, name in enumerate(BUILTIN_ORDER)}
    return sorted(paths, key=lambda p: (rank.get(p.stem, len(rank)), p.stem))


@functools.lru_cache(maxsize=None)
def _registry() -> _Registry:
    from edgekit.resources import targets_dir

    folder = targets_dir()
    targets: dict[str, TargetProfile] = {}
    devices: dict[str, DeviceProfile] = {}
    for path in _ordered(list(folder.glob("*.toml"))):
        prof = load_profile(path)
        if prof.name != path.stem:
            raise ConfigError(f"{path}: key 'name' is {prof.name!r} but the file is {path.name}; they must match.")
        if prof.name in targets or prof.name in devices:
            raise ConfigError(f"{path}: profile name {prof.name!r} is already registered.")
        (targets if isinstance(prof, TargetProfile) else devices)[prof.name] = prof
    missing = [n for n in BUILTIN_ORDER if n not in targets and n not in devices]
    if missing:
        raise ConfigError(f"built-in profile(s) {', '.join(missing)} missing from {folder}; reinstall edgekit.")
    _check_artifact_names(list(targets.values()))
    for dev in devices.values():
        _check_device(dev, targets)
    return _Registry(MappingProxyType(targets), MappingProxyType(devices))


def _check_artifact_names(targets: Sequence[TargetProfile]) -> None:
    seen: dict[str, str] = {}
    for t in targets:
        if t.artifact in seen:
            raise ConfigError(
                f"{t.source}: key 'artifact' {t.artifact!r} is also used by target {seen[t.artifact]!r}; "
                "two targets cannot share a file in one bundle."
            )
        seen[t.artifact] = t.name


def _check_device(dev: DeviceProfile, targets: Mapping[str, TargetProfile]) -> None:
    for name in dev.targets:
        if name not in targets:
            raise TargetError(
                f"{dev.source}: key 'targets' names unknown target {name!r}; valid targets: {', '.join(targets)}."
            )
        acc = targets[name].accelerator
        if acc is not None and acc not in dev.delegates:
            raise ConfigError(
                f"{dev.source}: target {name!r} needs the {acc} accelerator but there is no 'delegates.{acc}' "
                "list of delegate libraries."
            )


def list_targets() -> list[str]:
    """Names of the built-in targets, in their fixed order."""
    return list(_registry().targets)


def list_devices() -> list[str]:
    """Names of the built-in devices, in their fixed order."""
    return list(_registry().devices)


def get_target(name: str) -> TargetProfile:
    """A built-in target by exact name.

    Raises:
        TargetError: unknown name (lists the valid ones).
    """
    reg = _registry()
    if name in reg.targets:
        return reg.targets[name]
    extra = " (that is a device; pass it as the device)" if name in reg.devices else ""
    raise TargetError(
        f"unknown target {name!r}{extra}; valid targets: {', '.join(reg.targets)}.",
        hint="Or pass the path of your own target profile (.toml).",
    )


def get_device(name: str) -> DeviceProfile:
    """A built-in device by exact name.

    Raises:
        TargetError: unknown name (lists the valid ones).
    """
    reg = _registry()
    if name in reg.devices:
        return reg.devices[name]
    extra = " (that is a target, not a device)" if name in reg.targets else ""
    raise TargetError(
        f"unknown device {name!r}{extra}; valid devices: {', '.join(reg.devices)}.",
        hint="Or pass the path of your own device profile (.toml).",
    )


def _is_path(ref: str) -> bool:
    return ref.endswith(".toml") or "/" in ref or "\\" in ref


def resolve_target(ref: str | Path | TargetProfile) -> TargetProfile:
    """A target from a profile, a built-in name, or the path of a ``.toml`` file."""
    if isinstance(ref, TargetProfile):
        return ref
    if isinstance(ref, Path) or _is_path(str(ref)):
        prof = load_profile(ref)
        if not isinstance(prof, TargetProfile):
            raise ConfigError(f"{ref} is a device profile (kind = \"device\"); a target profile was expected here.")
        return prof
    return get_target(str(ref))


def resolve_device(ref: str | Path | DeviceProfile) -> DeviceProfile:
    """A device from a profile, a built-in name, or the path of a ``.toml`` file."""
    if isinstance(ref, DeviceProfile):
        return ref
    if isinstance(ref, Path) or _is_path(str(ref)):
        prof = load_profile(ref)
        if not isinstance(prof, DeviceProfile):
            raise ConfigError(f"{ref} is a target profile (kind = \"target\"); a device profile was expected here.")
        return prof
    return get_device(str(ref))


def resolve_targets(
    targets: Sequence[str | Path | TargetProfile] | None = None,
    device: str | Path | DeviceProfile | None = None,
) -> tuple[TargetProfile, ...]:
    """The targets to build: the ones named, else the device's (in its order).

    With both, every named target must be one the device runs.

    Raises:
        TargetError: an unknown name, or a target the device does not run.
        ConfigError: an empty or duplicated list, or a bad profile file.
    """
    dev = resolve_device(device) if device is not None else None
    if isinstance(targets, (str, Path, TargetProfile)):
        targets = [targets]  # one name, path or profile
    if targets is None:
        if dev is None:
            raise ConfigError("no targets given; name at least one target (e.g. 'cpu') or a device.")
        refs: Sequence[str | Path | TargetProfile] = dev.targets
    else:
        refs = list(targets)
        if not refs:
            raise ConfigError(f"the target list is empty; valid targets: {', '.join(list_targets())}.")
    profiles = tuple(resolve_target(r) for r in refs)
    names = [p.name for p in profiles]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ConfigError(f"target(s) {', '.join(dupes)} listed more than once; list each target once.")
    _check_artifact_names(profiles)
    if dev is not None and targets is not None:
        foreign = [n for n in names if n not in dev.targets]
        if foreign:
            raise TargetError(
                f"device {dev.name!r} runs targets {', '.join(dev.targets)}; {', '.join(foreign)} is not among them.",
                hint="Drop the device or those targets.",
            )
    if dev is not None:
        _check_device(dev, dict(_registry().targets) | {p.name: p for p in profiles})
    return profiles
