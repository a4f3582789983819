"""Building bundles from a real small CNN trained on the real digits, for every target."""
from __future__ import annotations

import dataclasses
import json
import sys

import numpy as np
import pytest

from edgekit.bundle import load_bundle, verify_bundle
from edgekit.compile.build import build_bundle, check_build_request
from edgekit.data.digits import DIGITS_SPEC
from edgekit.errors import ConfigError, DataError, TargetError
from edgekit.metrics import classification_metrics, size_report
from edgekit.profiles import get_target, list_targets
from edgekit.tflite_graph import read_graph

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def digits():
    from edgekit.data import load_digits, split_dataset

    ds = load_digits()
    train, test = split_dataset(ds, holdout=0.2, seed=0)
    return ds.class_names, train, test


@pytest.fixture(scope="module")
def trained(tf_keras, digits):
    names, train, test = digits
    tf_keras.utils.set_random_seed(0)
    L = tf_keras.layers
    m = tf_keras.Sequential(
        [
            tf_keras.Input((28, 28, 1)),
            L.Conv2D(8, 3, activation="relu", name="c1"),
            L.MaxPooling2D(name="p1"),
            L.Conv2D(16, 3, activation="relu", name="c2"),
            L.MaxPooling2D(name="p2"),
            L.Dropout(0.1, name="drop"),
            L.Flatten(name="flat"),
            L.Dense(10, activation="softmax", name="fc"),
        ],
        name="digits_tiny",
    )
    m.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    m.fit(train.x, train.y, epochs=4, batch_size=64, verbose=0)
    keras_top1 = float(np.mean(np.argmax(m.predict(test.x, verbose=0), axis=1) == test.y))
    assert keras_top1 > 0.8, "the fixture model should have learned the digits"
    return m, keras_top1


def build(out, trained, digits, **kw):
    model = kw.pop("model", trained[0])
    names, train, test = digits
    kw.setdefault("targets", ["cpu"])
    kw.setdefault("representative", train.x[:64])
    return build_bundle(
        out, model=model, spec=DIGITS_SPEC, labels=names,
        eval_data=(test.x, test.y), source_model={"name": "digits_tiny", "format": "in-memory"},
        recipe={"sparsity": 0.0}, progress=False, **kw,
    )


@pytest.mark.parametrize("target", list_targets())
def test_bundle_for_each_target(tmp_path, trained, digits, target):
    profile = get_target(target)
    result = build(tmp_path / "b", trained, digits, targets=[target])
    assert result.failures == [] and verify_bundle(result.path).ok
    entry = result.bundle.manifest.artifact(target)
    assert entry.file == profile.artifact and entry.variant == profile.quantization
    assert entry.accelerator == profile.accelerator
    # static batch-1 shapes, I/O dtype from the profile, quantization parameters recorded
    graph = read_graph(result.bundle.artifact_path(entry))
    assert all(not t.dynamic for t in graph.tensors)
    assert entry.input["shape"] == [1, 28, 28, 1] and entry.output["shape"] == [1, 10]
    assert entry.input["dtype"] == entry.output["dtype"] == profile.io_dtype
    assert (entry.input["scale"] > 0) == (profile.io_dtype != "float32")
    # measured through the interpreter, close to the Keras model's accuracy
    _, keras_top1 = trained
    assert entry.accuracy["n"] == len(digits[2].x)
    assert entry.accuracy["top1"] == pytest.approx(keras_top1, abs=0.03)
    assert set(entry.accuracy) >= {"top1", "macro_precision", "macro_recall", "macro_f1", "confusion"}
    # numeric check and compatibility summary in the manifest, full reports on disk
    comp = entry.compatibility
    assert comp["numeric"]["ok"] and comp["numeric"]["tolerance"] == profile.tolerance
    assert comp["analysis"] == profile.analysis and 0 < comp["fraction_ops"] <= 1
    report = json.loads((result.path / comp["report"]).read_text())
    # every op is placed, except the GPU delegate's fp16 weight DEQUANTIZE ops (folded into its kernels)
    folded = report["extra"].get("fp16_dequantize_ops", [])
    assert report["target"] == target and len(report["placements"]) == len(graph.ops) - len(folded)
    assert (len(folded) > 0) == (profile.quantization == "fp16")
    assert (result.path / f"reports/compat_{target}.txt").read_text().startswith("Compatibility report")
    assert entry.recipe["quantization"] == profile.quantization and entry.recipe["sparsity"] == 0.0
    assert entry.recipe["calibration_samples"] == (64 if profile.quantization == "int8" else 0)
    m = result.bundle.manifest
    assert m.labels == digits[0] and m.preprocess["input_size"] in ([28, 28], (28, 28))
    assert {"edgekit", "tensorflow", "tf_keras", "litert"} <= set(m.tools)


