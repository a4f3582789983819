"""The CPU guard before native libraries load, backend causes, native crash traces, ``python -m edgekit``.

The decision is driven with the feature sets real boards report: a
Raspberry Pi 4 (Cortex-A72, no crypto extensions on its BCM2711), a Jetson
Nano (Cortex-A57) and a Raspberry Pi 5 (Cortex-A76), as AT_HWCAP bits,
/proc/self/auxv bytes and /proc/cpuinfo text. No TensorFlow, no mocks of
LiteRT: where a library file is needed, the installed LiteRT's own GPU
accelerator is read, or a file carrying the guard's exact text is written.
"""
from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from edgekit.runtime._native import captured_stderr, crash_traces, native_reason
from edgekit.runtime.backends import explain_import_error, tflite_runtime_numpy_problem
from edgekit.runtime.cpu_features import (
    ARMV82_FEATURES,
    AT_HWCAP,
    LITERT_GPU_AARCH64_GUARD,
    CpuFeatures,
    auxv_hwcap,
    cpu_features,
    cpuinfo_features,
    guard_features,
    hwcap_features,
    hwcap_value,
    library_cpu_problem,
    litert_accelerator_libraries,
    litert_gpu_cpu_problem,
    missing_features,
    required_features,
)

ROOT = Path(__file__).resolve().parent.parent

# The "Features" lines the kernel prints on each board.
CORTEX_A72_PI4 = "fp asimd evtstrm crc32 cpuid"
CORTEX_A57_JETSON_NANO = "fp asimd evtstrm aes pmull sha1 sha2 crc32"
CORTEX_A76_PI5 = "fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp"

PI4_CPUINFO = """processor	: 0
BogoMIPS	: 108.00
Features	: fp asimd evtstrm crc32 cpuid
CPU implementer	: 0x41
CPU architecture: 8
CPU variant	: 0x0
CPU part	: 0xd08
CPU revision	: 3

processor	: 1
BogoMIPS	: 108.00
Features	: fp asimd evtstrm crc32 cpuid
CPU implementer	: 0x41
CPU architecture: 8
CPU variant	: 0x0
CPU part	: 0xd08
CPU revision	: 3

Revision	: c03114
Model		: Raspberry Pi 4 Model B Rev 1.4
"""

GUARD_TEXT = "FATAL ERROR: This binary was compiled with {} enabled, but this feature is not available on this processor (go/sigill-fail-fast)."


def _cpu(features: str, source: str = "getauxval(AT_HWCAP)") -> CpuFeatures:
    return CpuFeatures("aarch64", hwcap_features(hwcap_value(features.split())), source)


@pytest.fixture
def litert_gpu_aarch64(tmp_path) -> Path:
    """A file carrying the guard strings of ai-edge-litert 2.3.0's aarch64 GPU accelerator, in its order."""
    lib = tmp_path / "libLiteRtWebGpuAccelerator.so"
    body = b"\x7fELF" + b"\0".join(GUARD_TEXT.format(f).encode() for f in LITERT_GPU_AARCH64_GUARD) + b"\0"
    lib.write_bytes(body)
    return lib


# ------------------------------------------------------------- reading the CPU


@pytest.mark.parametrize("features", [CORTEX_A72_PI4, CORTEX_A57_JETSON_NANO, CORTEX_A76_PI5])
def test_hwcap_bits_round_trip_and_match_the_kernel_table(features):
    names = frozenset(features.split())
    assert hwcap_features(hwcap_value(names)) == names
    assert hwcap_value(["fp"]) == 1 and hwcap_value(["atomics"]) == 1 << 8 and hwcap_value(["asimddp"]) == 1 << 20


def test_auxv_bytes_give_at_hwcap():
    hwcap = hwcap_value(CORTEX_A72_PI4.split())
    # (AT_PAGESZ 4096) (AT_HWCAP ...) (AT_HWCAP2 0) (AT_NULL)
    raw = struct.pack("@8Q", 6, 4096, AT_HWCAP, hwcap, 26, 0, 0, 0)
    assert auxv_hwcap(raw) == hwcap
    assert hwcap_features(auxv_hwcap(raw)) == frozenset(CORTEX_A72_PI4.split())
    assert auxv_hwcap(struct.pack("@4Q", 6, 4096, 0, 0)) is None


