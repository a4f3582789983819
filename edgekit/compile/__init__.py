"""Per-target compilation: conversion, compatibility analysis, checks, the bundle builder.

Build side: TensorFlow is imported lazily, inside the functions that convert
(through :mod:`edgekit._tf`). The analyses read the flatbuffer and need only
LiteRT. Entry points:

    from edgekit.compile import build_bundle, check_build_request
    result = build_bundle("out/bundle", model=m, spec=spec, labels=names,
                          representative=x_cal, targets=["cpu", "gpu", "edgetpu"],
                          eval_data=(x_test, y_test))

    # or in two steps: a validated request, then the named stages (STAGES)
    from edgekit.compile import BuildRequest, run_build
    result = run_build(BuildRequest.create("out/bundle", model=m, spec=spec, labels=names,
                                           representative=x_cal, targets=["cpu", "edgetpu"]))

To add a target, add ``targets/<name>.toml``; to add behaviour a profile can
name, register it in :mod:`edgekit.compile.registry`.
"""
from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "build_bundle": "edgekit.compile.build",
    "check_build_request": "edgekit.compile.build",
    "BuildResult": "edgekit.compile.build",
    "BuildRequest": "edgekit.compile.build",
    "run_build": "edgekit.compile.build",
    "STAGES": "edgekit.compile.build",
    "ConversionCache": "edgekit.compile.convert",
    "tool_versions": "edgekit.compile.build",
    "convert_model": "edgekit.compile.convert",
    "check_edgetpu": "edgekit.compile.edgetpu",
    "check_gpu": "edgekit.compile.gpu",
    "check_xnnpack": "edgekit.compile.xnnpack",
    "CompatReport": "edgekit.compile.report",
    "EdgeTpuCompiler": "edgekit.compile.edgetpu_compiler",
    "parse_log": "edgekit.compile.edgetpu_compiler",
    "render_build_summary": "edgekit.compile.summary",
}

__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'edgekit.compile' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
