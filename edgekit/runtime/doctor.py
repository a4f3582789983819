"""What this device can run: interpreter backend, accelerators, OpenCV, cameras.

:func:`diagnose` gathers facts without TensorFlow and without changing
anything; ``edgekit doctor`` renders them. With a bundle it also tries each
artifact the way ``deploy`` would, so "will the GPU artifact run here?" gets
a real answer, not a guess.

To report something new, add a ``_check_*`` function and call it from
:func:`diagnose`.
"""
from __future__ import annotations

import glob
import os
import platform
import sys
from typing import Any

from edgekit.runtime._native import captured_stderr, crash_traces
from edgekit.runtime.accelerators import (
    EDGETPU_LIBRARIES,
    GPU_DELEGATE_LIBRARIES,
    default_threads,
    find_library,
)
from edgekit.runtime.backends import _BACKENDS, known_incompatibility, select_backend
from edgekit.runtime.cpu_features import cpu_features, library_cpu_problem, litert_accelerator_libraries, litert_gpu_cpu_problem


def _check_backends() -> dict[str, Any]:
    out: dict[str, Any] = {"selected": None, "version": None, "skipped": {}, "others": {}}
    try:
        loaded = select_backend()
    except Exception as e:  # noqa: BLE001 - reported, not raised: doctor must always finish
        out["error"] = str(e)
        return out
    out.update(selected=loaded.name, version=loaded.version, skipped=dict(loaded.skipped))
    # Later backends are not imported by deploy; say whether they would be there.
    import importlib.util

    for b in _BACKENDS:
        if b.name == loaded.name or b.name in loaded.skipped:
            continue
        try:
            found = importlib.util.find_spec(b.module.split(".")[0]) is not None
        except (ImportError, ValueError):  # a finder that refuses the package: as good as absent
            found = False
        known = known_incompatibility(b.name) if found else None
        out["others"][b.name] = f"installed, unusable: {known}" if known else "installed (not used)" if found else "not installed"
    return out


def _check_accelerators() -> dict[str, Any]:
    gpu_runtimes = {
        "vulkan": find_library("libvulkan.so.1"),
        "opencl": find_library("libOpenCL.so.1") or find_library("libOpenCL.so"),
    }
    gpu_devices = sorted(glob.glob("/dev/dri/renderD*") + glob.glob("/dev/nvidia[0-9]*") + glob.glob("/dev/mali*"))
    edgetpu_lib = next((p for p in map(find_library, EDGETPU_LIBRARIES) if p), None)
    edgetpu_devices = sorted(glob.glob("/dev/apex_*"))
    usb_coral = _usb_coral_present()
    gpu_delegates = {name: find_library(name) for name in GPU_DELEGATE_LIBRARIES}
    cpu = cpu_features()
    litert_gpu_problem = litert_gpu_cpu_problem()
    # A delegate library that would abort this process is as good as absent.
    delegate_problems = {name: library_cpu_problem(path) for name, path in gpu_delegates.items() if path}
    if edgetpu_lib:
        delegate_problems[os.path.basename(edgetpu_lib)] = library_cpu_problem(edgetpu_lib)
    return {
        "cpu": {
            "cores": default_threads(),
            "machine": platform.machine(),
            "features": sorted(cpu.features) if cpu else None,
            "features_source": cpu.source if cpu else None,
        },
        "gpu": {
            "litert_accelerator_libraries": [os.path.basename(p) for p in litert_accelerator_libraries("gpu")],
            "litert_accelerator_cpu_problem": litert_gpu_problem,
            "runtimes": gpu_runtimes,
            "devices": gpu_devices,
            "delegate_libraries": gpu_delegates,
            "likely_available": bool(gpu_devices) and any(gpu_runtimes.values()),
        },
        "library_cpu_problems": {k: v for k, v in delegate_problems.items() if v},
        "edgetpu": {
            "library": edgetpu_lib,
            "pcie_devices": edgetpu_devices,
            "usb_device": usb_coral,
            "likely_available": bool(edgetpu_lib) and (bool(edgetpu_devices) or usb_coral),
        },
    }


