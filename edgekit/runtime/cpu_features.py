"""Will a native library abort on this CPU? Checked before it is loaded.

Google-built native libraries (LiteRT's GPU accelerator
``libLiteRtWebGpuAccelerator.so`` among them) carry a fail-fast guard: when
loaded on a CPU without an instruction set extension they were compiled
for, they print "This binary was compiled with lse enabled, but this feature
is not available on this processor" and kill the process (SIGILL, exit 132).
Python cannot catch that. ai-edge-litert 2.1.6-2.3.0's aarch64 GPU
accelerator is built for ARMv8.2 (LSE atomics, fp16, RDM, RCpc, dot product,
plus aes/crc/sha2), so it kills the process on the ARMv8.0 cores of a
Raspberry Pi 4, Pi 3, Zero 2 W or Jetson Nano.

The guard's own strings name the features it checks, so any library can be
checked the same way: :func:`required_features` reads them from the file,
:func:`cpu_features` reads what this CPU has (``getauxval(AT_HWCAP)`` on
aarch64, else ``/proc/self/auxv``, else ``/proc/cpuinfo``), and
:func:`missing_features` is the pure decision in between.

To teach it a new feature name, add a row to ``_AARCH64_NAMES`` or
``_X86_NAMES`` (the compiler's name -> the kernel's names for it).
"""
from __future__ import annotations

import functools
import os
import platform
import re
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

# arm64 AT_HWCAP bits, from the kernel's arch/arm64/include/uapi/asm/hwcap.h;
# the names are the ones /proc/cpuinfo prints on its "Features" line.
HWCAP_BITS: dict[str, int] = {
    "fp": 0, "asimd": 1, "evtstrm": 2, "aes": 3, "pmull": 4, "sha1": 5, "sha2": 6, "crc32": 7,
    "atomics": 8, "fphp": 9, "asimdhp": 10, "cpuid": 11, "asimdrdm": 12, "jscvt": 13, "fcma": 14,
    "lrcpc": 15, "dcpop": 16, "sha3": 17, "sm3": 18, "sm4": 19, "asimddp": 20, "sha512": 21,
    "sve": 22, "asimdfhm": 23, "dit": 24, "uscat": 25, "ilrcpc": 26, "flagm": 27, "ssbs": 28,
    "sb": 29, "paca": 30, "pacg": 31,
}
AT_HWCAP = 16

# What the guard in ai-edge-litert 2.3.0's aarch64 libLiteRtWebGpuAccelerator.so
# checks (compiler names, file order): ARMv8.2's LSE, fp16, RDM, RCpc and dot
# product, and the crypto/CRC extensions (a real Pi 4's BCM2711 has no aes/sha2).
# Assumed when the library file cannot be read.
LITERT_GPU_AARCH64_GUARD: tuple[str, ...] = ("aes", "lse", "crc", "dotprod", "fp16", "rdm", "rcpc", "sha2")
ARMV82_FEATURES: frozenset[str] = frozenset({"atomics", "fphp", "asimdhp", "asimdrdm", "lrcpc", "asimddp"})

# compiler feature name (as the guard prints it) -> kernel feature names that must all be present
_AARCH64_NAMES: dict[str, tuple[str, ...]] = {
    "lse": ("atomics",),
    "fp16": ("fphp", "asimdhp"),
    "rdm": ("asimdrdm",),
    "rcpc": ("lrcpc",),
    "dotprod": ("asimddp",),
    "aes": ("aes",),
    "crc": ("crc32",),
    "sha2": ("sha2",),
    "sha3": ("sha3", "sha512"),
    "sm4": ("sm3", "sm4"),
    "sve": ("sve",),
    "fp16fml": ("asimdfhm",),
    "jsconv": ("jscvt",),
    "complxnum": ("fcma",),
    "neon": ("asimd",),
    "fp-armv8": ("fp",),
}
_X86_NAMES: dict[str, tuple[str, ...]] = {
    "sse3": ("pni",),
    "sse4.1": ("sse4_1",),
    "sse4.2": ("sse4_2",),
    "pclmul": ("pclmulqdq",),
    "cmpxchg16b": ("cx16",),
    "avx512f": ("avx512f",),
    "fma": ("fma",),
}

# Names people know these by, where the kernel's name hides it.
_DESCRIBE = {"atomics": "LSE"}

