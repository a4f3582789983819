"""``compress --device``: a device profile decides which artifacts get built."""
from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from edgekit.cli import app
from edgekit.errors import TargetError
from edgekit.resources import digits_dir

runner = CliRunner()


@pytest.mark.slow
def test_device_builds_its_targets_in_its_order(trained_example, tmp_path):
    out = tmp_path / "coral"
    result = runner.invoke(
        app,
        ["compress", str(trained_example.model_path), "--data", str(digits_dir()), "--out", str(out), "--device", "coral-usb", "--no-qat", "--json"],
    )
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert [a["target"] for a in manifest["artifacts"]] == ["edgetpu", "cpu"]
    assert manifest["recipe"]["targets"] == ["edgetpu", "cpu"]
    edgetpu = manifest["artifacts"][0]
    assert edgetpu["input"]["dtype"] == "uint8" and edgetpu["input"]["shape"][0] == 1


def test_unknown_device_lists_the_valid_ones(trained_example, tmp_path):
    from edgekit.compress import compress

    with pytest.raises(TargetError, match="rpi4.*rpi5"):
        compress(trained_example.model_path, digits_dir(), tmp_path / "b", device="pi9", progress=False)
    assert not (tmp_path / "b").exists()


def test_named_target_must_be_one_the_device_runs(trained_example, tmp_path):
    result = runner.invoke(
        app,
        ["compress", str(trained_example.model_path), "--data", str(digits_dir()), "--out", str(tmp_path / "b"), "--device", "rpi4", "--targets", "edgetpu"],
    )
    assert result.exit_code == 2
    assert "edgetpu" in result.output and "rpi4" in result.output
    assert "Traceback" not in result.output