def _usb_coral_present() -> bool:
    # Coral USB shows up as 1a6e:089a (before firmware load) or 18d1:9302 (after).
    for path in glob.glob("/sys/bus/usb/devices/*/idVendor"):
        try:
            vendor = open(path).read().strip()
            product = open(os.path.join(os.path.dirname(path), "idProduct")).read().strip()
        except OSError:
            continue
        if (vendor, product) in (("1a6e", "089a"), ("18d1", "9302")):
            return True
    return False


def _check_opencv() -> dict[str, Any]:
    try:
        import cv2
    except ImportError as e:
        return {"installed": False, "error": str(e)}
    from edgekit.runtime.sources import opencv_build_info

    info = opencv_build_info()
    reg = cv2.videoio_registry

    def names(ids: Any) -> list[str]:
        # The registry also lists plugin backends whose library is absent; keep the usable ones.
        usable = (b for b in ids if not hasattr(reg, "hasBackend") or reg.hasBackend(b))
        return list(dict.fromkeys(reg.getBackendName(b) for b in usable))

    from edgekit.runtime.outputs import gui_available

    gui_ok, gui_why = gui_available()
    return {
        "installed": True,
        "version": cv2.__version__,
        "gui": info.get("GUI") or "NONE",
        "show_window": gui_ok,
        "show_window_reason": gui_why,
        "video_backends": names(reg.getBackends()),
        "camera_backends": names(reg.getCameraBackends()),
        "stream_backends": names(reg.getStreamBackends()),
        "writer_backends": names(reg.getWriterBackends()),
        "ffmpeg": info.get("FFMPEG") or "NO",
        "gstreamer": info.get("GStreamer") or "NO",
        "v4l2": info.get("v4l/v4l2") or "NO",
    }


def _check_cameras() -> list[dict[str, Any]]:
    cams = []
    for dev in sorted(glob.glob("/dev/video*"), key=lambda p: (len(p), p)):
        name_file = f"/sys/class/video4linux/{os.path.basename(dev)}/name"
        try:
            name = open(name_file).read().strip()
        except OSError:
            name = ""
        cams.append({"device": dev, "name": name, "readable": os.access(dev, os.R_OK)})
    return cams


def _check_bundle(path: str) -> list[dict[str, Any]]:
    """Try every artifact of a bundle as deploy would, without fallback."""
    from edgekit.bundle import load_bundle
    from edgekit.errors import EdgekitError
    from edgekit.runtime.accelerators import open_plan

    bundle = load_bundle(path)
    backend = select_backend()
    rows = []
    for entry in bundle.manifest.artifacts:
        row: dict[str, Any] = {"target": entry.target, "file": entry.file, "accelerator": entry.accelerator or "cpu"}
        try:
            with captured_stderr():
                plan, engine = open_plan(bundle, backend, target=entry.target, strict=True)
            engine.close()
            row.update(runs=True, via=plan.via)
        except EdgekitError as e:
            # The bare reason: the "cannot run here" framing and --strict hint fit deploy, not this table.
            reason = e.message.split(" cannot run here: ", 1)[-1].rstrip(".")
            row.update(runs=False, reason=reason)
        rows.append(row)
    return rows


def diagnose(bundle: str | None = None) -> dict[str, Any]:
    """Everything ``edgekit doctor`` reports, as plain data.

    Args:
        bundle: optionally, a bundle whose artifacts are each tried here.

    Raises:
        BundleError: ``bundle`` is given but is not a readable bundle.
    """
    import edgekit

    report: dict[str, Any] = {
        "edgekit": getattr(edgekit, "__version__", "unknown"),
        "python": sys.version.split()[0],
        "libc": " ".join(platform.libc_ver()).strip() or "unknown",
        "platform": f"{platform.system()} {platform.release()} {platform.machine()}",
        "tensorflow_imported": "tensorflow" in sys.modules,
        "backend": _check_backends(),
        "accelerators": _check_accelerators(),
        "opencv": _check_opencv(),
        "cameras": _check_cameras(),
        # Processes that died inside a native call (e.g. SIGILL) and what the library said.
        "native_crashes": [t.to_dict() for t in crash_traces()],
    }
    if bundle is not None:
        report["bundle"] = {"path": str(bundle), "artifacts": _check_bundle(bundle)}
    return report
