"""``edgekit inspect``: params, MACs and audit are right for every format."""
from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from edgekit.cli import app
from edgekit.intake import inspect_model

runner = CliRunner()

# Hand-computed for Conv32 -> Pool -> Conv64 -> Pool -> Conv64 -> Flatten -> Dense64 -> Dense10 on 28x28x1.
CNN_LAYERS = {
    # name-independent: (type, params, macs) in order of the weighted layers
    "Conv2D": [(320, 26 * 26 * 32 * 9 * 1), (18_496, 11 * 11 * 64 * 9 * 32), (36_928, 3 * 3 * 64 * 9 * 64)],
    "Dense": [(36_928, 576 * 64), (650, 64 * 10)],
}


def _check_cnn(payload):
    assert payload["totals"]["params"] == 93_322
    got = {}
    for row in payload["layers"]:
        if row["type"] in CNN_LAYERS:
            got.setdefault(row["type"], []).append((row["params"], row["macs"]))
    assert got == CNN_LAYERS
    assert payload["totals"]["macs"] == sum(m for rows in CNN_LAYERS.values() for _, m in rows)
    assert payload["totals"]["float32_bytes"] == 4 * 93_322
    assert payload["input_shape"] == [None, 28, 28, 1] and payload["output_shape"] == [None, 10]


@pytest.mark.parametrize("fixture", ["keras3_cnn_path", "tf_keras_h5_path", "savedmodel_path"])
def test_inspect_json_param_counts(fixture, request):
    path = request.getfixturevalue(fixture)
    result = runner.invoke(app, ["inspect", str(path), "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    _check_cnn(payload)
    assert payload["keras"] == ("keras3" if fixture == "keras3_cnn_path" else "tf_keras")


def test_inspect_table(keras3_cnn_path):
    result = runner.invoke(app, ["inspect", str(keras3_cnn_path)])
    assert result.exit_code == 0, result.output
    assert "Keras 3 .keras archive" in result.output
    assert "93,322 params" in result.output
    assert "every layer can be quantization-aware trained" in result.output


def test_audit_flags_what_blocks_qat(keras3, tmp_path):
    inp = keras3.Input((16, 16, 3))
    x = keras3.layers.Rescaling(1 / 255.0, name="scale")(inp)
    x = keras3.layers.Conv2D(4, 3, name="conv")(x)
    x = keras3.layers.BatchNormalization(name="bn_after_conv")(x)
    x = keras3.layers.Activation("softplus", name="soft")(x)
    x = keras3.layers.GlobalAveragePooling2D()(x)
    path = tmp_path / "audit.keras"
    keras3.Model(inp, keras3.layers.Dense(2, name="head")(x)).save(path)
    audit = {a.name: a for a in inspect_model(path).audit}
    assert audit["scale"].blocks_qat and not audit["scale"].quantizable
    assert audit["conv"].prunable and audit["conv"].quantizable and not audit["conv"].blocks_qat
    assert audit["bn_after_conv"].quantizable  # folded into the conv by tfmot
    assert audit["head"].prunable
    assert "softplus" in (audit["soft"].blocks_int8 or "")


def test_inspect_bad_file_is_one_line_error(tmp_path):
    bad = tmp_path / "broken.keras"
    bad.write_bytes(b"PK\x03\x04garbage")
    result = runner.invoke(app, ["inspect", str(bad)])
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and "broken.keras" in lines[0]


def test_inspect_table_never_shortens_a_layer_name(keras3, tmp_path):
    """A nested model's layer name is how reports and --float-layers name it: at 80 columns it is there whole."""
    name = "mobilenetv2_transfer_base_block_16_project_BN"
    inp = keras3.Input((8, 8, 3))
    x = keras3.layers.Conv2D(4, 3, name=name)(inp)
    x = keras3.layers.GlobalAveragePooling2D(name="pool")(x)
    path = tmp_path / "long.keras"
    keras3.Model(inp, keras3.layers.Dense(2, name="head")(x)).save(path)
    result = runner.invoke(app, ["inspect", str(path)], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    assert max(len(line) for line in result.output.splitlines()) <= 80
    first_cells = [line.split("│")[1].strip() for line in result.output.splitlines() if line.startswith("│")]
    assert name in "".join(first_cells) and "…" not in result.output  # folded onto two lines, not cut
    assert "112" in result.output and "3,888" in result.output  # params and MACs, uncut
