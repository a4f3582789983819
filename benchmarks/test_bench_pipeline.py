"""The end-to-end pipeline: deploy's per-frame path, and whole passes over a folder of images."""
from __future__ import annotations

import pytest


def test_predict_camera_frame(benchmark, predictor, camera_frame):
    """Predictor.predict on a 640x480 frame: resize + normalise + quantize + invoke + top-k."""
    benchmark.extra_info.update(file=predictor.plan.entry.file, threads=predictor.plan.threads)
    result = benchmark(predictor.predict, camera_frame)
    assert result.topk


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory):
    """32 real digit scans (PNG files): the deploy source for an end-to-end pass."""
    import shutil

    from edgekit.resources import digits_dir

    folder = tmp_path_factory.mktemp("frames")
    for p in sorted(digits_dir().rglob("*.png"))[::50][:32]:
        shutil.copy(p, folder / f"{p.parent.name}_{p.name}")
    return folder


def test_end_to_end_folder_pass(benchmark, predictor, image_folder):
    """One pass of Predictor.run over 32 image files: read, decode, preprocess, invoke, top-k."""
    n = len(list(image_folder.iterdir()))

    def one_pass() -> int:
        return sum(1 for _ in predictor.run(str(image_folder)))

    benchmark.extra_info["frames_per_pass"] = n
    frames = benchmark.pedantic(one_pass, rounds=10, warmup_rounds=1)
    assert frames == n
