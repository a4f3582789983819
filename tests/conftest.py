"""Shared fixtures: small real models saved in each format edgekit accepts.

Also the split between the build side and the device side. A test is marked
``build`` (needs TensorFlow, tf_keras, tfmot) automatically when it, or any
fixture it uses, needs them: it uses a TensorFlow fixture below, its module
imports build-side code (``edgekit.compile``, ``compress``, ``intake``, ...),
its own or a fixture's body imports it or runs a build-side CLI command
(``compress``, ``quickstart``, ``example``, ``inspect``), or either calls a
helper function of its module that does (or calls one that does). New test files need
no marker of their own. ``pytest -m "not build"`` is the device-side suite (a
Raspberry Pi, a Jetson); where TensorFlow is not importable, ``build`` tests
are skipped with that reason instead of failing. The runtime tests' bundle
comes from ``EDGEKIT_TEST_BUNDLE`` there (``python tools/make_test_bundle.py``
on the build side).
"""
from __future__ import annotations

import ast
import functools
import importlib.util
import inspect
import os
import re
import textwrap
from pathlib import Path

import pytest

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

BUILD_FIXTURES = frozenset(
    {"keras3", "tf_keras", "keras3_cnn_path", "tf_keras_cnn", "tf_keras_h5_path", "savedmodel_path", "trained_example"}
)
BUILD_MODULES = (
    "tensorflow",
    "tf_keras",
    "tensorflow_model_optimization",
    "keras",
    "tf2onnx",
    "edgekit._tf",
    "edgekit.compile",
    "edgekit.compress",
    "edgekit.intake",
    "edgekit.example",
)
BUILD_PACKAGES = ("tensorflow", "tf_keras", "tensorflow_model_optimization")
_BUILD_CLI = re.compile(r"""\[\s*["'](compress|quickstart|example|inspect)["']""")


def _is_build_module(name: str) -> bool:
    return any(name == m or name.startswith(m + ".") for m in BUILD_MODULES)


def _imports(tree: ast.AST, top_level_only: bool) -> set[str]:
    nodes = tree.body if top_level_only and isinstance(tree, ast.Module) else ast.walk(tree)
    found: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
    return found


@functools.lru_cache(maxsize=None)
def _module_needs_build(path: str) -> bool:
    try:
        tree = ast.parse(Path(path).read_text())
    except (OSError, SyntaxError):
        return False
    return any(_is_build_module(m) for m in _imports(tree, top_level_only=True))


def source_needs_build(src: str) -> bool:
    """Whether a function's source imports build-side code or runs a build-side CLI command."""
    try:
        tree = ast.parse(textwrap.dedent(src))
    except SyntaxError:
        return False
    return bool(_BUILD_CLI.search(src)) or any(_is_build_module(m) for m in _imports(tree, top_level_only=False))


@functools.lru_cache(maxsize=None)
def _build_helpers(path: str) -> frozenset[str]:
    """A test module's top-level functions (helpers, fixtures) that need the build side, directly or via each other."""
    try:
        src = Path(path).read_text()
        tree = ast.parse(src)
    except (OSError, SyntaxError):
        return frozenset()
    funcs = {n.name: n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
    uses = {name: {x.id for x in ast.walk(node) if isinstance(x, ast.Name)} for name, node in funcs.items()}
    build = {name for name, node in funcs.items() if source_needs_build(ast.get_source_segment(src, node) or "")}
    grown = True
    while grown:
        more = {name for name, used in uses.items() if name not in build and used & build}
        build |= more
        grown = bool(more)
    return frozenset(build)


@functools.lru_cache(maxsize=None)
def _function_needs_build(func) -> bool:
    try:
        src = inspect.getsource(func)
        path = inspect.getsourcefile(func)
    except (OSError, TypeError):
        return False
    if source_needs_build(src):
        return True
    # It calls a helper of its module that needs the build side (e.g. one that trains a model).
    helpers = _build_helpers(path) if path else frozenset()
    try:
        names = {x.id for x in ast.walk(ast.parse(textwrap.dedent(src))) if isinstance(x, ast.Name)}
    except SyntaxError:
        return False
    return bool(names & helpers)


def needs_build_side(item: pytest.Item) -> bool:
    """Whether ``item`` needs TensorFlow & co (see the module docstring for the rules)."""
    if item.get_closest_marker("build"):
        return True
    names = set(getattr(item, "fixturenames", ()))
    if names & BUILD_FIXTURES:
        return True
    if _module_needs_build(str(item.path)):
        return True
    func = getattr(item, "function", None)
    if func is not None and _function_needs_build(func):
        return True
    info = getattr(item, "_fixtureinfo", None)
    for defs in (info.name2fixturedefs.values() if info else ()):
        for d in defs:
            if Path(inspect.getsourcefile(d.func) or "").parent == Path(__file__).parent and _function_needs_build(d.func):
                return True
    return False


@functools.lru_cache(maxsize=1)
def missing_build_packages() -> tuple[str, ...]:
    """The build side's packages that cannot be found here (a device has none of them)."""
    missing = []
    for name in BUILD_PACKAGES:
        try:
            if importlib.util.find_spec(name) is None:
                missing.append(name)
        except (ImportError, ValueError):
            missing.append(name)
    return tuple(missing)


def pytest_collection_modifyitems(config, items):
    missing = missing_build_packages()
    skip = pytest.mark.skip(
        reason=f"needs the build side ({', '.join(missing)} not importable here); the device-side suite is pytest -m 'not build'"
    )
    for item in items:
        if needs_build_side(item):
            if not item.get_closest_marker("build"):
                item.add_marker(pytest.mark.build)
            if missing:
                item.add_marker(skip)


@pytest.fixture(scope="session")
def keras3():
    from edgekit._tf import keras3 as _keras3

    return _keras3()


@pytest.fixture(scope="session")
def tf_keras():
    from edgekit._tf import tf_keras as _tf_keras

    return _tf_keras()


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def keras3_cnn_path(keras3, model_dir):
    """The example architecture (untrained), saved as a Keras 3 .keras file."""
    from edgekit.example import build_digits_cnn

    keras3.utils.set_random_seed(0)
    model = build_digits_cnn(keras3)
    path = model_dir / "cnn_k3.keras"
    model.save(path)
    return path


@pytest.fixture(scope="session")
def tf_keras_cnn(tf_keras):
    from edgekit.example import build_digits_cnn

    tf_keras.utils.set_random_seed(0)
    return build_digits_cnn(tf_keras)


@pytest.fixture(scope="session")
def tf_keras_h5_path(tf_keras_cnn, model_dir):
    path = model_dir / "cnn_tfk.h5"
    tf_keras_cnn.save(path)
    return path


@pytest.fixture(scope="session")
def savedmodel_path(tf_keras_cnn, model_dir):
    from edgekit._tf import quiet_native_logs

    path = model_dir / "cnn_savedmodel"
    with quiet_native_logs():
        tf_keras_cnn.save(path, save_format="tf")
    return path


@pytest.fixture(scope="session")
def trained_example(tmp_path_factory):
    """The bundled example, trained once per session (about 5 s on 2 cores)."""
    from edgekit.example import train_example

    return train_example(tmp_path_factory.mktemp("example") / "digits_cnn.keras")
