"""The Edge TPU checker on real converted models, the compiler log parser, and the no-compiler path."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from edgekit.compile.edgetpu import AFTER_SPLIT, BAD_DTYPE, NOT_SUPPORTED, check_edgetpu
from edgekit.compile.edgetpu_compiler import EdgeTpuCompiler, compare_with_prediction, parse_log
from edgekit.profiles import get_target
from edgekit.tflite_graph import read_graph

pytestmark = pytest.mark.slow

RNG = np.random.default_rng(0)
REP = RNG.random((16, 16, 16, 3), dtype=np.float32)


def convert(model, target="edgetpu"):
    from edgekit.compile.convert import convert_model

    return convert_model(model, get_target(target), REP).content


@pytest.fixture(scope="module")
def layers(tf_keras):
    tf_keras.utils.set_random_seed(0)
    return tf_keras.layers


@pytest.fixture(scope="module")
def mappable(tf_keras, layers):
    m = tf_keras.Sequential(
        [
            tf_keras.Input((16, 16, 3)),
            layers.Conv2D(8, 3, activation="relu", name="c1"),
            layers.MaxPooling2D(name="mp"),
            layers.DepthwiseConv2D(3, activation="relu", name="dw"),
            layers.Flatten(name="fl"),
            layers.Dense(4, activation="softmax", name="fc"),
        ]
    )
    return convert(m)


@pytest.fixture(scope="module")
def leaky(tf_keras, layers):
    m = tf_keras.Sequential(
        [
            tf_keras.Input((16, 16, 3)),
            layers.Conv2D(8, 3, name="c1"),
            layers.LeakyReLU(0.1, name="leaky"),  # LEAKY_RELU: not in the Edge TPU op list
            layers.Conv2D(8, 3, activation="relu", name="c2"),
            layers.Flatten(name="fl"),
            layers.Dense(4, name="fc"),
        ]
    )
    return convert(m)


def test_model_that_maps_fully(mappable):
    r = check_edgetpu(mappable)
    assert [p.op for p in r.placements] == [
        "QUANTIZE", "CONV_2D", "MAX_POOL_2D", "DEPTHWISE_CONV_2D", "RESHAPE", "FULLY_CONNECTED", "SOFTMAX", "QUANTIZE"
    ]
    assert r.status == "full" and r.split is None
    assert r.fraction_ops == 1.0 and r.fraction_macs == 1.0
    assert all(req["ok"] for req in r.requirements)
    # MACs from the shapes: conv 14x14x8 outputs x 3x3x3, depthwise 5x5x8 x 3x3, dense 200 x 4
    assert r.macs_total == 14 * 14 * 8 * 27 + 5 * 5 * 8 * 9 + 200 * 4


def test_unsupported_op_predicts_the_split_point(leaky):
    r = check_edgetpu(leaky)
    ops = [p.op for p in r.placements]
    assert ops[:4] == ["QUANTIZE", "CONV_2D", "LEAKY_RELU", "CONV_2D"]
    assert r.split == {"index": 2, "op": "LEAKY_RELU", "reason": f"{NOT_SUPPORTED}: LEAKY_RELU is not in the Edge TPU op list"}
    assert [p.on_accelerator for p in r.placements] == [True, True] + [False] * (len(ops) - 2)
    # everything after the split runs on the CPU even though CONV_2D itself is supported
    assert r.placements[3].reason == AFTER_SPLIT
    conv1, conv2, dense = 14 * 14 * 8 * 27, 12 * 12 * 8 * 72, 12 * 12 * 8 * 4
    assert r.macs_total == conv1 + conv2 + dense
    assert r.fraction_macs == pytest.approx(conv1 / (conv1 + conv2 + dense))
    assert r.status == "partial" and "LEAKY_RELU" in r.summary()["not_on_accelerator"]
    assert "split: op #2 LEAKY_RELU" in r.to_text()


def test_parameter_limit_strided_slice_with_stride_2(tf_keras, layers):
    m = tf_keras.Sequential(
        [
            tf_keras.Input((16, 16, 3)),
            layers.Conv2D(4, 3, name="c1"),
            layers.Lambda(lambda t: t[:, ::2, ::2, :], name="subsample"),
            layers.Flatten(),
            layers.Dense(2),
        ]
    )
    r = check_edgetpu(convert(m))
    assert r.split is not None and r.split["op"] == "STRIDED_SLICE"
    assert "all strides must be 1" in r.split["reason"]


def test_float_model_maps_nothing(tf_keras, layers):
    m = tf_keras.Sequential([tf_keras.Input((16, 16, 3)), layers.Conv2D(4, 3), layers.Flatten(), layers.Dense(2)])
    r = check_edgetpu(convert(m, "gpu"))  # fp16 weights, float32 activations
    assert r.ops_on == 0 and r.status == "none"
    assert {q["name"]: q["ok"] for q in r.requirements}["full int8"] is False
    assert any(p.reason.startswith(BAD_DTYPE) for p in r.placements)


def test_dynamic_batch_is_rejected_as_a_whole(tf_keras, layers):
    from edgekit._tf import quiet_native_logs, tf

    m = tf_keras.Sequential([tf_keras.Input((16, 16, 3)), layers.Conv2D(4, 3), layers.Flatten(), layers.Dense(2)])
    conv = tf().lite.TFLiteConverter.from_keras_model(m)  # keeps the None batch: the classic mistake
    conv.optimizations = [tf().lite.Optimize.DEFAULT]
    conv.representative_dataset = lambda: ([REP[i : i + 1]] for i in range(len(REP)))
    conv.target_spec.supported_ops = [tf().lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = conv.inference_output_type = tf().uint8
    with quiet_native_logs():
        content = conv.convert()
    assert read_graph(content).tensors[read_graph(content).inputs[0]].shape_signature[0] == -1
    r = check_edgetpu(content)
    assert {q["name"]: q["ok"] for q in r.requirements}["static shapes"] is False
    assert r.ops_on == 0 and r.split["index"] == 0 and "dynamic" in r.split["reason"]


def test_checker_runs_without_tensorflow(tmp_path, leaky):
    path = tmp_path / "m.tflite"
    path.write_bytes(leaky)
    code = (
        "import sys, json; sys.modules['tensorflow'] = None\n"
        "from edgekit.compile.edgetpu import check_edgetpu\n"
        f"r = check_edgetpu({str(path)!r})\n"
        "print(json.dumps(r.split))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == check_edgetpu(leaky).split


def test_compiler_not_on_path_says_so_and_gives_the_command(tmp_path, monkeypatch, mappable):
    monkeypatch.setenv("PATH", str(tmp_path))  # a PATH with no edgetpu_compiler on it, for certain
    artifact = tmp_path / "model_edgetpu.tflite"
    artifact.write_bytes(mappable)
    compiler = EdgeTpuCompiler()
    assert compiler.find() is None
    res = compiler.run(artifact, check_edgetpu(mappable), bundle_hint="out/bundle")
    assert res.status == "not_compiled" and res.extra_files == [] and res.failure is None
    # compile, then adopt the compiled file into the manifest (see test_compile_targets for both run for real)
    assert res.info["command"] == (
        "edgetpu_compiler -s -o out/bundle out/bundle/model_edgetpu.tflite && edgekit verify out/bundle --adopt-compiled"
    )
    assert compiler.manual_command("model_edgetpu.tflite", "my bundles/b") == (
        "edgetpu_compiler -s -o 'my bundles/b' 'my bundles/b/model_edgetpu.tflite' && edgekit verify 'my bundles/b' --adopt-compiled"
    )
    assert "Edge-TPU-ready" in res.info["message"] and "NOT compiled" in res.info["message"]


def test_compiler_not_on_path_for_a_model_that_is_not_ready(tmp_path, monkeypatch, tf_keras, layers):
    monkeypatch.setenv("PATH", str(tmp_path))
    m = tf_keras.Sequential([tf_keras.Input((16, 16, 3)), layers.Conv2D(4, 3), layers.Flatten(), layers.Dense(2)])
    content = convert(m, "gpu")
    artifact = tmp_path / "model_edgetpu.tflite"
    artifact.write_bytes(content)
    res = EdgeTpuCompiler().run(artifact, check_edgetpu(content), bundle_hint="b")
    assert "NOT Edge-TPU-ready (full int8)" in res.info["message"]


# A compiler log in the exact format edgetpu_compiler 16 prints with -s
# (layout reproduced from Coral's documentation and published compiler logs;
# the numbers are those our `leaky` model would get). Not produced by a real run here:
# the compiler is not installable on this machine.
REPRODUCED_LOG = """\
Edge TPU Compiler version 16.0.384591198
Started a compilation timeout timer of 180 seconds.