_GUARD = re.compile(rb"This binary was compiled with ([A-Za-z0-9_.+-]+) enabled, but this feature is not available")


@dataclass(frozen=True)
class CpuFeatures:
    """What this CPU can do, as the kernel names it, and where that was read."""

    arch: str  # "aarch64" | "x86_64" | ...
    features: frozenset[str]
    source: str  # "getauxval(AT_HWCAP)" | "/proc/self/auxv" | "/proc/cpuinfo"


# ------------------------------------------------------------- pure parsing


def hwcap_features(hwcap: int) -> frozenset[str]:
    """The aarch64 feature names set in an ``AT_HWCAP`` value."""
    return frozenset(name for name, bit in HWCAP_BITS.items() if hwcap >> bit & 1)


def hwcap_value(features: Iterable[str]) -> int:
    """The ``AT_HWCAP`` value with these aarch64 features set (the inverse of :func:`hwcap_features`)."""
    return sum(1 << HWCAP_BITS[f] for f in set(features) if f in HWCAP_BITS)


def auxv_hwcap(data: bytes, word: int = 8) -> int | None:
    """``AT_HWCAP`` from the raw bytes of ``/proc/self/auxv`` (native-endian (type, value) words)."""
    fmt = "@QQ" if word == 8 else "@II"
    size = struct.calcsize(fmt)
    for off in range(0, len(data) - size + 1, size):
        key, value = struct.unpack_from(fmt, data, off)
        if key == AT_HWCAP:
            return value
        if key == 0:  # AT_NULL ends the vector
            break
    return None


def cpuinfo_features(text: str) -> frozenset[str]:
    """The features in ``/proc/cpuinfo`` text: the first ``Features`` (arm) or ``flags`` (x86) line."""
    m = re.search(r"^(?:Features|flags)\s*:\s*(.*)$", text, re.M)
    return frozenset(m.group(1).split()) if m else frozenset()


def guard_features(data: bytes) -> tuple[str, ...]:
    """The compiler feature names a library's fail-fast guard checks, in file order."""
    return tuple(dict.fromkeys(m.group(1).decode("ascii", "replace") for m in _GUARD.finditer(data)))


def kernel_names(feature: str, arch: str) -> tuple[str, ...]:
    """The kernel feature names a compiler feature needs (itself when there is no mapping)."""
    table = _AARCH64_NAMES if arch == "aarch64" else _X86_NAMES if arch in ("x86_64", "i686") else {}
    return table.get(feature, (feature,))


def missing_features(required: Iterable[str], have: Iterable[str], arch: str = "aarch64") -> list[str]:
    """Which of ``required`` (compiler names, e.g. ``lse``) this CPU lacks, as kernel names.

    >>> missing_features(["lse", "crc"], {"fp", "asimd", "crc32"})
    ['atomics']
    """
    have = set(have)
    out: list[str] = []
    for feature in required:
        for name in kernel_names(feature, arch):
            if name not in have and name not in out:
                out.append(name)
    return out


def describe(missing: Iterable[str]) -> str:
    """``atomics (LSE), asimddp``: the kernel's names, ARMv8.2 ones first."""
    missing = sorted(missing, key=lambda m: m not in ARMV82_FEATURES)
    return ", ".join(f"{m} ({_DESCRIBE[m]})" if m in _DESCRIBE else m for m in missing)


# ---------------------------------------------------------- this machine


def machine_arch() -> str:
    m = platform.machine().lower()
    return {"arm64": "aarch64", "amd64": "x86_64"}.get(m, m)


def _getauxval(key: int) -> int | None:
    import ctypes

    try:
        # The running process's own symbols include libc's: no library search (ctypes.util
        # would spawn ldconfig/gcc, which is slow on a Pi and absent in some images).
        fn = ctypes.CDLL(None, use_errno=True).getauxval
    except (OSError, AttributeError):  # a libc without getauxval, not Linux
        return None
    fn.restype = ctypes.c_ulong
    fn.argtypes = [ctypes.c_ulong]
    value = fn(key)
    return value if value or ctypes.get_errno() == 0 else None