def test_cpuinfo_text_gives_the_features_line():
    assert cpuinfo_features(PI4_CPUINFO) == frozenset(CORTEX_A72_PI4.split())
    assert "sse2" in cpuinfo_features("processor : 0\nflags\t\t: fpu vme sse sse2 avx\n")
    assert cpuinfo_features("no features here") == frozenset()


def test_this_machine_reports_its_features():
    cpu = cpu_features()
    assert cpu is not None
    if cpu.arch == "aarch64":
        assert cpu.source == "getauxval(AT_HWCAP)" and {"fp", "asimd"} <= cpu.features
    elif cpu.arch == "x86_64":
        assert cpu.source == "/proc/cpuinfo" and {"sse", "sse2"} <= cpu.features


# ------------------------------------------------------------- the decision


def test_guard_strings_name_the_features_a_library_checks(litert_gpu_aarch64):
    assert required_features(litert_gpu_aarch64) == LITERT_GPU_AARCH64_GUARD
    assert guard_features(b"nothing to see") == ()
    assert required_features("/no/such/lib.so") is None


def test_installed_litert_gpu_library_is_judged_by_its_own_guard():
    """On this machine's real LiteRT: the guard's strings are found and the verdict follows them."""
    libs = litert_accelerator_libraries("gpu")
    if not libs:
        pytest.skip("this ai-edge-litert ships no GPU accelerator library")
    required = required_features(libs[0])
    assert required, f"{libs[0]} has no fail-fast guard strings any more; re-check what it needs"
    cpu = cpu_features()
    missing = missing_features(required, cpu.features, cpu.arch)
    if cpu.arch == "aarch64" and cpu.source != "/proc/cpuinfo":
        missing = [m for m in missing if m in hwcap_features(2**32 - 1)]
    problem = litert_gpu_cpu_problem()
    assert (problem is None) == (not missing)
    if problem:
        assert all(m in problem for m in missing) and "loading it would abort the process" in problem


def test_pi4_cortex_a72_is_refused_with_the_missing_features(litert_gpu_aarch64):
    why = library_cpu_problem(litert_gpu_aarch64, _cpu(CORTEX_A72_PI4))
    assert why.startswith("libLiteRtWebGpuAccelerator.so needs CPU features this processor lacks: atomics (LSE), ")
    for feature in ("atomics", "fphp", "asimdhp", "asimdrdm", "lrcpc", "asimddp", "aes", "sha2"):
        assert feature in why
    assert "ARMv8.0" in why and "\n" not in why


def test_jetson_nano_cortex_a57_lacks_only_the_armv82_features(litert_gpu_aarch64):
    cpu = _cpu(CORTEX_A57_JETSON_NANO)
    assert set(missing_features(LITERT_GPU_AARCH64_GUARD, cpu.features)) == ARMV82_FEATURES
    why = library_cpu_problem(litert_gpu_aarch64, cpu)
    assert why and "aes" not in why and "asimddp" in why


def test_pi5_cortex_a76_loads_it(litert_gpu_aarch64):
    assert library_cpu_problem(litert_gpu_aarch64, _cpu(CORTEX_A76_PI5)) is None
    # The same answer from /proc/cpuinfo text as from HWCAP bits.
    cpu = CpuFeatures("aarch64", cpuinfo_features(PI4_CPUINFO.replace(CORTEX_A72_PI4, CORTEX_A76_PI5)), "/proc/cpuinfo")
    assert library_cpu_problem(litert_gpu_aarch64, cpu) is None


def test_unreadable_library_falls_back_to_the_known_requirements(tmp_path):
    lib = tmp_path / "gone.so"
    assert library_cpu_problem(lib, _cpu(CORTEX_A72_PI4)) is None  # nothing known, nothing assumed
    why = library_cpu_problem(lib, _cpu(CORTEX_A72_PI4), assumed=LITERT_GPU_AARCH64_GUARD)
    assert why and "atomics" in why
    assert library_cpu_problem(lib, _cpu(CORTEX_A76_PI5), assumed=LITERT_GPU_AARCH64_GUARD) is None