def _hide_edgetpu_compiler(monkeypatch) -> None:
    """Take a real edgetpu_compiler off PATH (a build machine may have it) for tests of the not-compiled path."""
    import os
    import shutil

    keep = [d for d in os.environ.get("PATH", "").split(os.pathsep) if not shutil.which("edgetpu_compiler", path=d)]
    monkeypatch.setenv("PATH", os.pathsep.join(keep))


def test_every_target_in_one_bundle(tmp_path, trained, digits, monkeypatch):
    _hide_edgetpu_compiler(monkeypatch)
    result = build(tmp_path / "b", trained, digits, targets=list_targets())
    assert [a.file for a in result.artifacts] == [get_target(t).artifact for t in list_targets()]
    assert [a.file for a in result.artifacts][:3] == ["model_cpu.tflite", "model_gpu.tflite", "model_edgetpu.tflite"]
    tpu = result.bundle.manifest.artifact("edgetpu")
    assert tpu.status == "not_compiled"  # no edgetpu_compiler on PATH
    assert tpu.compatibility["compiler"]["command"].startswith("edgetpu_compiler -s -o ")
    assert tpu.compatibility["status"] == "full" and tpu.compatibility.get("split") is None
    cpu = result.reports["cpu"]
    # this LiteRT's XNNPACK takes every conv and the dense layer; int8 SOFTMAX stays on the builtin kernel
    assert {p.op for p in cpu.placements if p.on_accelerator} >= {"CONV_2D", "FULLY_CONNECTED"}
    assert cpu.fraction_macs == 1.0
    assert set(json.loads((result.path / "reports/build.json").read_text())["targets"]) == set(list_targets())


def test_device_picks_its_targets(tmp_path, trained, digits):
    result = build(tmp_path / "b", trained, digits, targets=None, device="coral-usb")
    assert [a.target for a in result.artifacts] == ["edgetpu", "cpu"]


def test_float_fallback_layer_stays_float(tmp_path, trained, digits):
    result = build(tmp_path / "b", trained, digits, targets=["cpu"], float_fallback_layers=["c2"])
    entry = result.bundle.manifest.artifact("cpu")
    assert entry.recipe["float_fallback_layers"] == ["c2"]
    graph = read_graph(result.bundle.artifact_path(entry))
    kinds = [(op.name, graph.tensors[op.outputs[0]].dtype) for op in graph.ops]
    assert kinds.count(("CONV_2D", "float32")) == 1 and kinds.count(("CONV_2D", "int8")) == 1
    assert entry.input["dtype"] == "int8"  # the I/O stays what the profile says
    assert any("run in float" in n for n in result.reports["cpu"].notes)
    assert entry.compatibility["numeric"]["ok"]


@pytest.fixture(scope="module")
def qat_model(trained, digits):
    """The fixture model after one epoch of quantization-aware training (fake-quant nodes on every layer)."""
    from edgekit.compress.qat import quantize_aware

    _, train, _ = digits
    qat, _ = quantize_aware(trained[0], train.x[:512], train.y[:512], epochs=1)
    return qat


def _main_op_dtypes(graph):
    """(op name, dtypes of its inputs and outputs) for the compute ops of a graph."""
    return [
        (op.name, {graph.tensors[i].dtype for i in (*op.inputs, *op.outputs) if i >= 0} - {"int32"})
        for op in graph.ops
        if op.name in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")
    ]


def test_float_targets_are_converted_from_the_float_model(tmp_path, trained, qat_model, digits):
    """A QAT model's fake-quant nodes would make the fp16 artifact int8 inside; float_model keeps it fp16."""
    from edgekit.bundle import sha256_file

    float_model, keras_top1 = trained
    names, train, test = digits
    caller = [{"variant": "float", "kind": "keras", "top1": keras_top1}]
    result = build(tmp_path / "b", trained, digits, model=qat_model, float_model=float_model, targets=["cpu", "gpu"],
                   variants=caller, reference_top1=keras_top1)  # fmt: skip
    assert result.failures == [] and verify_bundle(result.path).ok
    m = result.bundle.manifest
    gpu, cpu = m.artifact("gpu"), m.artifact("cpu")
    # the gpu artifact really is fp16: float compute ops, fp16 weight constants dequantized to float32
    graph = read_graph(result.bundle.artifact_path(gpu))
    main = _main_op_dtypes(graph)
    assert len(main) == 3 and all(dtypes == {"float32"} for _, dtypes in main), main
    assert not any(t.dtype in ("int8", "uint8") for t in graph.tensors)
    deq = [op for op in graph.ops if op.name == "DEQUANTIZE"]
    assert deq and all(graph.tensors[op.inputs[0]].dtype == "float16" and graph.tensors[op.inputs[0]].is_const for op in deq)
    for op in graph.ops:  # every conv/dense weight comes out of a DEQUANTIZE of fp16 constants
        if op.name in ("CONV_2D", "FULLY_CONNECTED"):
            assert graph.producers().get(op.inputs[1]) in {d.index for d in deq}
    assert gpu.input["dtype"] == gpu.output["dtype"] == "float32"
    assert gpu.compatibility["numeric"]["ok"]  # compared with the float model, within the fp16 tolerance
    assert gpu.accuracy["top1"] == pytest.approx(keras_top1, abs=0.01)
    assert gpu.recipe["converted_from"] == "float_model" and "converted_from" not in cpu.recipe
    # the int8 target still comes from the QAT model
    assert {d for _, dtypes in _main_op_dtypes(read_graph(result.bundle.artifact_path(cpu))) for d in dtypes} == {"int8"}
    # one evaluation row per artifact, after the caller's, scored through the interpreter
    assert [v["variant"] for v in m.variants] == ["float", "cpu int8 .tflite", "gpu fp16 .tflite"]
    assert m.variants[0] == caller[0]
    for row, art in zip(m.variants[1:], (cpu, gpu)):
        path = result.bundle.artifact_path(art)
        assert (row["kind"], row["target"], row["file"], row["sha256"]) == ("tflite", art.target, art.file, sha256_file(path))
        assert row["top1"] == art.accuracy["top1"] and row["n"] == len(test.x)
        assert {k: row[k] for k in ("bytes", "gzip_bytes")} == size_report(path)
        assert row["macro_f1"] == art.accuracy["macro_f1"] and row["drop"] == pytest.approx((keras_top1 - row["top1"]) * 100, abs=5e-5)  # drop is rounded to 4 decimals
    assert json.loads((result.path / "reports/variants.json").read_text()) == m.variants
    # `bench --compare` takes these rows for the timed artifacts, not as variants without an artifact
    from edgekit.bench.compare import compare_rows

    untimed = compare_rows([], m.variants, artifact_hashes={a.sha256 for a in m.artifacts})["variants"]
    assert [v["variant"] for v in untimed] == ["float"]