Model compiled successfully in 11 ms.

Input model: model_edgetpu.tflite
Input size: 5.63KiB
Output model: model_edgetpu_edgetpu.tflite
Output size: 22.27KiB
On-chip memory used for caching model parameters: 3.00KiB
On-chip memory remaining for caching model parameters: 7.73MiB
Off-chip memory used for streaming uncached model parameters: 0.00B
Number of Edge TPU subgraphs: 1
Total number of operations: 7
Operation log: model_edgetpu_edgetpu.log

Model successfully compiled but not all operations are supported by the Edge TPU. A percentage of the model will instead run on the CPU, which is slower. If possible, consider updating your model to use only operations supported by the Edge TPU. For details, visit g.co/coral/model-reqs.
Number of operations that will run on Edge TPU: 2
Number of operations that will run on CPU: 5

Operator                       Count      Status

CONV_2D                        1          Mapped to Edge TPU
CONV_2D                        1          More than one subgraph is not supported
QUANTIZE                       1          Mapped to Edge TPU
QUANTIZE                       1          More than one subgraph is not supported
LEAKY_RELU                     1          Operation not supported
RESHAPE                        1          More than one subgraph is not supported
FULLY_CONNECTED                1          More than one subgraph is not supported
"""


def test_parse_reproduced_compiler_log():
    parsed = parse_log(REPRODUCED_LOG)
    assert parsed["version"] == "16.0.384591198"
    assert (parsed["ops_on_tpu"], parsed["ops_on_cpu"], parsed["ops_total"], parsed["subgraphs"]) == (2, 5, 7, 1)
    assert {"op": "LEAKY_RELU", "count": 1, "status": "Operation not supported"} in parsed["rows"]
    assert sum(r["count"] for r in parsed["rows"]) == 7
    # without the summary lines the counts come from the table
    table_only = REPRODUCED_LOG[REPRODUCED_LOG.index("Operator"):]
    assert (parse_log(table_only)["ops_on_tpu"], parse_log(table_only)["ops_on_cpu"]) == (2, 5)


def test_compare_log_with_prediction(leaky, mappable):
    # The reproduced log maps the leaky model as we predict it: no false alarm.
    assert compare_with_prediction(parse_log(REPRODUCED_LOG), check_edgetpu(leaky)) == {"agrees": True, "differences": []}
    # A log for the same model where the compiler decided otherwise than the
    # prediction (it kept the first CONV_2D on the CPU, and mapped nothing after
    # the split either): exactly that op is reported, with both counts.
    disagreeing = REPRODUCED_LOG.replace(
        "CONV_2D                        1          Mapped to Edge TPU",
        "CONV_2D                        1          Operation is otherwise supported, but not mapped due to some unspecified limitation",
    )
    assert disagreeing != REPRODUCED_LOG
    assert compare_with_prediction(parse_log(disagreeing), check_edgetpu(leaky)) == {
        "agrees": False,
        "differences": [{"op": "CONV_2D", "predicted_on_tpu": 1, "compiler_on_tpu": 0}],
    }
    # And a log for another model entirely disagrees op by op.
    diff = compare_with_prediction(parse_log(REPRODUCED_LOG), check_edgetpu(mappable))
    assert not diff["agrees"]
    assert {"op": "SOFTMAX", "predicted_on_tpu": 1, "compiler_on_tpu": 0} in diff["differences"]
