"""Backend order, accelerator detection and the fallback policy, on real artifacts.

The build machine has no GPU adapter and no Edge TPU runtime, so the
accelerated paths are exercised the way a device without them meets them:
LiteRT really tries its GPU accelerator and fails, the loader really looks for
libedgetpu.so.1. Where a test would pass differently on a machine that has
the hardware, another backend, or a CPU that LiteRT's GPU library cannot run
on (a Pi 4), it checks which case it is in and asserts that case.
"""
from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path

import numpy as np
import pytest

import runtime_fixtures as rf
from edgekit.errors import IntegrityError, MissingExtraError, TargetError
from edgekit.preprocess import read_image
from edgekit.runtime import Predictor, find_library, select_backend
from edgekit.runtime.accelerators import default_threads, device_prefs
from edgekit.runtime.cpu_features import litert_gpu_cpu_problem
from edgekit.runtime.engines import CompiledModelEngine, EngineUnavailable, InterpreterEngine

pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def bundle(tmp_path_factory) -> Path:
    return rf.digits_bundle(tmp_path_factory)


# Why the GPU artifact does not run here, as the fallback reason starts: no
# adapter (LiteRT tried), or a CPU its GPU library would abort on (not tried).
GPU_UNAVAILABLE = r"LiteRT GPU accelerator (unavailable|not loaded)"


def _gpu_works(bundle: Path) -> bool:
    if litert_gpu_cpu_problem():
        return False  # trying would kill the test process
    try:
        CompiledModelEngine(bundle / "model_gpu.tflite", select_backend(), accelerator="gpu").close()
        return True
    except EngineUnavailable:
        return False


# ------------------------------------------------------------------ backends


def test_backend_order_prefers_litert_and_can_be_forced(monkeypatch):
    import ai_edge_litert

    b = select_backend()
    assert b.name == "ai_edge_litert" and b.skipped == {} and b.version == ai_edge_litert.__version__
    monkeypatch.setenv("EDGEKIT_BACKEND", "ai_edge_litert")
    assert select_backend().name == "ai_edge_litert"
    monkeypatch.setenv("EDGEKIT_BACKEND", "tensorflow_lite_typo")
    with pytest.raises(MissingExtraError, match="expected one of ai_edge_litert, tflite_runtime, tensorflow"):
        select_backend()


def test_backend_order_falls_through_to_the_next_backend_and_says_why():
    code = """
import json
from edgekit.runtime.backends import select_backend
b = select_backend()
print(json.dumps({"name": b.name, "skipped": b.skipped}))
"""
    r = rf.run_python(code, blocked=("ai_edge_litert",))
    # With ai_edge_litert blocked, the next backend that works here is used:
    # tflite_runtime where it is installed and usable (a Pi with it), else
    # TensorFlow's interpreter (the build machine), else none at all (a Pi
    # with only ai-edge-litert).
    from edgekit.runtime.backends import known_incompatibility

    def importable(name):
        import importlib.util

        return importlib.util.find_spec(name) is not None

    if importable("tflite_runtime") and not known_incompatibility("tflite_runtime"):
        expected, skipped = "tflite_runtime", ["ai_edge_litert"]
    elif importable("tensorflow"):
        expected, skipped = "tensorflow", ["ai_edge_litert", "tflite_runtime"]
    else:
        expected, skipped = None, None
    if expected is None:
        assert r.returncode == 1 and "no TFLite interpreter backend could be imported" in r.stderr, r.stderr[-2000:]
        return
    assert r.returncode == 0, r.stderr[-2000:]
    got = json.loads(r.stdout.strip().splitlines()[-1])
    assert got["name"] == expected
    assert list(got["skipped"]) == skipped
    assert "blocked by the test" in got["skipped"]["ai_edge_litert"]


def test_no_backend_at_all_names_the_install_command():
    code = """
from edgekit.runtime.backends import select_backend
from edgekit.errors import MissingExtraError
try:
    select_backend()
except MissingExtraError as e:
    print("ERR", e)
"""
    r = rf.run_python(code, blocked=("ai_edge_litert", "tflite_runtime", "tensorflow"))
    assert r.returncode == 0, r.stderr[-2000:]
    assert "ERR no TFLite interpreter backend could be imported" in r.stdout
    assert 'pip install "edgekit[runtime]"' in r.stdout


# ----------------------------------------------------------------- libraries