def test_without_float_model_one_model_is_converted_for_every_target(tmp_path, trained, qat_model, digits):
    # backward compatible: the QAT model for the fp16 target too, whose fake-quant nodes give int8 compute ops
    result = build(tmp_path / "b", trained, digits, model=qat_model, targets=["gpu"])
    gpu = result.bundle.manifest.artifact("gpu")
    assert gpu.input["dtype"] == "float32" and "converted_from" not in gpu.recipe
    assert any("int8" in dtypes for _, dtypes in _main_op_dtypes(read_graph(result.bundle.artifact_path(gpu))))
    assert [v["variant"] for v in result.bundle.manifest.variants] == ["gpu fp16 .tflite"]
    assert "drop" not in result.bundle.manifest.variants[0]  # no reference_top1 given


def test_a_float_model_that_does_not_fit_is_refused_before_any_work(tmp_path, tf_keras, trained, digits):
    L = tf_keras.layers
    other = tf_keras.Sequential([tf_keras.Input((28, 28, 1)), L.Flatten(), L.Dense(5, activation="softmax")])
    with pytest.raises(ConfigError, match=r"Expected input \(28, 28, 1\), output \(10,\); received input \(28, 28, 1\), output \(5,\)"):
        build(tmp_path / "b", trained, digits, float_model=other, targets=["gpu"])
    assert not (tmp_path / "b").exists()


def test_a_given_conversion_is_shipped_without_converting_again(tmp_path, monkeypatch, trained, digits):
    import hashlib

    import edgekit.compile.convert as convert_mod
    from edgekit.bundle import sha256_file

    model, _ = trained
    _, train, _ = digits
    given = convert_mod.convert_model(model, get_target("cpu"), train.x[:64])
    calls = []
    real = convert_mod.ConversionCache.convert
    monkeypatch.setattr(convert_mod.ConversionCache, "convert",
                        lambda self, m, profile, *a, **k: calls.append(profile.name) or real(self, m, profile, *a, **k))  # fmt: skip
    result = build(tmp_path / "b", trained, digits, targets=["cpu", "edgetpu"], converted={"cpu": given})
    assert calls == ["edgetpu"]
    cpu = result.bundle.manifest.artifact("cpu")
    assert sha256_file(result.bundle.artifact_path(cpu)) == cpu.sha256 == hashlib.sha256(given.content).hexdigest()
    assert cpu.compatibility["numeric"]["ok"] and cpu.accuracy["top1"] > 0.8
    # a conversion made with other settings than the build's is refused before any work
    with pytest.raises(ConfigError, match=r"converted\['cpu'\] was calibrated on 64 samples but this build's representative set has 8"):
        build(tmp_path / "c", trained, digits, targets=["cpu"], converted={"cpu": given}, representative=train.x[:8])
    with pytest.raises(ConfigError, match="converted names target 'gpu', which this build does not make; its targets are: cpu"):
        build(tmp_path / "c", trained, digits, targets=["cpu"], converted={"gpu": given})
    with pytest.raises(ConfigError, match=r"keeps \[\] in float but this build keeps \['c2'\]"):
        build(tmp_path / "c", trained, digits, targets=["cpu"], converted={"cpu": given}, float_fallback_layers=["c2"])
    assert not (tmp_path / "c").exists()