def test_features_hwcap_cannot_show_are_unknown_not_missing(tmp_path):
    lib = tmp_path / "libi8mm.so"
    lib.write_bytes(GUARD_TEXT.format("i8mm").encode())
    assert library_cpu_problem(lib, _cpu(CORTEX_A76_PI5)) is None  # i8mm lives in AT_HWCAP2
    from_cpuinfo = CpuFeatures("aarch64", frozenset(CORTEX_A76_PI5.split()), "/proc/cpuinfo")
    assert "i8mm" in library_cpu_problem(lib, from_cpuinfo)


def test_no_cpu_information_means_no_refusal(litert_gpu_aarch64, monkeypatch):
    assert library_cpu_problem(litert_gpu_aarch64, _cpu(CORTEX_A72_PI4)) is not None
    from edgekit.runtime import cpu_features as cf

    monkeypatch.setattr(cf, "cpu_features", lambda: None)
    assert cf.library_cpu_problem(litert_gpu_aarch64) is None


@pytest.mark.slow
def test_a_delegate_this_cpu_cannot_run_is_not_loaded_and_the_run_falls_back(tmp_path, tmp_path_factory):
    """The guard in the policy: the file is never dlopen'ed (it is not even a real library)."""
    import runtime_fixtures as rf
    from edgekit.errors import TargetError
    from edgekit.runtime import Predictor

    bundle = rf.digits_bundle(tmp_path_factory)
    cpu = cpu_features()
    absent = next(f for f in ("sve", "sme", "avx512_fp16", "amx_tile", "sha512") if f not in cpu.features)
    lib = tmp_path / "libfuture_delegate.so"
    lib.write_bytes(GUARD_TEXT.format(absent).encode())
    p = Predictor.from_bundle(bundle, target="gpu", delegate=str(lib))
    assert p.plan.accelerator == "cpu"
    assert f"delegate {lib} was not loaded: libfuture_delegate.so needs CPU features this processor lacks: {absent}" in p.plan.fallback
    with pytest.raises(TargetError, match="needs CPU features this processor lacks"):
        Predictor.from_bundle(bundle, target="gpu", delegate=str(lib), strict=True)


# --------------------------------------------------------------- backends


def test_tflite_runtime_with_numpy2_names_the_cause_and_the_fix():
    why = tflite_runtime_numpy_problem("2.14.0", "2.4.6")
    assert why == (
        'tflite-runtime 2.14.0 is built against numpy 1.x and this is numpy 2.4.6; '
        'install "numpy<2" or use ai-edge-litert (pip install "edgekit[runtime]")'
    )
    assert tflite_runtime_numpy_problem("2.14.0", "1.26.4") is None
    assert tflite_runtime_numpy_problem("2.16.1", "2.1.0") is None  # a later build, if one appears
    assert tflite_runtime_numpy_problem(None, "2.1.0") is None


def test_glibc_too_old_for_ai_edge_litert_names_an_older_release_or_the_os_upgrade():
    # The loader's message on Ubuntu 20.04 / Debian bullseye / JetPack 5 (glibc 2.31).
    err = ImportError(
        "/lib/aarch64-linux-gnu/libc.so.6: version `GLIBC_2.34' not found "
        "(required by /home/pi/venv/lib/python3.11/site-packages/ai_edge_litert/libpywrap_litert_common.so)"
    )
    why = explain_import_error("ai_edge_litert", err, glibc="2.31", version="2.3.0")
    assert why.startswith("ai-edge-litert 2.3.0 needs glibc 2.34 and this system has glibc 2.31: ")
    assert 'pip install "ai-edge-litert<2.1.1"' in why and "upgrade the OS" in why
    other = explain_import_error("ai_edge_litert", ModuleNotFoundError("No module named 'ai_edge_litert'"))
    assert other == "ModuleNotFoundError: No module named 'ai_edge_litert'"


def test_doctor_reports_libc_cpu_features_and_the_gpu_library_verdict():
    from edgekit.runtime.doctor import diagnose

    d = diagnose()
    assert d["libc"].startswith("glibc ") or d["libc"] == "unknown"
    cpu = d["accelerators"]["cpu"]
    assert cpu["features"] == sorted(cpu_features().features) and cpu["features_source"] == cpu_features().source
    assert d["accelerators"]["gpu"]["litert_accelerator_cpu_problem"] == litert_gpu_cpu_problem()
    assert isinstance(d["native_crashes"], list)


