"""The cpu-fp32 reference target: added as one file, built, never picked by auto, the bench's fp32 baseline."""
from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from edgekit.cli import app
from edgekit.profiles import get_target, list_targets
from edgekit.resources import digits_dir

runner = CliRunner()


def test_profile_is_registered_from_its_file_alone():
    assert "cpu-fp32" in list_targets()
    profile = get_target("cpu-fp32")
    assert (profile.quantization, profile.io_dtype, profile.accelerator) == ("fp32", "float32", None)


@pytest.fixture(scope="module")
def fp32_bundle(trained_example, tmp_path_factory):
    out = tmp_path_factory.mktemp("fp32") / "bundle"
    result = runner.invoke(
        app,
        ["compress", str(trained_example.model_path), "--data", str(digits_dir()), "--out", str(out), "--targets", "cpu,cpu-fp32", "--no-qat", "--json"],
    )
    assert result.exit_code == 0, result.output
    return out


@pytest.mark.slow
def test_fp32_artifact_is_float_and_as_accurate_as_keras(fp32_bundle):
    manifest = json.loads((fp32_bundle / "manifest.json").read_text())
    art = {a["target"]: a for a in manifest["artifacts"]}
    assert art["cpu-fp32"]["input"]["dtype"] == "float32" and art["cpu-fp32"]["variant"] == "fp32"
    float_row = next(r for r in manifest["variants"] if r["variant"] == "float")
    assert art["cpu-fp32"]["accuracy"]["top1"] == pytest.approx(float_row["top1"], abs=1e-9)
    assert art["cpu"]["bytes"] < art["cpu-fp32"]["bytes"] / 3


@pytest.mark.slow
def test_auto_runs_the_int8_cpu_artifact_not_the_reference(fp32_bundle):
    from edgekit.runtime import Predictor

    predictor = Predictor.from_bundle(fp32_bundle, target="auto")
    try:
        assert predictor.plan.entry.target == "cpu"
    finally:
        predictor.close()


@pytest.mark.slow
def test_bench_compare_uses_the_fp32_artifact_as_reference(fp32_bundle):
    result = runner.invoke(app, ["bench", str(fp32_bundle), "--compare", "--runs", "20", "--warmup", "1", "--min-seconds", "0", "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    reference = payload["comparison"]["reference"]
    assert "cpu-fp32" in json.dumps(reference)
    # with the bundle's own fp32 artifact as reference, no peer (TensorFlow) is needed
    assert "peer" not in json.dumps(reference)
