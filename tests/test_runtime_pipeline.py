"""The device pipeline against the build side: same tensors, same predictions.

Uses a real CNN trained on the shipped digits and converted to full int8
(see runtime_fixtures). "Build side" means edgekit.data's loader and
``tensors.run_batch`` on the artifact, which is how the compile step scores it.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import runtime_fixtures as rf
from edgekit.data import load_dataset
from edgekit.data.digits import DIGITS_SPEC
from edgekit.errors import BundleError, DataError
from edgekit.preprocess import PreprocessSpec, read_image
from edgekit.runtime import Predictor, deploy, open_source, run_batch, select_backend, softmax
from edgekit.runtime.tensors import dequantize

pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def bundle(tmp_path_factory) -> Path:
    return rf.digits_bundle(tmp_path_factory)


def _build_side_scores(bundle: Path, artifact: str, x: np.ndarray) -> np.ndarray:
    interp = select_backend().Interpreter(model_path=str(bundle / artifact))
    interp.allocate_tensors()
    return run_batch(interp, x)


def test_runtime_and_build_side_make_identical_tensors_from_the_same_files(bundle, tmp_path):
    # Digits: the bundle's own spec, through the Predictor's preprocessing.
    folder = tmp_path / "digits"
    for f in rf.digit_files(2):
        (folder / f.parent.name).mkdir(parents=True, exist_ok=True)
        (folder / f.parent.name / f.name).write_bytes(f.read_bytes())
    ds = load_dataset(folder, DIGITS_SPEC)
    p = Predictor.from_bundle(bundle, target="cpu")
    by_path = {str(Path(s).resolve()): x for s, x in zip(ds.paths, ds.x)}
    frames = list(open_source(folder).frames())
    assert len(frames) == len(ds) == 20
    for frame in frames:
        x_runtime = p.preprocess(frame.image)
        assert x_runtime.dtype == np.float32
        assert np.array_equal(x_runtime, by_path[str(Path(frame.source).resolve())])
        assert np.array_equal(p.preprocess(frame.source), x_runtime)  # a path goes the same way

    # Colour photographs (JPEG, RGB model, ImageNet normalisation, resize).
    photos = tmp_path / "photos"
    rf.write_photo_folder(photos)
    spec = PreprocessSpec.from_preset("imagenet", (64, 48), channels=3)
    device_spec = PreprocessSpec.from_dict(spec.to_dict())  # the round trip through the manifest
    ds = load_dataset(photos, spec, labelled=False)
    by_path = {str(Path(s).resolve()): x for s, x in zip(ds.paths, ds.x)}
    for frame in open_source(photos).frames():
        assert np.array_equal(device_spec.apply(frame.image, input_order="bgr"), by_path[str(Path(frame.source).resolve())])


def test_deploy_on_the_digits_matches_the_build_side_evaluation(bundle, tmp_path):
    from edgekit.resources import digits_dir

    ds = load_dataset(digits_dir(), DIGITS_SPEC)
    expected = _build_side_scores(bundle, "model_cpu.tflite", ds.x)
    out = tmp_path / "digits.jsonl"
    result = deploy(bundle, digits_dir(), target="cpu", jsonl=out, top_k=3)
    assert result.ok and result.stopped_by == "end" and result.stats.frames == len(ds) == 1797
    records = {str(Path(r["source"]).resolve()): r for r in rf.read_jsonl(out)}
    assert len(records) == len(ds)
    agree = 0
    for path, scores in zip(ds.paths, expected):
        rec = records[str(Path(path).resolve())]
        top = rec["topk"][0]
        assert top["label"] == ds.class_names[int(np.argmax(scores))]
        assert top["score"] == pytest.approx(float(scores.max()), abs=1e-6)
        agree += 1
    assert agree == 1797
    # And the model is a real classifier, not a constant: most digits are right.
    accuracy = float(np.mean(np.argmax(expected, axis=1) == ds.y))
    assert accuracy > 0.8


def test_deploy_reproduces_the_accuracy_the_build_side_recorded_in_the_manifest(bundle, tmp_path):
    """The compile step evaluated model_cpu.tflite on the held-out split; deploy on those files must agree exactly."""
    from edgekit.bundle import load_bundle
    from edgekit.runtime.sources import ImageSource

    recorded = load_bundle(bundle).manifest.artifact("cpu").accuracy
    _, held_out = rf.digits_split()
    truth = {str(Path(p).resolve()): int(y) for p, y in zip(held_out.paths, held_out.y)}
    out = tmp_path / "held_out.jsonl"
    result = deploy(bundle, ImageSource([Path(p) for p in held_out.paths], "held-out"), target="cpu", jsonl=out)
    assert result.stats.frames == recorded["n"] == len(held_out)
    confusion = np.zeros((10, 10), dtype=int)
    for rec in rf.read_jsonl(out):
        confusion[truth[str(Path(rec["source"]).resolve())], int(rec["topk"][0]["label"])] += 1
    assert confusion.tolist() == recorded["confusion"]
    assert np.trace(confusion) / confusion.sum() == pytest.approx(recorded["top1"], abs=1e-12)


def test_deploy_on_a_lossless_digits_video_matches_the_build_side(bundle, tmp_path):
    files = rf.digit_files(4)
    video = rf.write_video(tmp_path / "digits.avi", [read_image(f) for f in files], fourcc="FFV1")
    x = DIGITS_SPEC.apply_batch([read_image(f) for f in files])
    expected = _build_side_scores(bundle, "model_cpu.tflite", x)
    seen = []
    result = deploy(bundle, video, target="cpu", on_result=seen.append)
    assert result.stats.frames == len(files) == 40
    for r, scores in zip(seen, expected):
        assert r.prediction.label == str(int(np.argmax(scores)))
        np.testing.assert_allclose(r.prediction.scores, scores, atol=1e-6)


def test_predict_quantizes_with_the_artifacts_scale_and_zero_point(bundle):
    p = Predictor.from_bundle(bundle, target="cpu")
    assert p.input.dtype == "int8" and p.input.quantized
    img = read_image(rf.digit_files(1)[3])
    pred = p.predict(img)
    # Redo the arithmetic by hand on the same interpreter.
    x = DIGITS_SPEC.apply(img)
    q = np.clip(np.round(x / p.input.scale + p.input.zero_point), -128, 127).astype(np.int8)
    raw = p.engine.invoke(q[None])
    manual = dequantize(raw, p.output).reshape(-1)
    np.testing.assert_allclose(pred.scores, manual, atol=0)
    assert pred.label == "3" and len(pred.topk) == 5
    assert [s for _, s in pred.topk] == sorted((s for _, s in pred.topk), reverse=True)
    assert set(pred.timings) == {"preprocess", "invoke", "postprocess"}


def test_float_artifact_and_int8_artifact_agree_on_labels(bundle):
    imgs = [read_image(f) for f in rf.digit_files(2)]
    cpu = Predictor.from_bundle(bundle, target="cpu")
    gpu_on_cpu = Predictor.from_bundle(bundle, target="gpu")  # falls back where no GPU is usable
    assert gpu_on_cpu.plan.fallback or gpu_on_cpu.plan.accelerator == "gpu"
    same = sum(cpu.predict(i).label == gpu_on_cpu.predict(i).label for i in imgs)
    assert same >= len(imgs) - 2


def test_logits_spec_applies_softmax(bundle, tmp_path):
    spec = dict(DIGITS_SPEC.to_dict(), output="logits")
    b = rf.copy_bundle(bundle, tmp_path / "logits_bundle", preprocess=spec)
    probs_as_logits = Predictor.from_bundle(b, target="cpu")
    plain = Predictor.from_bundle(bundle, target="cpu")
    img = read_image(rf.digit_files(1)[7])
    got = probs_as_logits.predict(img).scores
    np.testing.assert_allclose(got, softmax(plain.predict(img).scores), rtol=1e-6)
    assert got.sum() == pytest.approx(1.0)


def test_predict_accepts_rgb_arrays_paths_and_preprocessed_floats(bundle):
    p = Predictor.from_bundle(bundle, target="cpu", top_k=2)
    f = rf.digit_files(1)[5]
    gray = read_image(f)
    rgb = np.repeat(gray[:, :, None], 3, axis=2)
    by_path = p.predict(str(f))
    assert by_path.label == p.predict(rgb, input_order="rgb").label == p.predict(DIGITS_SPEC.apply(gray)).label
    assert len(by_path.topk) == 2
    with pytest.raises(DataError, match="already be preprocessed"):
        p.predict(np.zeros((5, 5), np.float32))
    with pytest.raises(DataError, match="cannot read image"):
        p.predict("no/such.png")


def test_an_artifact_that_contradicts_its_manifest_is_refused(bundle, tmp_path):
    b = rf.copy_bundle(bundle, tmp_path / "wrong_labels", labels=["a", "b", "c"])
    with pytest.raises(BundleError, match="10 outputs but the manifest lists 3 labels"):
        Predictor.from_bundle(b, target="cpu")
    spec = dict(DIGITS_SPEC.to_dict(), input_size=[32, 32])
    b2 = rf.copy_bundle(bundle, tmp_path / "wrong_size", preprocess=spec)
    with pytest.raises(BundleError, match=r"takes input shape \[1, 28, 28, 1\]"):
        Predictor.from_bundle(b2, target="cpu")


def test_fused_predict_feeds_the_build_sides_tensor_and_scores_identically(bundle):
    """The uint8 table path: same input tensor as the build side's float path, same scores as its scorer, exactly."""
    from edgekit.metrics import class_probabilities
    from edgekit.runtime.tensors import quantize

    p = Predictor.from_bundle(bundle, target="cpu")
    assert p.input.dtype == "int8" and p._pixels.fused and p._dequantize_table is not None
    interp = select_backend().Interpreter(model_path=str(bundle / p.plan.entry.file))
    interp.allocate_tensors()
    # Digit scans (gray, 8x8 -> 28x28) and colour photographs (BGR -> gray, resized down).
    images = [read_image(f) for f in rf.digit_files(1)] + list(rf.photos_bgr().values())
    x = DIGITS_SPEC.apply_batch(images)
    expected = class_probabilities(run_batch(interp, x), DIGITS_SPEC.output)  # as compile/check.py's evaluate scores
    for image, xi, want in zip(images, x, expected):
        pred = p.predict(image)
        assert np.array_equal(p.engine.interpreter.get_tensor(p.input.index), quantize(xi[None], p.input))
        assert np.array_equal(pred.scores, want)
        assert [label for label, _ in pred.topk] == [p.labels[i] for i in np.argsort(-want, kind="stable")[:5]]
    # A refused picture leaves no view on the interpreter's memory behind: the next frame runs.
    with pytest.raises(DataError):
        p.predict(np.zeros((4, 4, 2), np.uint8))
    assert np.array_equal(p.predict(images[0]).scores, expected[0])


def test_top_k_keeps_a_stable_sorts_order_on_ties(bundle):
    p = Predictor.from_bundle(bundle, target="cpu", top_k=3)
    probs = np.array([0.1, 0.3, 0.3, 0.05, 0.3, 0.0, 0.1, 0.1, 0.05, 0.0], np.float32)
    assert p._topk(probs) == [("1", pytest.approx(0.3)), ("2", pytest.approx(0.3)), ("4", pytest.approx(0.3))]
    p.top_k = 5
    assert [label for label, _ in p._topk(probs)] == ["1", "2", "4", "0", "6"]