def test_float_fallback_is_refused_up_front_where_the_target_forbids_it(trained, digits):
    model, _ = trained
    with pytest.raises(TargetError, match="edgetpu cannot keep layers in float"):
        check_build_request(model=model, targets=["cpu", "edgetpu"], representative=digits[1].x[:4], float_fallback_layers=["c2"])
    with pytest.raises(ConfigError, match="'nope', not a layer of model 'digits_tiny'"):
        check_build_request(model=model, targets=["cpu"], representative=digits[1].x[:4], float_fallback_layers=["nope"])


def test_one_failing_target_still_writes_the_others(tmp_path, trained, digits):
    # Dropout has no op at inference, so the int8 cpu target cannot keep it in float;
    # the fp16 gpu target is float anyway and builds.
    result = build(tmp_path / "b", trained, digits, targets=["cpu", "gpu"], float_fallback_layers=["drop"])
    assert [a.target for a in result.artifacts] == ["gpu"]
    assert result.failures == result.bundle.manifest.failures
    (fail,) = result.failures
    assert fail["target"] == "cpu" and fail["stage"] == "convert" and "'drop' have no op of their own" in fail["reason"]
    assert not (result.path / "model_cpu.tflite").exists()  # nothing unlisted ships
    assert json.loads((result.path / "reports/build.json").read_text())["failures"][0]["target"] == "cpu"
    assert verify_bundle(result.path).ok


def test_every_target_failing_writes_nothing_and_keeps_the_old_bundle(tmp_path, tf_keras, trained, digits):
    out = tmp_path / "b"
    old = build(out, trained, digits, targets=["gpu"])
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    from edgekit._tf import tf

    L = tf_keras.layers
    bad = tf_keras.Sequential(
        [tf_keras.Input((28, 28, 1)), L.Flatten(), L.Dense(10), L.Lambda(lambda t: tf().math.erf(t), name="erf")]
    )  # ERF has no TFLite builtin kernel: every conversion fails
    with pytest.raises(TargetError, match="no target could be built.*erf|Erf"):
        build_bundle(out, model=bad, spec=dataclasses.replace(DIGITS_SPEC, output="logits"), labels=digits[0], representative=digits[1].x[:8],
                     targets=["cpu", "gpu"], progress=False)
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before
    assert load_bundle(out).manifest.created == old.bundle.manifest.created
    assert [p.name for p in tmp_path.iterdir()] == ["b"]  # no partial or old folders left beside it


def test_custom_target_profile_end_to_end(tmp_path, trained, digits):
    profile = tmp_path / "toy.toml"
    profile.write_text(
        'kind = "target"\nname = "toy"\ndescription = "float32 on the CPU"\nartifact = "model_toy.tflite"\n'
        'quantization = "fp32"\nio_dtype = "float32"\nbatch = 1\nanalysis = "xnnpack"\n[check]\ntolerance = 0.0001\n'
    )
    result = build(tmp_path / "b", trained, digits, targets=[str(profile)])
    entry = result.bundle.manifest.artifact("toy")
    assert entry.variant == "fp32" and entry.input["dtype"] == "float32"
    assert entry.compatibility["numeric"]["max_error"] < 1e-4
    assert entry.accuracy["top1"] == pytest.approx(trained[1], abs=1e-9)  # float32: same predictions as Keras


def test_bad_profile_behaviour_name_is_caught_before_work(tmp_path, trained, digits):
    profile = tmp_path / "npu.toml"
    profile.write_text(
        'kind = "target"\nname = "npu"\ndescription = "d"\nartifact = "model_npu.tflite"\nquantization = "int8"\n'
        'io_dtype = "int8"\nbatch = 1\nanalysis = "npu-magic"\n[check]\ntolerance = 0.1\n'
    )
    with pytest.raises(ConfigError, match=r"npu.toml: key 'analysis' is 'npu-magic'; expected one of: xnnpack, gpu, edgetpu"):
        build(tmp_path / "b", trained, digits, targets=[str(profile)])
    assert not (tmp_path / "b").exists()