def test_find_library_uses_the_loader_paths():
    libm = find_library("libm.so.6")
    assert libm and Path(libm).is_file()
    assert find_library(libm) == libm  # a path is taken as is
    assert find_library("/no/such/libx.so") is None
    tpu = find_library("libedgetpu.so.1")  # absent on the build machine, present on a Coral board
    assert tpu is None or Path(tpu).is_file()


def test_threads_default_to_all_usable_cores(bundle):
    p = Predictor.from_bundle(bundle, target="cpu")
    assert p.plan.threads == default_threads() == len(os.sched_getaffinity(0))
    assert Predictor.from_bundle(bundle, target="cpu", threads=1).plan.threads == 1


# ------------------------------------------------------------------- engines


def test_litert_compiled_model_engine_matches_the_interpreter(bundle):
    """The CompiledModel path (used for the GPU) run on LiteRT's CPU accelerator, against the Interpreter."""
    backend = select_backend()
    if litert_gpu_cpu_problem():
        # Any CompiledModel loads LiteRT's GPU library; on this CPU that would abort, so the engine refuses.
        with pytest.raises(EngineUnavailable, match="needs CPU features this processor lacks"):
            CompiledModelEngine(bundle / "model_cpu.tflite", backend, accelerator="cpu")
        return
    for name in ("model_cpu.tflite", "model_gpu.tflite"):
        cm = CompiledModelEngine(bundle / name, backend, accelerator="cpu")
        it = InterpreterEngine(bundle / name, backend)
        assert cm.input == it.input and cm.output == it.output
        rng = np.random.default_rng(0)
        for _ in range(3):
            if it.input.quantized:
                x = rng.integers(-128, 128, size=it.input.shape).astype(it.input.dtype)
            else:
                x = rng.random(it.input.shape, dtype=np.float32)
            np.testing.assert_allclose(cm.invoke(x).astype(np.float32), it.invoke(x).astype(np.float32), atol=1e-5)
        cm.close()


# -------------------------------------------------------------------- policy


def test_gpu_target_falls_back_to_cpu_with_a_one_line_reason(bundle, caplog):
    with caplog.at_level(logging.WARNING, logger="edgekit.runtime"):
        p = Predictor.from_bundle(bundle, target="gpu")
    if _gpu_works(bundle):
        assert p.plan.accelerator == "gpu" and p.plan.fallback is None
        return
    assert p.plan.entry.target == "cpu" and p.plan.accelerator == "cpu"
    assert re.match("gpu unavailable: " + GPU_UNAVAILABLE, p.plan.fallback), p.plan.fallback
    assert "running model_cpu.tflite on the CPU instead" in p.plan.fallback
    assert "\n" not in p.plan.fallback
    assert [r.getMessage() for r in caplog.records] == [p.plan.fallback]
    assert p.predict(read_image(rf.digit_files(1)[0])).label == "0"


def test_strict_makes_a_missing_accelerator_an_error(bundle):
    if _gpu_works(bundle):
        pytest.skip("this machine has a working GPU: nothing to refuse")
    with pytest.raises(TargetError, match=r"target 'gpu' cannot run here: " + GPU_UNAVAILABLE + r".*Drop --strict"):
        Predictor.from_bundle(bundle, target="gpu", strict=True)


def test_uncompiled_edgetpu_artifact_falls_back_and_says_why(bundle):
    p = Predictor.from_bundle(bundle, target="edgetpu")
    assert p.plan.entry.target == "cpu"
    assert "was not compiled for the Edge TPU" in p.plan.fallback
    with pytest.raises(TargetError, match="not compiled for the Edge TPU"):
        Predictor.from_bundle(bundle, target="edgetpu", strict=True)


def test_compiled_edgetpu_artifact_without_libedgetpu_falls_back(bundle, tmp_path):
    """A bundle as a build with edgetpu_compiler would write it: an extra, compiled entry.

    The compiler is not installable here, so the entry points at a copy of the
    uncompiled file (a stand-in): the runtime never gets to read it, because
    libedgetpu.so.1 is missing, which is the path under test.
    """
    if find_library("libedgetpu.so.1"):
        pytest.skip("libedgetpu.so.1 is installed here: the missing-runtime path cannot happen")
    b = rf.copy_bundle(bundle, tmp_path / "tpu_bundle")
    (b / "model_edgetpu_edgetpu.tflite").write_bytes((b / "model_edgetpu.tflite").read_bytes())

    def add_compiled(m):
        src = next(a for a in m["artifacts"] if a["target"] == "edgetpu")
        m["artifacts"].append(dict(src, file="model_edgetpu_edgetpu.tflite", status="ok", compiled_from="model_edgetpu.tflite", variant="int8_edgetpu"))

    rf.edit_manifest(b, add_compiled)
    p = Predictor.from_bundle(b, target="edgetpu")
    assert p.plan.accelerator == "cpu"
    assert "libedgetpu.so.1 not found on the library path" in p.plan.fallback
    with pytest.raises(TargetError, match="libedgetpu.so.1 not found"):
        Predictor.from_bundle(b, target="edgetpu", strict=True)


