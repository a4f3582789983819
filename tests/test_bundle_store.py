"""The bundle on disk: integrity on load and verify, atomic replacement, the device-side read."""
from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys

import pytest

from edgekit.bundle import MANIFEST_NAME, BundleWriter, Manifest, load_bundle, verify_bundle
from edgekit.errors import BundleError, IntegrityError

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def built(tmp_path_factory, tf_keras):
    """A real cpu + gpu bundle from a small CNN, calibrated and scored on the real digits."""
    from dataclasses import replace

    from edgekit.compile.build import build_bundle
    from edgekit.data import load_digits, split_dataset
    from edgekit.data.digits import DIGITS_SPEC

    ds = load_digits()
    train, test = split_dataset(ds, holdout=0.2, seed=0)
    tf_keras.utils.set_random_seed(0)
    L = tf_keras.layers
    m = tf_keras.Sequential(
        [tf_keras.Input((28, 28, 1)), L.Conv2D(4, 3, activation="relu"), L.MaxPooling2D(), L.Flatten(), L.Dense(10)]
    )
    out = tmp_path_factory.mktemp("store") / "bundle"
    build_bundle(out, model=m, spec=replace(DIGITS_SPEC, output="logits"), labels=ds.class_names, representative=train.x[:32],
                 targets=["cpu", "gpu"], eval_data=(test.x[:50], test.y[:50]), progress=False)
    return out


@pytest.fixture
def bundle(built, tmp_path):
    dest = tmp_path / "bundle"
    shutil.copytree(built, dest)
    return dest


def test_fresh_bundle_verifies(bundle):
    result = verify_bundle(bundle)
    assert result.ok
    files = {c["file"] for c in result.checks}
    assert {"model_cpu.tflite", "model_gpu.tflite", "reports/compat_cpu.json", "reports/build.json"} <= files


def test_tampered_artifact_is_refused_on_load_and_by_verify(bundle):
    path = bundle / "model_cpu.tflite"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte, same size
    path.write_bytes(bytes(data))
    b = load_bundle(bundle)
    with pytest.raises(IntegrityError, match="model_cpu.tflite failed its integrity check"):
        b.artifact_path(b.manifest.artifact("cpu"))
    b.artifact_path(b.manifest.artifact("gpu"))  # the untouched one still loads
    result = verify_bundle(bundle)
    assert not result.ok
    bad = [c for c in result.checks if not c["ok"]]
    assert [c["file"] for c in bad] == ["model_cpu.tflite"] and "sha256" in bad[0]["detail"]


def test_missing_artifact_and_report(bundle):
    (bundle / "model_gpu.tflite").unlink()
    (bundle / "reports" / "compat_cpu.txt").unlink()
    b = load_bundle(bundle)
    with pytest.raises(BundleError, match="missing; the bundle is incomplete"):
        b.artifact_path(b.manifest.artifact("gpu"))
    bad = {c["file"] for c in verify_bundle(bundle).checks if not c["ok"]}
    assert bad == {"model_gpu.tflite", "reports/compat_cpu.txt"}


def test_manifest_round_trips_and_stays_strict(bundle):
    raw = json.loads((bundle / MANIFEST_NAME).read_text())
    m = Manifest.from_dict(raw)
    assert m.to_dict() == raw
    assert m.targets == ["cpu", "gpu"] and m.schema_version == 1
    with pytest.raises(BundleError, match="unknown key"):
        Manifest.from_dict({**raw, "surprise": 1})
    with pytest.raises(BundleError, match="schema_version is 99"):
        Manifest.from_dict({**raw, "schema_version": 99})
    with pytest.raises(BundleError, match="no artifact for target 'edgetpu'; it has: cpu, gpu"):
        m.artifact("edgetpu")


def _first_artifact(change):
    return lambda m: change(m["artifacts"][0])


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda m: m.update(artifacts=None), "manifest key 'artifacts' is null; expected a list"),
        (lambda m: m.update(artifacts=[5]), "manifest artifacts[0] is int 5; expected an object"),
        (lambda m: m.update(labels="0123456789"), "manifest key 'labels' is str '0123456789'; expected a list of strings"),
        (lambda m: m.update(preprocess=[28, 28]), "manifest key 'preprocess' is list [28, 28]; expected an object"),
        (lambda m: m.update(reports=["../../secret.txt"]), "manifest reports[0] is '../../secret.txt', which points outside the bundle"),
        (_first_artifact(lambda a: a.update(file=5)), "manifest artifacts[0] key 'file' is int 5; expected a string"),
        (_first_artifact(lambda a: a.update(file="../../../etc/hostname")), "manifest artifacts[0] 'file' is '../../../etc/hostname', which points outside"),
        (_first_artifact(lambda a: a.update(file="/etc/hostname")), "manifest artifacts[0] 'file' is '/etc/hostname', which points outside"),
        (_first_artifact(lambda a: a.update(file="")), "manifest artifacts[0] 'file' is str ''; expected a file path relative to the bundle"),
        (_first_artifact(lambda a: a.update(compiled_from="..\\model.tflite")), "'compiled_from' is '..\\\\model.tflite', which points outside"),
        (_first_artifact(lambda a: a.update(bytes="1234")), "manifest artifacts[0] key 'bytes' is str '1234'; expected an integer"),
        (_first_artifact(lambda a: a.update(accuracy=[0.9])), "key 'accuracy' is list [0.9]; expected an object or null"),
        (_first_artifact(lambda a: a.pop("sha256")), "manifest artifacts[0] is missing required key(s) sha256"),
    ],
)
def test_damaged_manifest_is_a_one_line_bundle_error(bundle, damage, message):
    raw = json.loads((bundle / MANIFEST_NAME).read_text())
    damage(raw)
    (bundle / MANIFEST_NAME).write_text(json.dumps(raw))
    with pytest.raises(BundleError) as e:
        load_bundle(bundle)
    assert message in str(e.value) and "\n" not in str(e.value)
    assert "rebuild the bundle" in str(e.value)