@pytest.mark.parametrize(
    "change, error, match",
    [
        ({"representative": np.zeros((4, 28, 28, 3), np.float32)}, DataError, r"representative has shape \(4, 28, 28, 3\)"),
        ({"representative": None}, DataError, "need representative samples"),
        ({"representative": np.full((4, 28, 28, 1), np.nan, np.float32)}, DataError, "NaN"),
        ({"labels": ["a", "b"]}, DataError, "2 labels given but the model outputs 10 classes"),
        ({"eval_data": (np.zeros((3, 28, 28, 1), np.float32), np.array([0, 1, 12]))}, DataError, "labels span 0..12"),
        ({"targets": ["tpu"]}, TargetError, "valid targets: cpu, gpu, edgetpu"),
        ({"device": "pi9", "targets": None}, TargetError, "valid devices"),
        # a spec given as its dict is validated like the object
        ({"spec": {**DIGITS_SPEC.to_dict(), "bogus": 1}}, ConfigError, "unknown preprocess key 'bogus'"),
        ({"spec": {**DIGITS_SPEC.to_dict(), "input_size": [32, 32]}}, DataError,
         r"spec makes \(32, 32, 1\) images but the model expects \(28, 28, 1\)"),
        ({"spec": {**DIGITS_SPEC.to_dict(), "scale": "1/255"}}, ConfigError, "preprocess scale='1/255' is not valid"),
        # the model ends in softmax: its outputs are probabilities, the device must not softmax them again
        ({"spec": dataclasses.replace(DIGITS_SPEC, output="logits")}, ConfigError,
         r"spec says output='logits' but the model already gives probabilities.*Set the spec's output='probabilities'"),
    ],
)
def test_bad_requests_fail_before_any_conversion(tmp_path, trained, digits, change, error, match):
    model, _ = trained
    names, train, test = digits
    kw = dict(model=model, spec=DIGITS_SPEC, labels=names, representative=train.x[:8], eval_data=(test.x, test.y),
              targets=["cpu"], progress=False)
    kw.update(change)
    with pytest.raises(error, match=match):
        build_bundle(tmp_path / "b", **kw)
    assert not (tmp_path / "b").exists() and list(tmp_path.iterdir()) == []


def test_spec_output_must_match_a_model_without_softmax(tmp_path, tf_keras, digits):
    names, train, test = digits
    tf_keras.utils.set_random_seed(0)
    L = tf_keras.layers
    logits = tf_keras.Sequential([tf_keras.Input((28, 28, 1)), L.Conv2D(4, 3, activation="relu"), L.Flatten(), L.Dense(10)])
    kw = dict(model=logits, labels=names, representative=train.x[:16], targets=["cpu"], progress=False)
    with pytest.raises(ConfigError, match=r"spec says output='probabilities' but the model's outputs are not probabilities") as e:
        build_bundle(tmp_path / "b", spec=DIGITS_SPEC, **kw)
    assert "Set the spec's output='logits'" in str(e.value) and "\n" not in str(e.value)
    assert not (tmp_path / "b").exists()
    result = build_bundle(tmp_path / "b", spec=dataclasses.replace(DIGITS_SPEC, output="logits").to_dict(), **kw)
    assert result.bundle.manifest.preprocess == dataclasses.replace(DIGITS_SPEC, output="logits").to_dict()


def test_target_whose_artifact_litert_refuses_is_a_recorded_failure(tmp_path, tf_keras, digits):
    """Activations that overflow to inf calibrate to an inf scale: XNNPACK refuses the int8 artifact."""
    from edgekit.compile.convert import convert_model
    from edgekit.compile.xnnpack import check_xnnpack

    names, train, test = digits
    L = tf_keras.layers
    m = tf_keras.Sequential(
        [tf_keras.Input((28, 28, 1)), L.Lambda(lambda t: t * 1e38 * 1e38, name="overflow"), L.Flatten(), L.Dense(10)]
    )
    result = build_bundle(
        tmp_path / "b", model=m, spec=dataclasses.replace(DIGITS_SPEC, output="logits"), labels=names,
        representative=train.x[:16], targets=["cpu", "gpu"], progress=False,
    )
    assert [a.target for a in result.artifacts] == ["gpu"]
    (fail,) = result.failures
    assert fail["target"] == "cpu" and fail["stage"] == "convert" and "XNNPACK" in fail["reason"]
    assert verify_bundle(result.path).ok
    # The analysis on its own says the same, as a typed error
    path = tmp_path / "model_cpu.tflite"
    path.write_bytes(convert_model(m, get_target("cpu"), train.x[:16]).content)
    with pytest.raises(TargetError, match=r"target cpu: ai_edge_litert .* cannot load model_cpu\.tflite: .*inf"):
        check_xnnpack(path)


def test_first_line_of_an_exception():
    from edgekit.errors import first_line

    assert first_line(RuntimeError("\n  bad input  \nmore")) == "bad input"
    assert first_line(RuntimeError("")) == "RuntimeError"  # no text: the type, not an IndexError
    assert first_line(ValueError("  \n ")) == "ValueError"
    mlir = "<unknown>:0: note: see current operation\nloc(fused[...]): error: 'tf.Erf' op is neither a custom op nor a flex op"
    assert first_line(Exception(mlir), marker="error:") == "'tf.Erf' op is neither a custom op nor a flex op"
    assert first_line(Exception("x" * 500)) == "x" * 300
    # LiteRT's error reporter glues its native messages together with no separator.
    glued = "failed to create XNNPACK runtime" * 7 + "Node number 640 (TfLiteXNNPackDelegate) failed to prepare."
    assert first_line(RuntimeError(glued)) == "failed to create XNNPACK runtime; Node number 640 (TfLiteXNNPackDelegate) failed to prepare."
    assert first_line(RuntimeError("ids 1000000000000000000 and abcabcabcabcabcabcabcabcabc")) == "ids 1000000000000000000 and abcabcabcabcabcabcabcabcabc"


