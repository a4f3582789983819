"""``edgekit targets`` and ``edgekit verify``, in-process with Typer's CliRunner."""
from __future__ import annotations

import json
import shutil

import pytest
from typer.testing import CliRunner

from edgekit.cli import app
from edgekit.profiles import list_devices, list_targets

runner = CliRunner()


def test_targets_lists_every_profile():
    r = runner.invoke(app, ["targets"], env={"COLUMNS": "200"})
    assert r.exit_code == 0, r.output
    for name in list_targets() + list_devices():
        assert name in r.output
    assert "model_edgetpu.tflite" in r.output and "libedgetpu.so.1" in r.output


def test_targets_json():
    r = runner.invoke(app, ["targets", "--json"])
    assert r.exit_code == 0
    data = json.loads(r.stdout)
    assert [t["name"] for t in data["targets"]] == list_targets()
    assert [d["name"] for d in data["devices"]] == list_devices()
    tpu = data["targets"][2]
    assert (tpu["quantization"], tpu["io_dtype"], tpu["batch"], tpu["accelerator"]) == ("int8", "uint8", 1, "edgetpu")
    assert data["devices"][4]["targets"] == ["edgetpu", "cpu"]


def test_targets_with_a_user_profile(tmp_path):
    p = tmp_path / "toy.toml"
    p.write_text(
        'kind = "target"\nname = "toy"\ndescription = "d"\nartifact = "model_toy.tflite"\nquantization = "fp32"\n'
        'io_dtype = "float32"\nbatch = 1\nanalysis = "xnnpack"\n[check]\ntolerance = 0.001\n'
    )
    r = runner.invoke(app, ["targets", str(p), "--json"])
    assert r.exit_code == 0
    assert json.loads(r.stdout)["targets"][-1]["name"] == "toy"


def test_targets_with_a_bad_profile_names_the_key_in_one_line(tmp_path):
    p = tmp_path / "bad.toml"
    p.write_text('kind = "device"\nname = "b"\ndescription = "d"\ntargets = ["cpu"]\nthreds = 4\n')
    r = runner.invoke(app, ["targets", str(p)])
    assert r.exit_code == 2
    assert "unknown key 'threds'" in r.output and "Traceback" not in r.output
    assert len(r.output.strip().splitlines()) == 1


@pytest.fixture(scope="module")
def bundle(tmp_path_factory, tf_keras):
    from dataclasses import replace

    from edgekit.compile.build import build_bundle
    from edgekit.data import load_digits
    from edgekit.data.digits import DIGITS_SPEC

    ds = load_digits()
    tf_keras.utils.set_random_seed(0)
    L = tf_keras.layers
    m = tf_keras.Sequential([tf_keras.Input((28, 28, 1)), L.Conv2D(4, 3, activation="relu"), L.Flatten(), L.Dense(10)])
    out = tmp_path_factory.mktemp("cli") / "bundle"
    build_bundle(out, model=m, spec=replace(DIGITS_SPEC, output="logits"), labels=ds.class_names, representative=ds.x[:16],
                 targets=["cpu", "edgetpu"], progress=False)
    return out


@pytest.mark.slow
def test_verify_ok(bundle):
    r = runner.invoke(app, ["verify", str(bundle)], env={"COLUMNS": "200"})
    assert r.exit_code == 0, r.output
    assert "model_cpu.tflite" in r.output and "all" in r.output and "checks passed" in r.output


@pytest.mark.slow
def test_verify_refuses_a_tampered_artifact(bundle, tmp_path):
    copy = tmp_path / "b"
    shutil.copytree(bundle, copy)
    with open(copy / "model_edgetpu.tflite", "ab") as f:
        f.write(b"\0")
    r = runner.invoke(app, ["verify", str(copy)], env={"COLUMNS": "200"})
    assert r.exit_code == 1
    assert "FAIL" in r.output and "failed its integrity check" in r.output
    j = runner.invoke(app, ["verify", str(copy), "--json"])
    assert j.exit_code == 1
    data = json.loads(j.stdout)
    assert data["ok"] is False
    assert [c["file"] for c in data["checks"] if not c["ok"]] == ["model_edgetpu.tflite"]


@pytest.mark.slow
def test_verify_json_ok(bundle):
    r = runner.invoke(app, ["verify", str(bundle), "--json"])
    assert r.exit_code == 0
    data = json.loads(r.stdout)
    assert data["ok"] is True and data["build_failures"] == []


def test_verify_missing_bundle_is_one_line(tmp_path):
    r = runner.invoke(app, ["verify", str(tmp_path / "nope")])
    assert r.exit_code == 2
    assert "does not exist" in r.output and "Traceback" not in r.output


@pytest.mark.slow
@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda m: m.update(artifacts=None), "manifest key 'artifacts' is null; expected a list"),
        (lambda m: m["artifacts"][0].update(file="../../../etc/hostname"), "which points outside the bundle"),
    ],
)
def test_verify_damaged_manifest_is_one_line(bundle, tmp_path, damage, message):
    copy = tmp_path / "b"
    shutil.copytree(bundle, copy)
    raw = json.loads((copy / "manifest.json").read_text())
    damage(raw)
    (copy / "manifest.json").write_text(json.dumps(raw))
    r = runner.invoke(app, ["verify", str(copy)], env={"COLUMNS": "300"})
    assert r.exit_code == 2, r.output
    assert message in r.output and "Traceback" not in r.output
    assert len(r.output.strip().splitlines()) == 1


@pytest.mark.slow
def test_adopt_compiled_on_a_bundle_without_an_edgetpu_target_is_one_line(bundle, tmp_path):
    copy = tmp_path / "b"
    shutil.copytree(bundle, copy)
    raw = json.loads((copy / "manifest.json").read_text())
    raw["artifacts"] = [a for a in raw["artifacts"] if a["target"] == "cpu"]
    (copy / "manifest.json").write_text(json.dumps(raw))
    r = runner.invoke(app, ["verify", str(copy), "--adopt-compiled"], env={"COLUMNS": "300"})
    assert r.exit_code == 2
    assert "has no Edge TPU artifact to adopt a compiled file for; it has: cpu" in r.output
