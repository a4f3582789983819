"""The behaviour a profile can name: compatibility analyses and adapters.

A profile's ``analysis`` and ``adapter`` keys are looked up here, and
:func:`check_profile` validates them before any build work starts. Register
a new analysis or adapter by adding one entry; the tests are parametrized over
the built-in profiles, so a name no table knows fails at once.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from edgekit.compile.edgetpu import check_edgetpu
from edgekit.compile.edgetpu_compiler import EdgeTpuCompiler
from edgekit.compile.gpu import check_gpu
from edgekit.compile.report import CompatReport
from edgekit.compile.xnnpack import check_xnnpack
from edgekit.errors import ConfigError
from edgekit.profiles import TargetProfile
from edgekit.tflite_graph import Graph

Analysis = Callable[[Path, Graph, str], CompatReport]

ANALYSES: dict[str, Analysis] = {
    "xnnpack": lambda path, graph, target: check_xnnpack(path, target=target, graph=graph),
    "gpu": lambda path, graph, target: check_gpu(graph, target=target),
    "edgetpu": lambda path, graph, target: check_edgetpu(graph, target=target),
}

ADAPTERS: dict[str, Callable[[], Any]] = {
    "edgetpu_compiler": EdgeTpuCompiler,
}


def check_profile(profile: TargetProfile) -> None:
    """The profile's analysis and adapter exist.

    Raises:
        ConfigError: names the profile file, the key and the known names.
    """
    if profile.analysis not in ANALYSES:
        raise ConfigError(
            f"{profile.source}: key 'analysis' is {profile.analysis!r}; expected one of: {', '.join(ANALYSES)}."
        )
    if profile.adapter is not None and profile.adapter not in ADAPTERS:
        raise ConfigError(
            f"{profile.source}: key 'adapter' is {profile.adapter!r}; expected one of: {', '.join(ADAPTERS)} (or leave it out)."
        )