def test_native_logs_are_silenced_unless_edgekit_debug(capfd, monkeypatch):
    import os

    from edgekit._tf import quiet_native_logs

    monkeypatch.delenv("EDGEKIT_DEBUG", raising=False)
    with quiet_native_logs():
        os.write(2, b"I0000 native chatter\n")
    assert "native chatter" not in capfd.readouterr().err
    monkeypatch.setenv("EDGEKIT_DEBUG", "1")
    with quiet_native_logs():
        os.write(2, b"I0000 native chatter\n")
    assert "native chatter" in capfd.readouterr().err


def test_loading_an_artifact_the_interpreter_refuses_is_one_typed_line(tmp_path):
    from edgekit.compile.check import load_interpreter

    bad = tmp_path / "model_cpu.tflite"
    bad.write_bytes(b"\x00" * 64)  # not a flatbuffer
    with pytest.raises(TargetError, match=r"target cpu: ai_edge_litert.* cannot load model_cpu\.tflite") as e:
        load_interpreter(bad, target="cpu")
    assert "\n" not in str(e.value)


# ------------------------------------------------- Edge TPU compiled artifacts

# edgetpu_compiler is not installable here (x86-64 Debian/Ubuntu package only),
# so a stand-in with its command line, output files and log format goes on PATH.
# Its op table is what the compiler prints for this model, except that it does
# not map SOFTMAX, which our prediction puts on the Edge TPU: the comparison
# must notice.
COMPILER_TABLE = """\
Operator                       Count      Status

QUANTIZE                       2          Mapped to Edge TPU
CONV_2D                        2          Mapped to Edge TPU
MAX_POOL_2D                    2          Mapped to Edge TPU
RESHAPE                        1          Mapped to Edge TPU
FULLY_CONNECTED                1          Mapped to Edge TPU
SOFTMAX                        1          Operation is otherwise supported, but not mapped due to some unspecified limitation
"""
# The stand-in writes what the compiler writes: the model with the ops it maps
# replaced by one ``edgetpu-custom-op`` per Edge TPU subgraph (here SOFTMAX stays
# on the CPU, so the final QUANTIZE forms a second subgraph), its .log and stdout.
STUB_COMPILER = f"""#!{sys.executable}
# stand-in for edgetpu_compiler 16: edgetpu_compiler -s -o OUT_DIR MODEL
import os, sys
if sys.argv[1:] == ["--version"]:
    print("Edge TPU Compiler version 16.0.384591198")
    sys.exit(0)
out, model = sys.argv[3], sys.argv[4]
stem = os.path.basename(model)[: -len(".tflite")]
import flatbuffers
from ai_edge_litert import schema_py_generated as s

m = s.ModelT.InitFromObj(s.Model.GetRootAsModel(open(model, "rb").read(), 0))
names = {{v: k for k, v in vars(s.BuiltinOperator).items() if not k.startswith("_")}}
def opname(op):
    c = m.operatorCodes[op.opcodeIndex]
    return names[max(c.builtinCode, c.deprecatedBuiltinCode)]
custom = s.OperatorCodeT()
custom.builtinCode = custom.deprecatedBuiltinCode = s.BuiltinOperator.CUSTOM
custom.customCode, custom.version = "edgetpu-custom-op", 1
m.operatorCodes.append(custom)
g = m.subgraphs[0]
def const(t):
    b = g.tensors[t].buffer
    return b > 0 and m.buffers[b].data is not None and len(m.buffers[b].data) > 0
groups, current = [], []
for op in g.operators:
    if opname(op) == "SOFTMAX":
        groups += [current, [op]] if current else [[op]]
        current = []
    else:
        current.append(op)
if current:
    groups.append(current)
ops = []
for grp in groups:
    if opname(grp[0]) == "SOFTMAX":
        ops.append(grp[0])
        continue
    made = {{t for op in grp for t in op.outputs}}
    ins = list(dict.fromkeys(t for op in grp for t in op.inputs if t >= 0 and t not in made and not const(t)))
    rest = [o for o in g.operators if all(o is not x for x in grp)]
    used = {{t for o in rest for t in o.inputs}} | set(g.outputs)
    outs = [t for op in grp for t in op.outputs if t in used]
    c = s.OperatorT()
    c.opcodeIndex, c.inputs, c.outputs, c.customOptions = len(m.operatorCodes) - 1, ins, outs, list(b"compiled")
    ops.append(c)
g.operators = ops
b = flatbuffers.Builder(1024)
b.Finish(m.Pack(b), file_identifier=b"TFL3")
open(os.path.join(out, stem + "_edgetpu.tflite"), "wb").write(b.Output())
table = {COMPILER_TABLE!r}
open(os.path.join(out, stem + "_edgetpu.log"), "w").write(
    "Edge TPU Compiler version 16.0.384591198\\nInput: " + model + "\\nOutput: " + stem + "_edgetpu.tflite\\n\\n" + table)
print("Edge TPU Compiler version 16.0.384591198\\nStarted a compilation timeout timer of 180 seconds.\\n")
print("Model compiled successfully in 12 ms.\\n\\nNumber of Edge TPU subgraphs: 2\\nTotal number of operations: 9")
print("Operation log: " + stem + "_edgetpu.log\\n")
print("Model successfully compiled but not all operations are supported by the Edge TPU.")
print("Number of operations that will run on Edge TPU: 8\\nNumber of operations that will run on CPU: 1\\n")
print(table)
"""
SOFTMAX_DIFFERS = [{"op": "SOFTMAX", "predicted_on_tpu": 1, "compiler_on_tpu": 0}]


