"""``edgekit bench`` end to end on a tiny real bundle: JSON, compare + peers, plot/HTML, e2e, errors.

The bundle holds a small CNN trained for a few seconds on the shipped digits
(real 8x8 scans) and converted three ways: ``cpu`` fp32 and ``cpu`` int8 (two
variants of one target) and ``gpu`` fp16 (no GPU here: measured on the CPU and
flagged). Accuracy is measured on the held-out split through the interpreter,
as the build side does. No assertion is made on any timing.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from edgekit.cli import app

pytestmark = pytest.mark.slow

FAST = ["--runs", "5", "--warmup", "0", "--warmup-seconds", "0", "--min-seconds", "0"]


def build_bench_bundle(dest: Path, model_path: Path) -> Path:
    """Train, save the source model, convert fp32/int8/fp16, score each, write the bundle."""
    from edgekit._tf import quiet_native_logs, tf, tf_keras
    from edgekit.bundle import ArtifactEntry, BundleWriter, Manifest
    from edgekit.data import load_digits, split_dataset
    from edgekit.data.digits import DIGITS_SPEC
    from edgekit.runtime.backends import select_backend
    from edgekit.runtime.tensors import TensorInfo, run_batch

    tf_, keras = tf(), tf_keras()
    keras.utils.set_random_seed(0)
    ds = load_digits()
    train, held = split_dataset(ds, holdout=0.2, seed=0)
    model = keras.Sequential(
        [
            keras.layers.Input((28, 28, 1)),
            keras.layers.Conv2D(8, 3, strides=2, activation="relu"),
            keras.layers.Conv2D(16, 3, strides=2, activation="relu"),
            keras.layers.Flatten(),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(train.x, train.y, epochs=4, batch_size=64, verbose=0)
    model.save(model_path)
    float_top1 = float(np.mean(np.argmax(model.predict(held.x, verbose=0), axis=1) == held.y))

    rep = train.x[:100]

    def convert(kind: str) -> bytes:
        conv = tf_.lite.TFLiteConverter.from_keras_model(model)
        if kind == "fp16":
            conv.optimizations = [tf_.lite.Optimize.DEFAULT]
            conv.target_spec.supported_types = [tf_.float16]
        elif kind == "int8":
            conv.optimizations = [tf_.lite.Optimize.DEFAULT]
            conv.representative_dataset = lambda: ([s[None]] for s in rep)
            conv.target_spec.supported_ops = [tf_.lite.OpsSet.TFLITE_BUILTINS_INT8]
            conv.inference_input_type = tf_.int8
            conv.inference_output_type = tf_.int8
        with quiet_native_logs():
            return conv.convert()

    plan = [("cpu", "model_cpu_fp32.tflite", "fp32", None), ("cpu", "model_cpu_int8.tflite", "int8", None),
            ("gpu", "model_gpu.tflite", "fp16", "gpu")]
    backend = select_backend()
    with BundleWriter(dest) as w:
        artifacts = []
        for target, name, variant, accel in plan:
            (w.path / name).write_bytes(convert(variant))
            interp = backend.Interpreter(model_path=str(w.path / name))
            interp.allocate_tensors()
            top1 = float(np.mean(np.argmax(run_batch(interp, held.x), axis=1) == held.y))
            artifacts.append(
                ArtifactEntry(
                    target=target, file=name, sha256="", bytes=0, variant=variant,
                    input=TensorInfo.from_detail(interp.get_input_details()[0]).to_dict(),
                    output=TensorInfo.from_detail(interp.get_output_details()[0]).to_dict(),
                    accelerator=accel, accuracy={"top1": top1, "n": int(len(held.y))},
                )
            )
        from edgekit.intake import load_model

        w.manifest = Manifest(
            labels=ds.class_names,
            preprocess=DIGITS_SPEC.to_dict(),
            source_model=load_model(model_path).source_info(),
            artifacts=artifacts,
            variants=[{"variant": "float", "top1": float_top1}, {"variant": "pruned-50", "top1": float_top1 - 0.004}],
        )
    return dest


@pytest.fixture(scope="module")
def bench_bundle(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("bench")
    model_path = root / "digits_small.keras"
    return build_bench_bundle(root / "bundle", model_path), model_path


def _invoke(*args: str):
    return CliRunner().invoke(app, ["bench", *map(str, args)])


def _json(result) -> dict:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_bench_json_on_a_real_bundle(bench_bundle):
    from edgekit.bench.environment import ENVIRONMENT_KEYS
    from edgekit.bench.schema import validation_errors

    bundle, _ = bench_bundle
    doc = _json(_invoke(bundle, "--target", "cpu", "--runs", "20", "--warmup", "2", "--json"))
    assert validation_errors(doc) == []
    assert doc["mode"] == "frames" and doc["config"]["runs"] == 20 and doc["config"]["warmup"] == 2
    assert set(doc["environment"]) == set(ENVIRONMENT_KEYS)
    assert doc["environment"]["backend"] == "ai_edge_litert"
    rows = doc["results"]
    assert [r["name"] for r in rows] == ["cpu:fp32", "cpu:int8"]  # both variants of the one target
    for r in rows:
        lat = r["latency_ms"]
        assert r["status"] == "ok" and r["accelerator"] == "cpu" and r["fallback"] is None
        assert lat["n"] >= 20 and lat["min"] <= lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"]
        assert set(r["stages_ms"]) == {"preprocess", "invoke", "postprocess"}
        assert r["stages_ms"]["invoke"]["p50"] <= lat["p50"]
        assert r["init_ms"] > 0 and r["first_ms"] > 0 and r["fps"] > 0
        assert r["bytes"] == (bundle / r["file"]).stat().st_size
        assert r["rss_peak_mb"] > 0 and r["threads"] >= 1
        assert 0 < len(r["samples_ms"]) <= min(lat["n"], 2_000)  # the last repeat, sub-sampled for the JSON
        assert r["spread"] == {"p50": None, "p90": None}  # one repeat says nothing about noise
    assert rows[1]["bytes"] < rows[0]["bytes"]  # int8 is smaller than fp32


def test_human_table_names_every_artifact(bench_bundle):
    bundle, _ = bench_bundle
    result = _invoke(bundle, *FAST)
    assert result.exit_code == 0, result.output
    for name in ("cpu:fp32", "cpu:int8", "gpu:fp16", "p90", "process peak RSS"):
        assert name in result.output
    # 5 runs are no MLPerf run: the default profile does not use MLPerf's name.
    assert "MLPerf" not in result.output
    # What the memory column measures is said in words (TensorFlow is loaded in this test process).
    assert "whole bench process's (TensorFlow was loaded in it" in " ".join(result.output.split())
    # No GPU on this machine: the fp16 artifact is measured on the CPU, and says so.
    assert "measured this artifact on the CPU" in result.output


def test_compare_with_peers_plot_and_html(bench_bundle, tmp_path):
    bundle, model_path = bench_bundle
    png, page, out = tmp_path / "lat.png", tmp_path / "report.html", tmp_path / "r.json"
    from edgekit.resources import digits_dir

    doc = _json(
        _invoke(bundle, "--compare", "--model", model_path, "--calibration", digits_dir(), *FAST, "--repeats", "2",
                "--plot", png, "--html", page, "--output", out, "--json")
    )
    c = doc["comparison"]
    assert c["reference"] == "cpu:fp32"
    by_name = {r["name"]: r for r in c["rows"]}
    assert by_name["cpu:fp32"]["speedup_p50"] == 1.0
    assert by_name["cpu:int8"]["size_ratio"] > 2.5  # int8 weights are ~4x smaller than fp32
    assert set(c["recommended"]) == {"cpu", "gpu"}
    assert c["recommended"]["cpu"] in ("cpu:fp32", "cpu:int8")
    float_row = json.loads((bundle / "manifest.json").read_text())["variants"][0]
    assert c["reference_accuracy"] == float_row["top1"]  # the Keras float model's, from the evaluation rows
    # Evaluated but nothing to time: listed with their accuracy.
    assert [v["variant"] for v in c["variants"]] == ["float", "pruned-50"]
    gpu = next(r for r in doc["results"] if r["name"] == "gpu:fp16")
    # Measured on the CPU with the reason where no GPU is usable (a machine with one measures the GPU).
    assert gpu["requested"] == "gpu" and (gpu["accelerator"] == "gpu" or "CPU" in gpu["fallback"])
    peers = {r["name"]: r for r in doc["results"] if r["kind"] == "peer"}
    assert set(peers) == {"peer:tflite-default", "peer:onnxruntime", "peer:onnxruntime-int8"}
    for r in peers.values():
        if r["status"] == "skipped":
            assert "not installed" in r["reason"]
        else:
            assert r["latency_ms"]["n"] >= 5 and r["bytes"] > 0
    assert peers["peer:tflite-default"]["status"] == "ok"
    # ONNX Runtime's static int8 (QDQ) calibrated on the digits: a real int8 model, much smaller than fp32.
    ort8 = peers["peer:onnxruntime-int8"]
    if ort8["status"] == "ok":
        assert "QDQ int8" in ort8["via"] and ort8["bytes"] < peers["peer:onnxruntime"]["bytes"] * 0.75
    # The recommended CPU artifact against every measured peer, as a ratio, in words.
    rec = c["recommended"]["cpu"]
    for name, r in peers.items():
        if r["status"] == "ok":
            assert any(n.startswith(f"cpu: recommended {rec} is ") and f" {name}: p50 " in n for n in c["notes"]), c["notes"]
    assert all(len(r["repeats"]) == 2 for r in doc["results"] if r["status"] == "ok")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = page.read_text()
    assert "data:image/png;base64," in text and "cpu:int8" in text and "Environment" in text and "<script" not in text
    assert json.loads(out.read_text())["comparison"]["recommended"] == c["recommended"]


def test_compare_without_model_says_what_peers_need(bench_bundle):
    bundle, _ = bench_bundle
    doc = _json(_invoke(bundle, "--compare", "--target", "cpu", *FAST, "--json"))
    peers = [r for r in doc["results"] if r["kind"] == "peer"]
    assert peers and all(r["status"] == "skipped" and "--model" in r["reason"] for r in peers)


def test_int8_peer_without_calibration_says_what_it_needs(bench_bundle):
    bundle, model_path = bench_bundle
    doc = _json(_invoke(bundle, "--compare", "--model", model_path, "--target", "cpu", *FAST, "--json"))
    ort8 = next(r for r in doc["results"] if r["name"] == "peer:onnxruntime-int8")
    assert ort8["status"] == "skipped" and "--calibration" in ort8["reason"]


def test_mlperf_profile_refuses_short_runs_and_saved_results(bench_bundle, tmp_path):
    bundle, _ = bench_bundle
    result = _invoke(bundle, "--profile", "mlperf", "--runs", "100")
    assert result.exit_code != 0 and "--profile mlperf needs >= 1024 runs and >= 60 s" in " ".join(result.output.split())
    result = _invoke(bundle, "--profile", "fast")
    assert result.exit_code != 0 and "unknown bench profile 'fast'; expected one of: default, mlperf" in result.output
    saved = tmp_path / "r.json"
    assert _invoke(bundle, "--target", "cpu", *FAST, "--output", saved).exit_code == 0
    result = _invoke(saved, "--profile", "mlperf")
    assert result.exit_code != 0 and "--profile" in result.output


def test_end_to_end_over_a_folder_of_images(bench_bundle, tmp_path):
    from edgekit.resources import digits_dir

    bundle, _ = bench_bundle
    src = tmp_path / "frames"
    src.mkdir()
    for p in sorted(Path(digits_dir()).glob("3/*.png"))[:4]:
        shutil.copy(p, src / p.name)
    doc = _json(_invoke(bundle, "--end-to-end", "--source", src, "--target", "cpu", "--runs", "9", "--warmup", "1",
                        "--warmup-seconds", "0", "--min-seconds", "0", "--json"))
    assert doc["mode"] == "end_to_end" and doc["config"]["source"] == str(src)
    for r in doc["results"]:
        # 4 images, 9+ measured frames: the folder was read again, as a clip on loop.
        assert r["latency_ms"]["n"] >= 9
        assert set(r["stages_ms"]) == {"capture", "preprocess", "invoke", "postprocess"}


def test_gate_through_the_cli(bench_bundle, tmp_path):
    from edgekit.bench.schema import load_result

    bundle, _ = bench_bundle
    base = tmp_path / "base.json"
    assert _invoke(bundle, "--target", "cpu", *FAST, "--repeats", "2", "--output", base).exit_code == 0
    doc = load_result(base)
    # The same result against itself passes (every change is exactly 0) once the
    # budget is wider than these 5-frame runs' spread.
    same = _invoke(base, "--baseline", base, "--max-regression", "900%", "--json")
    assert same.exit_code == 0, same.output
    assert json.loads(same.stdout)["gate"]["outcome"] == "pass"
    # A baseline whose int8 artifact was 30 % smaller: the size regressed, exit 1, the row is
    # printed; size is deterministic, so noisy latencies do not hide it.
    row = next(r for r in doc["results"] if r["name"] == "cpu:int8")
    row["bytes"] = int(row["bytes"] * 0.7)
    smaller = tmp_path / "smaller.json"
    smaller.write_text(json.dumps(doc))
    failed = _invoke(base, "--baseline", smaller, "--max-regression", "10%")
    assert failed.exit_code == 1
    assert "regressed" in failed.output and "cpu:int8 bytes" in failed.output
    # A saved result cannot be re-measured: measurement options are refused, not ignored.
    refused = _invoke(base, "--runs", "5", "--compare")
    assert refused.exit_code == 2 and "--runs, --compare" in refused.output


def test_bench_runs_without_tensorflow(bench_bundle, tmp_path):
    """The device side: a bench in a process where importing tensorflow fails."""
    import subprocess
    import sys

    bundle, _ = bench_bundle
    code = (
        "import sys; sys.modules['tensorflow'] = None; sys.modules['tf_keras'] = None\n"
        "from edgekit.cli import app\n"
        f"sys.argv = ['edgekit', 'bench', {str(bundle)!r}, '--target', 'cpu', '--runs', '3', '--warmup-seconds', '0',"
        f" '--min-seconds', '0', '--output', {str(tmp_path / 'r.json')!r}, '--json']\n"
        "try:\n    app()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
        "assert 'tensorflow' not in [m for m in sys.modules if sys.modules[m] is not None]\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout)["results"][0]["status"] == "ok"
    assert (tmp_path / "r.json").is_file()


def test_bad_inputs_are_one_line_errors(bench_bundle, tmp_path):
    bundle, _ = bench_bundle
    cases = [
        ((tmp_path / "nope",), 2, "does not exist"),
        ((bundle, "--target", "edgetpu"), 2, "not in bundle"),
        ((bundle, "--runs", "5", "--min-seconds", "5", "--max-seconds", "1"), 2, "--min-seconds"),
        ((bundle, "--frame-size", "640by480"), 2, "WIDTHxHEIGHT"),
        ((bundle, "--end-to-end"), 2, "--source"),
        ((bundle, "--end-to-end", "--source", tmp_path / "missing.mp4"), 2, "does not exist"),
        ((bundle, "--model", tmp_path / "m.h5"), 2, "--compare"),
        ((bundle, "--baseline", tmp_path / "none.json"), 2, "does not exist"),
        ((bundle, "--baseline", bundle / "manifest.json", "--max-regression", "ten"), 2, "percentage"),
    ]
    for args, code, text in cases:
        result = _invoke(*args)
        assert result.exit_code == code, (args, result.output)
        assert text in result.output, (args, result.output)
        assert "Traceback" not in result.output


def test_tampered_artifact_stops_the_bench(bench_bundle, tmp_path):
    bundle, _ = bench_bundle
    copy = tmp_path / "tampered"
    shutil.copytree(bundle, copy)
    with open(copy / "model_cpu_int8.tflite", "ab") as f:
        f.write(b"\0")
    result = _invoke(copy, *FAST)
    assert result.exit_code != 0 and "integrity" in result.output


def test_unwritable_outputs_leave_nothing_partial(bench_bundle, tmp_path):
    bundle, _ = bench_bundle
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = _invoke(bundle, "--target", "cpu", *FAST, "--output", blocker / "r.json")
    assert result.exit_code == 2 and "cannot write" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_peers_in_a_tensorflow_free_bench_name_the_extra_to_install(bench_bundle):
    """quickstart's step 5: the human report prints the install hint as written (no '[compress]' eaten as markup)."""
    import subprocess
    import sys

    bundle, _ = bench_bundle
    code = (
        "import sys; sys.modules['tensorflow'] = None; sys.modules['tf_keras'] = None\n"
        "from edgekit.cli import app\n"
        f"sys.argv = ['edgekit', 'bench', {str(bundle)!r}, '--compare', '--target', 'cpu', '--runs', '3', '--warmup-seconds', '0',"
        " '--min-seconds', '0']\n"
        "try:\n    app()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env={**os.environ, "COLUMNS": "200"})
    assert out.returncode == 0, out.stderr[-2000:]
    text = out.stdout + out.stderr
    assert 'peer:onnxruntime skipped: needs the build side (TensorFlow) to convert the source model: pip install "edgekit[compress]"' in text, text[-3000:]