# ------------------------------------------------------ native crash traces


def test_a_clean_block_leaves_no_file_and_keeps_the_reason(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEKIT_TRACE_DIR", str(tmp_path))
    monkeypatch.delenv("EDGEKIT_DEBUG", raising=False)
    with captured_stderr("a probe") as cap:
        os.write(2, b"ERROR: something native\n")
    assert cap.text == "ERROR: something native\n" and cap.reason("x") == "something native"
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(RuntimeError):
        with captured_stderr("a failing probe"):
            raise RuntimeError("the load failed")
    assert list(tmp_path.iterdir()) == []  # a failed (but survived) call leaves nothing either


def test_a_crash_inside_the_block_leaves_a_trace_that_doctor_names(tmp_path):
    code = f"""
import os
from edgekit.runtime._native import captured_stderr
with captured_stderr("loading libLiteRtWebGpuAccelerator.so"):
    os.write(2, {GUARD_TEXT.format("lse").encode()!r} + b"\\n")
    os.abort()
"""
    env = dict(os.environ, EDGEKIT_TRACE_DIR=str(tmp_path), PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("EDGEKIT_DEBUG", None)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode != 0 and r.stderr == ""  # the console saw nothing: the reason is in the file
    (trace,) = crash_traces(tmp_path)
    assert trace.reason == "This binary was compiled with lse enabled, but this feature is not available on this processor"
    text = trace.path.read_text()
    assert "loading libLiteRtWebGpuAccelerator.so" in text.splitlines()[0]
    assert "Fatal Python error: Aborted" in text  # faulthandler's stack is there too
    r = subprocess.run(
        [sys.executable, "-m", "edgekit", "doctor"], capture_output=True, text=True, env=dict(env, COLUMNS="300"), timeout=120
    )
    assert r.returncode == 0 and f"died inside a native library: {trace.reason}" in r.stdout and str(trace.path) in r.stdout


def test_debug_keeps_every_capture_and_says_where_first(tmp_path, monkeypatch, capfd):
    monkeypatch.setenv("EDGEKIT_TRACE_DIR", str(tmp_path))
    monkeypatch.setenv("EDGEKIT_DEBUG", "1")
    with captured_stderr("a probe") as cap:
        os.write(2, b"INFO: chatter\n")
    assert cap.path is not None and cap.path.exists() and "INFO: chatter" in cap.path.read_text()
    assert f"edgekit: native output of a probe goes to {cap.path}" in capfd.readouterr().err
    assert crash_traces(tmp_path) == []  # kept, but it ended normally: not a crash


def test_native_reason_reads_the_fail_fast_line():
    assert native_reason(GUARD_TEXT.format("lse")) == (
        "This binary was compiled with lse enabled, but this feature is not available on this processor"
    )


# ----------------------------------------------------------- python -m edgekit


def test_python_dash_m_edgekit_is_the_cli():
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    r = subprocess.run([sys.executable, "-m", "edgekit", "--version"], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0 and r.stdout.startswith("edgekit ")
    r = subprocess.run([sys.executable, "-m", "edgekit", "targets", "--json"], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0 and json.loads(r.stdout)
    r = subprocess.run([sys.executable, "-m", "edgekit", "nosuchcommand"], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 2 and "Usage: edgekit" in r.stderr + r.stdout


# ------------------------------------------------------------ test markers


def test_build_side_tests_are_marked_automatically():
    import conftest

    assert conftest._module_needs_build(str(ROOT / "tests/test_compress_prune.py"))
    assert not conftest._module_needs_build(str(ROOT / "tests/test_runtime_stats.py"))
    assert not conftest._module_needs_build(__file__)

    # Sources as text (built so that this test's own source matches no rule).
    cli = "runner.invoke(app, [" + '"compress", "model.keras"])'
    assert conftest.source_needs_build(cli)
    assert conftest.source_needs_build("def f():\n    import " + "tensorflow\n")
    assert conftest.source_needs_build("def f():\n    from edgekit." + "compress.prune import x\n")
    assert not conftest.source_needs_build('runner.invoke(app, ["deploy", "bundle", "-s", "x"])')
    assert not conftest.source_needs_build("def f():\n    from edgekit.runtime import Predictor\n")
