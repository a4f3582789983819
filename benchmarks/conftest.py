"""Fixtures for the pytest-benchmark suites: one real bundle, opened the way deploy opens it.

By default the suites build a small bundle once (the example CNN trained for
a few seconds on the shipped digits, cpu fp32 + int8; needs the build side)
and keep it in ``.benchmarks/``. On a device, point them at a real bundle
instead; then no TensorFlow is needed::

    EDGEKIT_BENCH_BUNDLE=bundle/ pytest benchmarks/ --benchmark-json out.json

``EDGEKIT_BENCH_THREADS`` sets the interpreter threads (default: the runtime's).
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

_BUILT = "edgekit_digits_bundle"


def bundle_path(rootdir: Path) -> Path:
    given = os.environ.get("EDGEKIT_BENCH_BUNDLE")
    if given:
        return Path(given)
    path = rootdir / ".benchmarks" / _BUILT
    if not (path / "manifest.json").is_file():  # written atomically: a manifest means a complete bundle
        from bench_models import digits_bundle

        digits_bundle(path)
    return path


def threads() -> int | None:
    value = os.environ.get("EDGEKIT_BENCH_THREADS")
    return int(value) if value else None


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    # Parametrized over the bundle's artifacts, so every artifact gets a benchmark.
    if "artifact" in metafunc.fixturenames:
        from edgekit.bundle import load_bundle

        bundle = load_bundle(bundle_path(Path(metafunc.config.rootpath)))
        entries = [a for a in bundle.manifest.artifacts if a.status == "ok"]
        metafunc.parametrize("artifact", entries, ids=[f"{a.target}:{a.variant}" for a in entries])


@pytest.fixture(scope="session")
def bundle(pytestconfig):
    from edgekit.bundle import load_bundle

    return load_bundle(bundle_path(Path(pytestconfig.rootpath)))


@pytest.fixture(scope="session")
def backend():
    from edgekit.runtime.backends import select_backend

    return select_backend()


@pytest.fixture
def predictor(bundle, backend, artifact):
    """The artifact opened by the runtime's policy (as ``edgekit bench`` measures it)."""
    from edgekit.bench.subjects import artifact_subject

    subject = artifact_subject(bundle, artifact, backend, threads=threads())
    if subject.open is None:
        pytest.skip(subject.reason)
    p = subject.open()
    yield p
    p.close()


@pytest.fixture(scope="session")
def camera_frame():
    """A 640x480 BGR frame of a real photograph (scikit-image's astronaut), as a camera hands it over."""
    import cv2

    try:
        import skimage.data

        rgb = skimage.data.astronaut()
    except ImportError:  # on a device without scikit-image: a fixed random frame costs the same
        import numpy as np

        rgb = np.random.default_rng(0).integers(0, 256, (512, 512, 3), dtype=np.uint8)
    return cv2.resize(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), (640, 480), interpolation=cv2.INTER_AREA)
