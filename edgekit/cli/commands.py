"""The built-in commands, registered in this fixed order.

Each entry is (command name, module, function). A command module imports
nothing heavy at module level; its function does the lazy imports.
"""
from __future__ import annotations

import importlib
import importlib.util
from typing import Any, Callable

_BUILTINS: tuple[tuple[str, str, str], ...] = (
    ("quickstart", "edgekit.cli.quickstart_cmd", "quickstart"),
    ("example", "edgekit.cli.example_cmd", "example"),
    ("inspect", "edgekit.cli.inspect_cmd", "inspect"),
    ("compress", "edgekit.cli.compress_cmd", "compress"),
    ("targets", "edgekit.cli.targets_cmd", "targets"),
    ("verify", "edgekit.cli.verify_cmd", "verify"),
    ("deploy", "edgekit.cli.deploy_cmd", "deploy"),
    ("doctor", "edgekit.cli.doctor_cmd", "doctor"),
    ("bench", "edgekit.cli.bench_cmd", "bench"),
)


def _load() -> list[tuple[str, Callable[..., Any]]]:
    loaded = []
    seen = set()
    for name, module, attr in _BUILTINS:
        if name in seen:
            raise RuntimeError(f"command {name!r} registered twice")
        seen.add(name)
        # A command whose module is not written yet is simply not offered
        # (no stubs); a module that exists but fails to import is a bug and raises.
        if importlib.util.find_spec(module) is None:
            continue
        loaded.append((name, getattr(importlib.import_module(module), attr)))
    return loaded


COMMANDS = _load()
