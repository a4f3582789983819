"""compress says on the console when a target will not run whole on its accelerator, and fails a target
whose profile forbids the float ops its int8 artifact kept (issue 11)."""
from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

pytestmark = [pytest.mark.slow, pytest.mark.build]


def _model(tf_keras, tmp_path, activation):
    from edgekit.data.digits import DIGITS_SPEC
    from edgekit.data import load_digits
    from edgekit.example import spec_path_for

    L = tf_keras.layers
    tf_keras.utils.set_random_seed(0)
    act = {"leaky": L.LeakyReLU(0.1), "elu": L.Activation("elu")}[activation]
    model = tf_keras.Sequential([
        tf_keras.Input((28, 28, 1)), L.Conv2D(4, 3, strides=2), act, L.Conv2D(4, 3, strides=2, activation="relu"),
        L.Flatten(), L.Dense(10, activation="softmax"),
    ])  # fmt: skip
    path = tmp_path / f"{activation}.h5"
    model.save(path)
    spec_path_for(path).write_text(json.dumps({"preprocess": DIGITS_SPEC.to_dict(), "labels": load_digits().class_names}))
    return path


def _compress(model, out, targets):
    from edgekit.cli import app
    from edgekit.resources import digits_dir

    return CliRunner().invoke(app, ["compress", str(model), "--data", str(digits_dir()), "--out", str(out), "--no-qat",
                                    "--calibration-samples", "16", "--max-accuracy-drop", "100", "--targets", targets],
                              terminal_width=200)  # fmt: skip


def test_a_split_edgetpu_graph_is_one_warning_line(tf_keras, tmp_path, monkeypatch):
    import edgekit.compress.calibrate as calibrate

    def debugger_fails(*args, **kwargs):
        raise RuntimeError()  # no text at all: the note must still be one line, not an IndexError

    monkeypatch.setattr(calibrate, "layer_errors", debugger_fails)
    r = _compress(_model(tf_keras, tmp_path, "leaky"), tmp_path / "b", "edgetpu")
    assert r.exit_code == 0, r.output
    assert "per-layer quantization error report unavailable: RuntimeError" in r.output
    assert "peak memory of this process after each phase: load " in r.output
    lines = [line for line in r.output.splitlines() if line.startswith("warning: edgetpu:")]
    assert len(lines) == 1 and "graph splits at op #2 LEAKY_RELU" in lines[0] and "ops on Edge TPU, the rest on CPU" in lines[0]


def test_float_ops_in_an_edgetpu_artifact_fail_the_target_and_the_run(tf_keras, tmp_path):
    from edgekit.bundle import load_bundle

    r = _compress(_model(tf_keras, tmp_path, "elu"), tmp_path / "b", "cpu,edgetpu")
    assert r.exit_code == 1, r.output
    out = " ".join(r.output.split())
    assert "target edgetpu failed (analyse)" in out and "stay in float" in out and "float_fallback = false" in out
    m = load_bundle(tmp_path / "b").manifest
    assert [a.target for a in m.artifacts] == ["cpu"]  # the cpu artifact may keep float ops, and ships
    assert m.failures[0]["target"] == "edgetpu" and m.failures[0]["stage"] == "analyse"
    assert "warning: cpu:" in r.output and "run in float inside this int8 artifact" in out


def test_a_softmax_left_to_tflites_cpu_kernels_is_in_the_report_not_a_warning(tf_keras, tmp_path):
    """XNNPACK takes every int8 op but the final SOFTMAX: that runs on the same CPU and costs no MACs worth a warning."""
    r = _compress(_model(tf_keras, tmp_path, "leaky"), tmp_path / "b", "cpu")
    assert r.exit_code == 0, r.output
    assert "warning: cpu:" not in r.output
    report = json.loads((tmp_path / "b" / "reports" / "compat_cpu.json").read_text())
    left = [p for p in report["placements"] if not p["on_accelerator"]]
    assert [p["op"] for p in left] == ["SOFTMAX"] and report["fraction_macs"] >= 0.99
    assert [u["op"] for u in report["unsupported"]] == ["SOFTMAX"]