@pytest.fixture
def stub_compiler(tmp_path):
    """A folder holding the stand-in ``edgetpu_compiler``; prepend it to PATH to 'install' it."""
    import os
    import stat as st

    folder = tmp_path / "stub_bin"
    folder.mkdir()
    exe = folder / "edgetpu_compiler"
    exe.write_text(STUB_COMPILER)
    exe.chmod(exe.stat().st_mode | st.S_IXUSR | st.S_IXGRP | st.S_IXOTH)
    return f"{folder}{os.pathsep}{os.environ['PATH']}"


def _check_compiled_bundle(path):
    """What a bundle with a compiled Edge TPU file holds, however it was compiled."""
    from edgekit.bundle import sha256_file
    from edgekit.runtime import Predictor

    m = load_bundle(path).manifest
    assert [a.file for a in m.artifacts] == ["model_cpu.tflite", "model_edgetpu.tflite", "model_edgetpu_edgetpu.tflite"]
    src, compiled = m.artifacts[1], m.artifacts[2]
    assert src.status == "ok" and src.compatibility["compiler"] == {"status": "compiled", "agrees": False}
    assert (compiled.target, compiled.variant, compiled.compiled_from, compiled.status) == (
        "edgetpu", "int8_edgetpu", "model_edgetpu.tflite", "ok"
    )
    assert compiled.accelerator == "edgetpu" and compiled.accuracy is None
    assert compiled.input == src.input and compiled.output["shape"] == src.output["shape"]
    assert compiled.compatibility == {
        "status": "compiled", "version": "16.0.384591198", "ops_on_tpu": 8, "ops_on_cpu": 1, "agrees": False
    }
    assert compiled.sha256 == sha256_file(path / compiled.file)
    # the compiler's log is kept under reports/, not left beside the artifacts
    log = (path / "reports/edgetpu_compiler.log").read_text()
    assert "SOFTMAX                        1          Operation is otherwise supported" in log
    assert "reports/edgetpu_compiler.log" in m.reports and not (path / "model_edgetpu_edgetpu.log").exists()
    assert verify_bundle(path).ok
    # The device prefers the compiled file; without libedgetpu it says so and runs the CPU artifact.
    p = Predictor.from_bundle(path, target="edgetpu")
    assert p.plan.accelerator == "cpu" and p.plan.entry.file == "model_cpu.tflite"
    assert "libedgetpu.so.1 not found on the library path" in p.plan.fallback
    assert "to run model_edgetpu_edgetpu.tflite" in p.plan.fallback


def test_edgetpu_compiler_on_path_adds_the_compiled_artifact(tmp_path, monkeypatch, stub_compiler, trained, digits):
    monkeypatch.setenv("PATH", stub_compiler)
    result = build(tmp_path / "b", trained, digits, targets=["cpu", "edgetpu"])
    assert result.failures == []
    comp = result.reports["edgetpu"].extra["compiler"]
    assert comp["status"] == "compiled" and comp["file"] == "model_edgetpu_edgetpu.tflite"
    assert comp["differences"] == SOFTMAX_DIFFERS  # the compiler disagreed with the prediction, and it shows
    assert result.bundle.manifest.tools["edgetpu_compiler"] == "16.0.384591198"
    log = (result.path / "reports/edgetpu_compiler.log").read_text()
    assert "Number of operations that will run on CPU: 1" in log and "--- model_edgetpu_edgetpu.log ---" in log
    _check_compiled_bundle(result.path)


