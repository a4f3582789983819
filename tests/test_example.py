"""The bundled example: real digits in, a Keras 3 model that actually learned them out."""
from __future__ import annotations

import json
import zipfile

from typer.testing import CliRunner

from edgekit.cli import app
from edgekit.preprocess import PreprocessSpec


def test_example_trains_an_accurate_keras3_model(trained_example):
    r = trained_example
    assert r.holdout_accuracy >= 0.95
    assert (r.n_train, r.n_holdout) == (1438, 359)
    meta = json.loads(zipfile.ZipFile(r.model_path).read("metadata.json"))
    assert meta["keras_version"].startswith("3.")
    sidecar = json.loads(r.spec_path.read_text())
    spec = PreprocessSpec.from_dict(sidecar["preprocess"])
    assert spec.input_size == (28, 28) and spec.channels == 1
    assert sidecar["labels"] == [str(i) for i in range(10)]


def test_example_model_loads_through_intake(trained_example):
    from edgekit.intake import load_model

    loaded = load_model(trained_example.model_path)
    assert loaded.bridge.max_relative_deviation <= 1e-5
    assert loaded.model.count_params() == 93_322


def test_example_cli_json(tmp_path):
    out = tmp_path / "cli_model.keras"
    result = CliRunner().invoke(app, ["example", "--out", str(out), "--epochs", "1", "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["model_path"] == str(out) and out.is_file()
    assert 0.0 < payload["holdout_accuracy"] <= 1.0
    assert not list(tmp_path.glob(".*partial*"))
