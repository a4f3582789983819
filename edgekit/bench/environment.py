"""What a benchmark ran on: CPU, clocks, temperature, OS, Python, libraries.

A latency number without its environment cannot be compared, so every bench
result carries :func:`capture_environment`. Everything is read from the
standard library, ``/proc`` and ``/sys`` (psutil only when installed); a value
that cannot be read is ``None``, never a guess. Reading never raises.

To record one more fact, add a key in :func:`capture_environment` and to
``ENVIRONMENT_KEYS`` (the schema and tests follow that tuple).
"""
from __future__ import annotations

import glob
import os
import platform
import sys
from pathlib import Path
from typing import Any

# Keys every environment record has (values may be None where unreadable).
ENVIRONMENT_KEYS: tuple[str, ...] = (
    "cpu_model",
    "cpu_cores_logical",
    "cpu_cores_physical",
    "cpu_cores_usable",
    "cpu_freq_mhz",
    "governor",
    "temperature_c",
    "load_average",
    "memory_total_mb",
    "device_model",
    "os",
    "kernel",
    "machine",
    "python",
    "edgekit",
    "numpy",
    "opencv",
    "backend",
    "backend_version",
)


def _read(path: str | Path) -> str | None:
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace").strip().strip("\x00") or None
    except OSError:
        return None


def cpu_model() -> str | None:
    """The CPU's marketing name (x86 "model name"; ARM "Hardware"/"Model" or the core part)."""
    text = _read("/proc/cpuinfo") or ""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() not in fields:
            fields[key.strip()] = value.strip()
    for key in ("model name", "Model", "Hardware", "Processor", "cpu model"):
        if fields.get(key):
            return fields[key]
    if "CPU part" in fields:  # ARM without a name: the implementer/part ids are still useful
        return f"ARM implementer {fields.get('CPU implementer', '?')} part {fields['CPU part']}"
    return platform.processor() or None


def physical_cores() -> int | None:
    try:
        import psutil

        return psutil.cpu_count(logical=False)
    except Exception:  # noqa: BLE001 - psutil missing or unsupported platform
        pass
    text = _read("/proc/cpuinfo") or ""
    pairs = set()
    phys = core = None
    for line in text.splitlines() + [""]:
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "physical id":
            phys = value.strip()
        elif key == "core id":
            core = value.strip()
        elif not line.strip():
            if core is not None:
                pairs.add((phys, core))
            phys = core = None
    return len(pairs) or None


def usable_cores() -> int:
    """Cores this process may run on (CPU affinity, container limits)."""
    try:
        return max(len(os.sched_getaffinity(0)), 1)
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def governor() -> str | None:
    """The cpufreq governor of CPU 0 ("performance", "ondemand", ...)."""
    return _read("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor")


def cpu_freq_mhz() -> float | None:
    """CPU 0's current clock in MHz."""
    khz = _read("/sys/devices/system/cpu/cpu0/cpufreq/scaling_cur_freq")
    if khz and khz.isdigit():
        return round(int(khz) / 1000.0, 1)
    try:
        import psutil

        f = psutil.cpu_freq()
        return round(float(f.current), 1) if f and f.current else None
    except Exception:  # noqa: BLE001
        return None


def temperature_c() -> float | None:
    """The SoC/CPU temperature in °C: the CPU thermal zone if named, else the hottest zone."""
    readings: list[tuple[bool, float]] = []
    for zone in sorted(glob.glob("/sys/class/thermal/thermal_zone*")):
        raw = _read(os.path.join(zone, "temp"))
        if raw is None or not raw.lstrip("-").isdigit():
            continue
        kind = (_read(os.path.join(zone, "type")) or "").lower()
        value = int(raw) / 1000.0 if abs(int(raw)) > 200 else float(raw)  # millidegrees on Linux
        readings.append((any(k in kind for k in ("cpu", "soc", "x86_pkg", "k10temp")), value))
    if not readings:
        return None
    preferred = [v for is_cpu, v in readings if is_cpu]
    return round(max(preferred or [v for _, v in readings]), 1)


def device_model() -> str | None:
    """The board's name from the device tree ("Raspberry Pi 4 Model B Rev 1.4", Jetson, Coral)."""
    return _read("/proc/device-tree/model") or _read("/sys/firmware/devicetree/base/model")


def memory_total_mb() -> float | None:
    for line in (_read("/proc/meminfo") or "").splitlines():
        if line.startswith("MemTotal:"):
            return round(int(line.split()[1]) / 1024.0, 1)
    try:
        import psutil

        return round(psutil.virtual_memory().total / 2**20, 1)
    except Exception:  # noqa: BLE001
        return None


def _version(module: str) -> str | None:
    mod = sys.modules.get(module)
    if mod is None:
        try:
            import importlib

            mod = importlib.import_module(module)
        except Exception:  # noqa: BLE001 - not installed or broken: record that as None
            return None
    return str(getattr(mod, "__version__", None) or "") or None


def capture_environment(backend: Any | None = None) -> dict[str, Any]:
    """Everything about this machine and software that a latency depends on.

    Args:
        backend: the :class:`~edgekit.runtime.backends.LoadedBackend` in use.

    Returns:
        A dict with exactly :data:`ENVIRONMENT_KEYS`.

    Example::

        env = capture_environment()
        print(env["cpu_model"], env["governor"], env["temperature_c"])
    """
    from edgekit import __version__

    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        load = None
    env = {
        "cpu_model": cpu_model(),
        "cpu_cores_logical": os.cpu_count(),
        "cpu_cores_physical": physical_cores(),
        "cpu_cores_usable": usable_cores(),
        "cpu_freq_mhz": cpu_freq_mhz(),
        "governor": governor(),
        "temperature_c": temperature_c(),
        "load_average": load,
        "memory_total_mb": memory_total_mb(),
        "device_model": device_model(),
        "os": platform.platform(terse=True),
        "kernel": platform.release() or None,
        "machine": platform.machine() or None,
        "python": platform.python_version(),
        "edgekit": __version__,
        "numpy": _version("numpy"),
        # OpenCV only if the runtime already imported it: importing it here costs ~0.2 s.
        "opencv": str(getattr(sys.modules.get("cv2"), "__version__", "")) or None,
        "backend": getattr(backend, "name", None),
        "backend_version": getattr(backend, "version", None),
    }
    return {k: env[k] for k in ENVIRONMENT_KEYS}