def test_artifact_linked_from_outside_the_bundle_is_not_read(bundle, tmp_path):
    outside = tmp_path / "elsewhere.tflite"
    outside.write_bytes((bundle / "model_cpu.tflite").read_bytes())
    (bundle / "model_cpu.tflite").unlink()
    (bundle / "model_cpu.tflite").symlink_to(outside)
    b = load_bundle(bundle)
    with pytest.raises(BundleError, match="leads outside the bundle"):
        b.artifact_path(b.manifest.artifact("cpu"))


def test_numpy_values_are_written_to_the_manifest_as_numbers(bundle):
    import numpy as np

    old = load_bundle(bundle).manifest
    with BundleWriter(bundle) as w:
        (w.path / "model_cpu.tflite").write_bytes((bundle / "model_cpu.tflite").read_bytes())
        entry = old.artifact("cpu")
        entry.recipe = {"calibration_samples": np.int64(64), "sparsity": np.float32(0.5)}
        entry.accuracy = {"top1": np.float32(0.75), "confusion": np.eye(2, dtype=np.int64)}
        w.manifest = Manifest(labels=old.labels, preprocess=old.preprocess, source_model=old.source_model, artifacts=[entry])
    raw = json.loads((bundle / MANIFEST_NAME).read_text())["artifacts"][0]
    assert raw["recipe"] == {"calibration_samples": 64, "sparsity": 0.5}
    assert raw["accuracy"] == {"top1": 0.75, "confusion": [[1, 0], [0, 1]]}


def test_failed_write_keeps_the_old_bundle_and_leaves_nothing(bundle):
    before = {p.relative_to(bundle): p.read_bytes() for p in bundle.rglob("*") if p.is_file()}
    with pytest.raises(RuntimeError, match="disk full"):
        with BundleWriter(bundle) as w:
            (w.path / "model_cpu.tflite").write_bytes(b"half a model")
            raise RuntimeError("disk full")  # e.g. an error midway through a build
    after = {p.relative_to(bundle): p.read_bytes() for p in bundle.rglob("*") if p.is_file()}
    assert after == before
    assert sorted(p.name for p in bundle.parent.iterdir()) == ["bundle"]


def test_replacing_a_bundle_is_atomic_and_published_readable(bundle):
    old = load_bundle(bundle).manifest
    with BundleWriter(bundle) as w:
        # verify reads the artifact's header as loading does, so the new bundle gets a real artifact
        shutil.copy(bundle / "model_cpu.tflite", w.path / "model_cpu.tflite")
        entry = old.artifact("cpu")
        entry.sha256, entry.bytes = "", 0
        w.manifest = Manifest(labels=old.labels, preprocess=old.preprocess, source_model=old.source_model, artifacts=[entry])
    new = load_bundle(bundle)
    assert new.manifest.targets == ["cpu"] and verify_bundle(bundle).ok
    assert not (bundle / "model_gpu.tflite").exists()  # the whole old bundle was swapped out
    assert sorted(p.name for p in bundle.parent.iterdir()) == ["bundle"]
    umask = os.umask(0)
    os.umask(umask)
    # mkdtemp stages privately (0700); the published bundle gets the usual mode
    assert stat.S_IMODE(os.stat(bundle).st_mode) == 0o777 & ~umask


def test_writer_refuses_to_replace_a_folder_that_is_not_a_bundle(tmp_path):
    other = tmp_path / "photos"
    other.mkdir()
    (other / "cat.jpg").write_bytes(b"x")
    with pytest.raises(BundleError, match="is not an edgekit bundle; refusing to replace it"):
        BundleWriter(other)


def test_device_reads_the_bundle_without_tensorflow(bundle):
    code = f"""
import sys
sys.modules["tensorflow"] = None  # the device has no TensorFlow
import numpy as np
from edgekit.bundle import load_bundle, verify_bundle
from edgekit.runtime.backends import select_backend
from edgekit.runtime.tensors import run_batch
from edgekit.tflite_graph import read_graph
b = load_bundle({str(bundle)!r})
assert verify_bundle(b.path).ok
e = b.manifest.artifact("cpu")
path = b.artifact_path(e)
g = read_graph(path)
t = g.tensors[g.inputs[0]]
assert [list(t.shape), t.dtype] == [e.input["shape"], e.input["dtype"]], (t, e.input)
it = select_backend().Interpreter(model_path=str(path)); it.allocate_tensors()
print(run_batch(it, np.zeros((2, 28, 28, 1), np.float32)).shape)
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "(2, 10)"