@functools.lru_cache(maxsize=1)
def cpu_features() -> CpuFeatures | None:
    """This CPU's features, or None where they cannot be read (not Linux, no /proc)."""
    arch = machine_arch()
    if arch == "aarch64":
        hwcap = _getauxval(AT_HWCAP)
        if hwcap:
            return CpuFeatures(arch, hwcap_features(hwcap), "getauxval(AT_HWCAP)")
        try:
            hwcap = auxv_hwcap(Path("/proc/self/auxv").read_bytes())
        except OSError:
            hwcap = None
        if hwcap:
            return CpuFeatures(arch, hwcap_features(hwcap), "/proc/self/auxv")
    try:
        feats = cpuinfo_features(Path("/proc/cpuinfo").read_text(errors="replace"))
    except OSError:
        return None
    return CpuFeatures(arch, feats, "/proc/cpuinfo") if feats else None


@functools.lru_cache(maxsize=32)
def _library_guard(path: str, mtime_ns: int, size: int) -> tuple[str, ...]:
    import mmap

    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        return guard_features(mm)  # type: ignore[arg-type] - mmap supports the buffer protocol


def required_features(library: str | os.PathLike[str]) -> tuple[str, ...] | None:
    """The compiler features ``library``'s fail-fast guard checks; None if it cannot be read."""
    try:
        st = os.stat(library)
        if st.st_size == 0:
            return ()
        return _library_guard(os.fspath(library), st.st_mtime_ns, st.st_size)
    except (OSError, ValueError):
        return None


def library_cpu_problem(
    library: str | os.PathLike[str],
    features: CpuFeatures | None = None,
    *,
    assumed: Iterable[str] = (),
) -> str | None:
    """Why loading ``library`` would kill this process, or None when it is safe (or cannot be told).

    Args:
        library: the shared library about to be loaded.
        features: the CPU to check against (default: this one).
        assumed: compiler feature names to require when the file cannot be
            read (e.g. LiteRT's GPU accelerator's known ARMv8.2 set).
    """
    cpu = features if features is not None else cpu_features()
    if cpu is None:
        return None
    required = required_features(library)
    if required is None:
        required = tuple(assumed)
    missing = missing_features(required, cpu.features, cpu.arch)
    if cpu.arch == "aarch64" and cpu.source != "/proc/cpuinfo":
        # AT_HWCAP holds only the first 32 features; one it cannot show (an
        # AT_HWCAP2 one such as i8mm) is unknown, not missing.
        missing = [m for m in missing if m in HWCAP_BITS]
    if not missing:
        return None
    name = os.path.basename(os.fspath(library))
    why = f"{name} needs CPU features this processor lacks: {describe(missing)}"
    if cpu.arch == "aarch64" and set(missing) & ARMV82_FEATURES:
        why += " (built for ARMv8.2 as in a Pi 5; this core is ARMv8.0 as in a Pi 4, Pi 3 or Jetson Nano)"
    return why + "; loading it would abort the process"


# ------------------------------------------------------- LiteRT's own libraries


def litert_accelerator_libraries(kind: str = "gpu") -> list[str]:
    """The paths of ai-edge-litert's own accelerator libraries for ``kind`` (e.g. libLiteRtWebGpuAccelerator.so).

    Found without importing LiteRT, so doctor can report them and the guard
    can check them before anything is loaded.
    """
    import glob
    import importlib.util

    try:
        spec = importlib.util.find_spec("ai_edge_litert")
    except (ImportError, ValueError):
        return []
    if spec is None or not spec.submodule_search_locations:
        return []
    pattern = {"gpu": "libLiteRt*Gpu*Accelerator*.so*", "npu": "libLiteRt*Npu*Accelerator*.so*"}.get(kind, f"libLiteRt*{kind}*.so*")
    return sorted(p for root in spec.submodule_search_locations for p in glob.glob(os.path.join(root, pattern)))


def litert_gpu_cpu_problem(features: CpuFeatures | None = None) -> str | None:
    """Why LiteRT's GPU accelerator library would abort this process, or None.

    LiteRT loads it whenever a ``CompiledModel``'s environment is created
    (a CPU-only one too: "Attempting to load GPU accelerator"), so every
    ``CompiledModel`` must be checked first; the classic ``Interpreter`` does
    not load it.
    """
    cpu = features if features is not None else cpu_features()
    assumed = LITERT_GPU_AARCH64_GUARD if cpu is not None and cpu.arch == "aarch64" else ()
    for lib in litert_accelerator_libraries("gpu"):
        why = library_cpu_problem(lib, cpu, assumed=assumed)
        if why:
            return why
    return None