def test_auto_picks_what_runs_and_notes_what_it_passed_over(bundle):
    p = Predictor.from_bundle(bundle)  # target="auto"
    if _gpu_works(bundle):
        assert p.plan.accelerator == "gpu"
        return
    assert p.plan.entry.target == "cpu" and p.plan.fallback is None
    assert [n.split(":")[0] for n in p.plan.notes] == ["edgetpu", "gpu"]
    with pytest.raises(TargetError, match="auto: the preferred target 'edgetpu' cannot run here"):
        Predictor.from_bundle(bundle, strict=True)


def test_auto_follows_the_device_profile_order(bundle, tmp_path):
    rpi = Predictor.from_bundle(bundle, device="rpi4")
    assert rpi.plan.entry.target == "cpu" and rpi.plan.notes == [] and rpi.plan.threads == 4
    jetson = device_prefs("jetson-nano")
    assert jetson.targets == ("gpu", "cpu") and jetson.gpu_libraries == ("libtensorflowlite_gpu_delegate.so",)
    p = Predictor.from_bundle(bundle, device="jetson-nano", threads=2)
    if not _gpu_works(bundle):
        assert [n.split(":")[0] for n in p.plan.notes] == ["gpu"] and p.plan.threads == 2
    # A user's own device file works like a built-in name.
    mine = tmp_path / "my-board.toml"
    mine.write_text('kind = "device"\nname = "my-board"\ndescription = "test board"\ntargets = ["cpu"]\nthreads = 1\n')
    assert Predictor.from_bundle(bundle, device=str(mine)).plan.threads == 1
    with pytest.raises(TargetError, match="unknown device 'rpi9'; valid devices:"):
        Predictor.from_bundle(bundle, device="rpi9")


def test_delegate_path_that_does_not_exist_is_a_clean_error(bundle):
    with pytest.raises(TargetError, match=r"delegate library /no/such/libdelegate\.so does not exist"):
        Predictor.from_bundle(bundle, target="gpu", delegate="/no/such/libdelegate.so")


def test_delegate_that_is_not_a_tflite_delegate_falls_back_or_fails_strictly(bundle):
    libm = find_library("libm.so.6")
    p = Predictor.from_bundle(bundle, target="gpu", delegate=libm)
    assert p.plan.accelerator == "cpu"
    assert f"delegate {libm} could not be loaded: the library is not a TFLite delegate" in p.plan.fallback
    with pytest.raises(TargetError, match="not a TFLite delegate"):
        Predictor.from_bundle(bundle, target="cpu", delegate=libm, strict=True)


def test_target_not_in_bundle_lists_what_it_has(bundle, tmp_path):
    with pytest.raises(TargetError, match=r"target 'npu' is not in bundle .*; it has: cpu \(cpu\), gpu \(gpu\), edgetpu \(edgetpu\)"):
        Predictor.from_bundle(bundle, target="npu")
    b = rf.copy_bundle(bundle, tmp_path / "cpu_only")
    rf.edit_manifest(b, lambda m: m.update(artifacts=[a for a in m["artifacts"] if a["target"] == "cpu"]))
    with pytest.raises(TargetError, match="target 'gpu' is not in bundle"):
        Predictor.from_bundle(b, target="gpu")


def test_tampered_artifact_is_refused_never_fallen_back_from(bundle, tmp_path):
    b = rf.copy_bundle(bundle, tmp_path / "tampered")
    data = bytearray((b / "model_cpu.tflite").read_bytes())
    data[-100] ^= 0xFF
    (b / "model_cpu.tflite").write_bytes(bytes(data))
    for target in ("cpu", "gpu", "auto"):  # gpu and auto would fall back to this very file
        with pytest.raises(IntegrityError, match="model_cpu.tflite failed its integrity check"):
            Predictor.from_bundle(b, target=target)
