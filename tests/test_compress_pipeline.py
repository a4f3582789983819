"""``edgekit compress`` end to end on real digit scans: bundle, measured variants, budget, bad input, interrupts."""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from edgekit.bundle import load_bundle, verify_bundle
from edgekit.cli import app
from edgekit.compress.progress import NullProgress
from edgekit.resources import digits_dir

pytestmark = pytest.mark.slow


def _cli(*args):
    return CliRunner().invoke(app, ["compress", *map(str, args)], terminal_width=200)


def _one_line(result):
    return " ".join(result.output.split())


@pytest.fixture(scope="module")
def trained(tf_keras, tmp_path_factory):
    """The example CNN trained briefly on the bundled digits (tf_keras .h5), with its preprocessing sidecar."""
    from edgekit.data import load_digits, split_dataset
    from edgekit.data.digits import DIGITS_SPEC
    from edgekit.example import build_digits_cnn, spec_path_for

    ds = load_digits()
    train, _ = split_dataset(ds, holdout=0.2, seed=0)
    tf_keras.utils.set_random_seed(0)
    model = build_digits_cnn(tf_keras)
    model.compile(optimizer=tf_keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy")
    model.fit(train.x, train.y, epochs=4, batch_size=32, verbose=0)
    path = tmp_path_factory.mktemp("compress_model") / "digits.h5"
    model.save(path)
    spec_path_for(path).write_text(json.dumps({"preprocess": DIGITS_SPEC.to_dict(), "labels": ds.class_names}))
    return path


@pytest.fixture(scope="module")
def built(trained, tmp_path_factory):
    """One CLI run: 50 % sparsity + the default recipe's QAT, for cpu (int8) and gpu (fp16), JSON output."""
    out = tmp_path_factory.mktemp("compress_out") / "bundle"
    with pytest.MonkeyPatch.context() as mp:
        conversions = _count_conversions(mp)
        result = _cli(trained, "--data", digits_dir(), "--out", out, "--sparsity", "0.5", "--epochs", "1",
                      "--calibration-samples", "40", "--max-accuracy-drop", "5", "--targets", "cpu,gpu", "--json")  # fmt: skip
    assert result.exit_code == 0, result.output
    return out, json.loads(result.stdout), conversions


def _count_conversions(mp) -> list[tuple[str, bool]]:
    """Record (target, whether the model has QAT fake-quant layers) for every real conversion step that runs.

    A step is a calibration ("calibrate" + the target asking), an int8 quantization, or a float conversion;
    the real functions run.
    """
    import edgekit.compile.convert as convert_mod

    calls: list[tuple[str, bool]] = []

    def qat(model):
        return any(type(l).__name__.startswith("Quantize") for l in model.layers)

    real_cal, real_q, real_f = convert_mod._calibrate, convert_mod._quantize, convert_mod._convert_float

    def cal(model, profile, *args, **kwargs):
        calls.append((f"calibrate for {profile.name}", qat(model)))
        return real_cal(model, profile, *args, **kwargs)

    def quantize(calibrated, profile, *args, **kwargs):
        calls.append((profile.name, None))
        return real_q(calibrated, profile, *args, **kwargs)

    def flt(model, profile, *args, **kwargs):
        calls.append((profile.name, qat(model)))
        return real_f(model, profile, *args, **kwargs)

    mp.setattr(convert_mod, "_calibrate", cal)
    mp.setattr(convert_mod, "_quantize", quantize)
    mp.setattr(convert_mod, "_convert_float", flt)
    return calls


def test_cli_writes_a_verified_bundle_with_every_variant_measured(built):
    out, payload, _ = built
    assert verify_bundle(out).ok
    m = load_bundle(out).manifest
    names = [v["variant"] for v in m.variants]
    assert names[:3] == ["float", "pruned 50%", "PQAT"] and names[3].startswith("cpu int8")
    for v in m.variants:
        for key in ("top1", "macro_precision", "macro_recall", "macro_f1", "bytes", "gzip_bytes", "drop"):
            assert v[key] is not None, (v["variant"], key)
        assert 0.0 <= v["top1"] <= 1.0 and v["n"] == payload["reports"]["data"]["held_out"]
    tfl = m.variants[3]
    art = m.artifact("cpu")
    assert tfl["kind"] == "tflite" and tfl["file"] == art.file == "model_cpu.tflite"
    assert tfl["sha256"] == art.sha256  # the scored conversion is the shipped file...
    assert tfl["top1"] == pytest.approx(art.accuracy["top1"])  # ...so the build's own score agrees
    assert art.input["dtype"] == "int8" and art.input["shape"][0] == 1
    assert m.variants[1]["gzip_bytes"] < 0.75 * m.variants[0]["gzip_bytes"]  # zeros compress
    assert payload["variants"] == m.variants == json.loads((out / "reports" / "variants.json").read_text())


def test_gpu_artifact_of_a_qat_run_is_really_fp16_and_scored_through_the_interpreter(built):
    from edgekit.compile.check import evaluate, load_interpreter
    from edgekit.compress.recipe import load_recipe
    from edgekit.data import load_dataset, split_dataset
    from edgekit.preprocess import PreprocessSpec
    from edgekit.tflite_graph import read_graph

    out, payload, _ = built
    bundle = load_bundle(out)
    m = bundle.manifest
    gpu = m.artifact("gpu")
    assert m.recipe["qat"] is True and gpu.recipe["qat"] is False and gpu.recipe["converted_from"] == "float_model"
    # the flatbuffer: float conv/dense ops fed by fp16 weight constants through DEQUANTIZE, no int8 anywhere
    graph = read_graph(bundle.artifact_path(gpu))
    main = [op for op in graph.ops if op.name in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")]
    assert main and not [
        op.name for op in main if any(graph.tensors[i].dtype in ("int8", "uint8") for i in (*op.inputs, *op.outputs) if i >= 0)
    ]
    assert {graph.tensors[op.outputs[0]].dtype for op in main} == {"float32"}
    deq = {op.index for op in graph.ops if op.name == "DEQUANTIZE"}
    assert deq and all(graph.tensors[graph.ops[i].inputs[0]].dtype == "float16" for i in deq)
    assert all(graph.producers()[op.inputs[1]] in deq for op in main)
    assert not any(t.dtype in ("int8", "uint8") for t in graph.tensors)
    # while the cpu artifact of the same run is int8 (from the QAT model)
    cpu_graph = read_graph(bundle.artifact_path(m.artifact("cpu")))
    assert {cpu_graph.tensors[op.outputs[0]].dtype for op in cpu_graph.ops if op.name in ("CONV_2D", "FULLY_CONNECTED")} == {"int8"}
    # its row is the artifact run through the interpreter on the same held-out split
    row = next(v for v in m.variants if v.get("file") == gpu.file)
    assert row["variant"] == "gpu fp16 .tflite" and row["kind"] == "tflite" and row["sha256"] == gpu.sha256
    rcp = load_recipe("default")
    ds = load_dataset(digits_dir(), PreprocessSpec.from_dict(m.preprocess), labelled=True, class_names=m.labels)
    _, held = split_dataset(ds, holdout=rcp.holdout, seed=rcp.seed)
    again = evaluate(load_interpreter(bundle.artifact_path(gpu), target="gpu"), held.x, held.y, num_classes=10)
    assert row["top1"] == again["top1"] == gpu.accuracy["top1"] and row["n"] == len(held.y)
    assert row["macro_f1"] == again["macro_f1"]
    pruned = next(v for v in m.variants if v["variant"] == "pruned 50%")  # the float model it was converted from
    assert abs(row["top1"] - pruned["top1"]) <= 0.01
    assert not [n for n in payload["notes"] if "fake-quant" in n]


def test_each_target_is_converted_once(built):
    out, payload, conversions = built
    comp = json.loads((out / "reports" / "compression.json").read_text())
    attempts = comp["budget"]["attempts"]
    # cpu: one calibration per model: the float model's, first, for the per-layer error report (a budget
    # attempt on the float model reuses it), then the QAT model's; one quantization per budget attempt
    # (the chosen one ships as is); gpu: one, from the model before QAT
    models = list(dict.fromkeys(a["model"] for a in attempts))
    calibrated = [False] + [True] * ("qat" in models)
    assert [c for c in conversions if c[0] == "calibrate for cpu"] == [("calibrate for cpu", q) for q in calibrated]
    assert [c for c in conversions if c[0] == "cpu"] == [("cpu", None)] * len(attempts)
    assert [c for c in conversions if c[0] == "gpu"] == [("gpu", False)]
    m = load_bundle(out).manifest
    assert [v["variant"] for v in m.variants][3:] == ["cpu int8 .tflite", "gpu fp16 .tflite"]
    assert m.variants[3]["top1"] == comp["budget"]["chosen"]["top1"]  # the budget's scored conversion is the shipped file
    timings = json.loads((out / "reports" / "build.json").read_text())["timings"]
    assert set(timings["build_stages"]) >= {"convert", "check_numerics", "analyse", "evaluate", "write", "total"}
    assert {"load", "budget", "layer_errors"} <= set(timings["phases"])
    assert timings["conversions"]["reused"] >= 1 and timings["conversions"]["calibrations"] == len(calibrated)
    assert {"build.convert", "build.evaluate", "total"} <= set(payload["timings"])


def test_manifest_holds_the_recipe_actually_used(built):
    out, payload, _ = built
    m = load_bundle(out).manifest
    assert m.recipe == payload["recipe"]
    assert m.recipe["sparsity"] == 0.5 and m.recipe["epochs"] == 1 and m.recipe["calibration_samples"] == 40  # flags
    assert m.recipe["qat"] is True and m.recipe["description"].startswith("QAT")  # from the default recipe
    art = m.artifact("cpu")
    assert art.recipe["calibration_samples"] == 40 and art.recipe["float_fallback_layers"] == []


def test_reports_hold_sparsity_per_layer_and_per_layer_quant_error(built, trained):
    from edgekit.intake import load_model

    out, payload, _ = built
    layers = [l for l in load_model(trained).model.layers if type(l).__name__ in ("Conv2D", "Dense")]
    first, last = layers[0].name, layers[-1].name  # auto-generated names depend on what ran before
    comp = json.loads((out / "reports" / "compression.json").read_text())
    pr = comp["pruning"]
    assert abs(pr["achieved"] - 0.5) <= 0.01
    assert {r["name"] for r in pr["layers"] if r["pruned"]} == {l.name for l in layers[1:-1]}
    assert comp["qat"]["sparsity_after"] == pytest.approx(comp["qat"]["sparsity_before"], abs=1e-6)
    errors = json.loads((out / "reports" / "quant_layer_errors.json").read_text())
    named = [e for e in errors if e["layer"]]
    assert {first, last} <= {e["layer"] for e in named}
    assert [e["rmse_over_scale"] for e in errors] == sorted((e["rmse_over_scale"] for e in errors), reverse=True)
    assert comp["budget"]["met"] is True and comp["budget"]["max_accuracy_drop"] == 5


def test_budget_loop_keeps_the_most_error_prone_layers_in_float_and_reports_the_closest(trained):
    from edgekit.compile.convert import convert_model
    from edgekit.compress.calibrate import fallback_candidates, fit_budget, layer_errors
    from edgekit.compress.evaluate import tflite_row
    from edgekit.data import load_digits, split_dataset
    from edgekit.intake import load_model
    from edgekit.profiles import get_target
    from edgekit.tflite_graph import read_graph

    model = load_model(trained).model
    train, held = split_dataset(load_digits(), holdout=0.2, seed=0)
    rep = train.x[::40]
    errors = layer_errors(model, rep)
    candidates = fallback_candidates(errors, limit=3)
    assert candidates[0] == errors[0].layer and len(candidates) == 3
    cpu = get_target("cpu")
    result = fit_budget(
        convert=lambda key, layers: convert_model(model, cpu, rep, float_fallback_layers=list(layers)).content,
        score=lambda content, label: tflite_row(label, content, held.x, held.y, num_classes=10, target="cpu"),
        reference_top1=1.01,  # unreachable: every attempt is tried
        max_drop=0.5,
        main_model="float",
        candidates=candidates,
    )
    assert not result.met
    assert [a.float_layers for a in result.attempts] == [[], candidates[:1], candidates[:2], candidates[:3]]
    assert result.chosen.drop == min(a.drop for a in result.attempts)
    assert "budget not met" in result.message and "closest" in result.message
    last = read_graph(result.attempts[-1].content)
    floats = {op.name for op in last.ops if any(last.tensors[i].dtype == "float32" for i in op.outputs)}
    assert floats - {"DEQUANTIZE"}  # the kept layers really run in float
    first = read_graph(result.attempts[0].content)
    assert not [op for op in first.ops if any(first.tensors[i].dtype == "float32" for i in op.outputs)]


def test_unmet_budget_exits_1_says_so_and_still_builds_the_closest(trained, tmp_path):
    # A model without a sidecar takes --preprocess; 95 % sparsity after one epoch cannot stay within 0 points.
    model = tmp_path / "nosidecar.h5"
    shutil.copy(trained, model)
    out = tmp_path / "b"
    result = _cli(model, "--data", digits_dir(), "--out", out, "--preprocess", "unit", "--sparsity", "0.95",
                  "--epochs", "1", "--no-qat", "--max-accuracy-drop", "0", "--calibration-samples", "20")  # fmt: skip
    assert result.exit_code == 1, result.output
    assert "accuracy budget not met" in _one_line(result) and "Traceback" not in result.output
    comp = json.loads((out / "reports" / "compression.json").read_text())
    assert comp["budget"]["met"] is False and "already loses" in comp["budget"]["message"]
    assert comp["data"]["preprocess_from"] == "preset unit"
    assert verify_bundle(out).ok


class _Interrupt(NullProgress):
    """Presses Ctrl-C when the step whose description contains ``at`` starts."""

    def __init__(self, at: str):
        self.at = at
        self.seen: list[str] = []

    def task(self, description, total):
        self.seen.append(description)
        if self.at in description:
            raise KeyboardInterrupt
        return super().task(description, total)


def _snapshot(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("at", ["quantization-aware", "int8 calibration"], ids=["during-qat", "during-calibration"])
def test_ctrl_c_leaves_an_earlier_bundle_untouched_and_nothing_partial(built, trained, tmp_path, at):
    from edgekit.compress import compress

    out = tmp_path / "bundle"
    shutil.copytree(built[0], out)
    before = _snapshot(out)
    progress = _Interrupt(at)
    with pytest.raises(KeyboardInterrupt):
        compress(trained, digits_dir(), out, overrides={"epochs": 1, "calibration_samples": 10}, progress=progress)
    assert any(at in s for s in progress.seen)
    assert _snapshot(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle"]


# --------------------------------------------------------------- bad input


def _classes(tmp_path: Path, classes: int, per_class: int) -> Path:
    root = tmp_path / f"data_{classes}x{per_class}"
    for c in range(classes):
        (root / str(c)).mkdir(parents=True)
        for f in sorted((digits_dir() / str(c)).glob("*.png"))[:per_class]:
            shutil.copy(f, root / str(c) / f.name)
    return root


@pytest.mark.parametrize(
    ("case", "match"),
    [
        ("missing-data", "does not exist"),
        ("three-classes", "has 3 classes"),
        ("too-few-per-class", "fewer than 5 samples"),
        ("no-preprocess", "no preprocessing spec"),
        ("wrong-spec-shape", "model expects 28x28x1"),
        ("out-not-a-bundle", "not an edgekit bundle"),
        ("unknown-target", "tpu9000"),
    ],
)
def test_bad_input_is_one_clear_line_and_writes_nothing(trained, tmp_path, case, match):
    model, data, out, extra = trained, digits_dir(), tmp_path / "b", []
    if case == "missing-data":
        data = tmp_path / "nope"
    elif case == "three-classes":  # labels that do not match the model's 10 outputs
        model = tmp_path / "bare.h5"
        shutil.copy(trained, model)
        data, extra = _classes(tmp_path, 3, 8), ["--preprocess", "unit"]
    elif case == "too-few-per-class":
        data = _classes(tmp_path, 10, 3)
    elif case == "no-preprocess":
        model = tmp_path / "bare.h5"
        shutil.copy(trained, model)
    elif case == "wrong-spec-shape":
        spec = tmp_path / "spec.json"
        spec.write_text(json.dumps({"input_size": [32, 32], "channels": 1, "color_order": "gray"}))
        extra = ["--preprocess", spec]
    elif case == "out-not-a-bundle":
        out.mkdir()
        (out / "keep.txt").write_text("mine")
    elif case == "unknown-target":
        extra = ["--targets", "cpu,tpu9000"]
    result = _cli(model, "--data", data, "--out", out, *extra)
    assert result.exit_code == 2, result.output
    assert match in _one_line(result)
    assert "Traceback" not in result.output
    if case == "out-not-a-bundle":
        assert [p.name for p in out.iterdir()] == ["keep.txt"]
    else:
        assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if ".partial" in p.name]


def test_qat_on_a_model_tfmot_refuses_is_a_one_line_reason(tf_keras):
    from edgekit.compress.qat import QATUnavailable, quantize_aware

    class Subclassed(tf_keras.Model):  # tfmot (and clone_model) only take Sequential/functional models
        def __init__(self):
            super().__init__(name="subclassed")
            self.dense = tf_keras.layers.Dense(2, activation="softmax")

        def call(self, x):
            return self.dense(x)

    model = Subclassed()
    x = np.random.default_rng(0).normal(size=(8, 4)).astype(np.float32)
    model(x)
    with pytest.raises(QATUnavailable) as e:
        quantize_aware(model, x, np.zeros(8, np.int64), epochs=1)
    assert "\n" not in e.value.message and "post-training int8" in str(e.value)


def test_pruning_switches_are_cli_flags_and_land_in_the_saved_recipe(trained, tmp_path):
    out = tmp_path / "b"
    result = _cli(trained, "--data", digits_dir(), "--out", out, "--sparsity", "0.5", "--prune-head", "--prune-min-weights", "0",
                  "--no-qat", "--epochs", "1", "--calibration-samples", "16", "--targets", "cpu-fp32", "--json")  # fmt: skip
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["recipe"]["prune_output_layer"] is True and payload["recipe"]["prune_min_weights"] == 0
    layers = payload["reports"]["pruning"]["layers"]
    assert layers and all(layer["pruned"] for layer in layers)  # the head and the smallest conv too
    assert load_bundle(out).manifest.recipe["prune_output_layer"] is True

    bad = _cli(trained, "--data", digits_dir(), "--out", tmp_path / "c", "--sparsity", "0.5", "--prune-min-weights", "-1")
    assert bad.exit_code != 0 and "prune_min_weights=-1" in _one_line(bad) and "Traceback" not in bad.output
    assert not (tmp_path / "c").exists()