def test_not_compiled_bundle_is_adopted_by_the_reported_command(tmp_path, monkeypatch, stub_compiler, trained, digits):
    import os
    import shlex
    import shutil
    import subprocess

    from typer.testing import CliRunner

    from edgekit.cli import app

    _hide_edgetpu_compiler(monkeypatch)
    out = tmp_path / "b"
    result = build(out, trained, digits, targets=["cpu", "edgetpu"])
    command = result.bundle.manifest.artifact("edgetpu").compatibility["compiler"]["command"]
    compile_step, adopt_step = command.split(" && ")
    assert compile_step == f"edgetpu_compiler -s -o {out} {out}/model_edgetpu.tflite"
    assert adopt_step == f"edgekit verify {out} --adopt-compiled"
    before = (out / "manifest.json").read_text()
    runner = CliRunner()
    # without the compiled file there is nothing to adopt, and nothing changes
    r = runner.invoke(app, shlex.split(adopt_step)[1:])
    assert r.exit_code == 2 and "no compiled file to adopt" in r.output and "Compile first: edgetpu_compiler" in r.output
    assert (out / "manifest.json").read_text() == before
    # on the host that has the compiler: the two steps, as printed
    subprocess.run(shlex.split(compile_step), check=True, env={**os.environ, "PATH": stub_compiler}, capture_output=True)
    r = runner.invoke(app, shlex.split(adopt_step)[1:])
    assert r.exit_code == 0, r.output
    assert "adopted model_edgetpu_edgetpu.tflite" in r.output and "DIFFERS" in r.output and "SOFTMAX" in r.output
    _check_compiled_bundle(out)
    # adopting again (e.g. after recompiling) replaces the entry instead of adding a second one
    subprocess.run(shlex.split(compile_step), check=True, env={**os.environ, "PATH": stub_compiler}, capture_output=True)
    r = runner.invoke(app, [*shlex.split(adopt_step)[1:], "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["adopted"][0]["differences"] == SOFTMAX_DIFFERS
    _check_compiled_bundle(out)


def test_adoption_refuses_an_uncompiled_copy_and_a_log_that_contradicts_the_file(tmp_path, stub_compiler, trained, digits):
    """issue 11: a byte-identical copy of the uncompiled artifact passed as 'compiled', and a hand-written log 'agreed'."""
    import os
    import shlex
    import shutil
    import subprocess

    from typer.testing import CliRunner

    from edgekit.cli import app

    out = tmp_path / "b"
    result = build(out, trained, digits, targets=["cpu", "edgetpu"])
    command = result.bundle.manifest.artifact("edgetpu").compatibility["compiler"]["command"]
    compile_step, adopt_step = command.split(" && ")
    before = (out / "manifest.json").read_text()
    runner = CliRunner()
    shutil.copy(out / "model_edgetpu.tflite", out / "model_edgetpu_edgetpu.tflite")
    r = runner.invoke(app, shlex.split(adopt_step)[1:], terminal_width=300)
    assert r.exit_code != 0 and "has no edgetpu-custom-op op, so it is not an edgetpu_compiler output" in r.output
    assert (out / "manifest.json").read_text() == before
    # a real compile, but a log written by hand that claims every op maps
    subprocess.run(shlex.split(compile_step), check=True, env={**os.environ, "PATH": stub_compiler}, capture_output=True)
    log = out / "model_edgetpu_edgetpu.log"
    log.write_text(log.read_text().replace("SOFTMAX                        1          Operation is otherwise supported, "
                                           "but not mapped due to some unspecified limitation",
                                           "SOFTMAX                        1          Mapped to Edge TPU"))  # fmt: skip
    r = runner.invoke(app, shlex.split(adopt_step)[1:], terminal_width=300)
    assert r.exit_code != 0 and "does not describe the compiled file" in r.output and "SOFTMAX on the Edge TPU: log 1, file 0" in r.output
    assert (out / "manifest.json").read_text() == before
    # without the log the mapping comes from the file alone
    log.unlink()
    r = runner.invoke(app, [*shlex.split(adopt_step)[1:], "--json"])
    assert r.exit_code == 0, r.output
    adopted = json.loads(r.stdout)["adopted"][0]
    assert adopted["differences"] == SOFTMAX_DIFFERS and adopted["agrees"] is False


def test_metrics_match_scikit_learn():
    from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

    rng = np.random.default_rng(1)
    y = rng.integers(0, 5, 300)
    scores = rng.random((300, 5))
    scores[np.arange(300), y] += rng.random(300) * 0.8  # better than chance, not perfect
    pred = scores.argmax(1)
    m = classification_metrics(y, scores)
    p, r, f, _ = precision_recall_fscore_support(y, pred, average="macro", zero_division=0)
    assert m["top1"] == pytest.approx(accuracy_score(y, pred))
    assert (m["macro_precision"], m["macro_recall"], m["macro_f1"]) == pytest.approx((p, r, f))
    assert m["confusion"] == confusion_matrix(y, pred).tolist() and m["n"] == 300
    # a class that is never predicted counts as 0 precision, like sklearn's zero_division=0
    y2, p2 = np.array([0, 1, 2, 2]), np.array([0, 1, 1, 1])
    assert classification_metrics(y2, p2)["macro_precision"] == pytest.approx(
        precision_recall_fscore_support(y2, p2, average="macro", zero_division=0)[0]
    )
    with pytest.raises(DataError, match="3 labels but 2 predictions"):
        classification_metrics(np.array([0, 1, 2]), np.array([0, 1]))


def test_size_report(tmp_path):
    f = tmp_path / "w.bin"
    f.write_bytes(bytes(10000) + np.random.default_rng(0).bytes(1000))
    s = size_report(f)
    assert s["bytes"] == 11000 and 1000 < s["gzip_bytes"] < 2000  # zeros compress, noise does not
