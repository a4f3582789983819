"""Fine-tuning under tf.distribute: a real MirroredStrategy over two logical CPU devices.

Logical devices must be configured before TensorFlow initialises its devices,
which the test session has already done, so the distributed runs happen in a
fresh Python process that prints its measurements as JSON.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from edgekit.cli import app
from edgekit.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.build  # TensorFlow in every test

_SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    import numpy as np
    from edgekit._tf import tf, tf_keras

    tfm = tf()
    cpu = tfm.config.list_physical_devices("CPU")[0]
    tfm.config.set_logical_device_configuration(cpu, [tfm.config.LogicalDeviceConfiguration()] * 2)
    keras = tf_keras()

    from edgekit.bundle import verify_bundle
    from edgekit.compress import compress
    from edgekit.compress.distribute import resolve_strategy
    from edgekit.compress.finetune import copy_model, fine_tune
    from edgekit.compress.prune import prune_magnitude
    from edgekit.data import load_digits, sample_stratified
    from edgekit.data.digits import DIGITS_SPEC
    from edgekit.resources import digits_dir

    train = sample_stratified(load_digits(), 240, seed=0)
    keras.utils.set_random_seed(0)
    # No BatchNorm: each replica would normalise with its own half-batch statistics.
    model = keras.Sequential([
        keras.layers.Input((28, 28, 1)),
        keras.layers.Conv2D(8, 3, activation="relu"),
        keras.layers.MaxPooling2D(),
        keras.layers.Flatten(),
        keras.layers.Dense(10, activation="softmax"),
    ])
    ft = dict(epochs=2, learning_rate=1e-3, output_kind="probabilities", seed=0)
    out = {}

    def run(training, per_replica):
        with training.scope():  # the copy, tfmot's wrappers, compile and fit all under the strategy
            plain = copy_model(model)
            loss = fine_tune(plain, train, batch_size=training.global_batch(per_replica), **ft)["loss"]
            _, report = prune_magnitude(model, train, train.y, sparsity=0.5, min_weights=0, batch_size=training.global_batch(per_replica), **{**ft, "epochs": 1})
        return plain, {
            "replicas": training.replicas,
            "variable": type(plain.weights[0]).__name__,
            "loss": loss,
            "weights": [w.tolist() for w in plain.get_weights()],
            "sparsity": report.achieved,
        }

    mirrored_strategy = resolve_strategy("mirrored")
    tuned, out["single"] = run(resolve_strategy("none"), 32)
    _, out["mirrored"] = run(mirrored_strategy, 16)  # 2 replicas x 16 = the same global batch of 32

    # End to end: compress builds pruning + PQAT under the strategy, converts and scores outside it.
    work = sys.argv[1]
    tuned.save(f"{work}/cnn.h5")
    with open(f"{work}/cnn.h5.preprocess.json", "w") as f:
        json.dump({"preprocess": DIGITS_SPEC.to_dict(), "labels": [str(i) for i in range(10)]}, f)
    result = compress(
        f"{work}/cnn.h5", digits_dir(), f"{work}/bundle", strategy="mirrored", progress=False,
        overrides={"sparsity": 0.5, "prune_min_weights": 0, "epochs": 1, "batch_size": 16, "calibration_samples": 32, "eval_samples": 150,
                   "max_accuracy_drop": 100.0, "targets": ("cpu",)},
    )
    verify_bundle(result.bundle)
    out["compress"] = {"fine_tuning": result.reports["data"]["fine_tuning"], "held_out": result.reports["data"]["held_out"],
                       "rows": {v["variant"]: v["top1"] for v in result.variants}, "n": [v["n"] for v in result.variants]}
    print("RESULT " + json.dumps(out))
    """
)


@pytest.mark.slow
def test_mirrored_strategy_over_two_cpus_matches_one_device(tmp_path):
    import numpy as np

    script = tmp_path / "mirrored.py"
    script.write_text(_SCRIPT, encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""), "TF_CPP_MIN_LOG_LEVEL": "2"}
    env.pop("TF_CONFIG", None)
    proc = subprocess.run([sys.executable, str(script), str(tmp_path)], capture_output=True, text=True, env=env, timeout=900)
    line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
    assert proc.returncode == 0 and line, proc.stderr[-3000:]
    res = json.loads(line[len("RESULT "):])
    single, mirrored = res["single"], res["mirrored"]
    assert single["replicas"] == 1 and single["variable"] != "MirroredVariable"
    # A real MirroredStrategy: two replicas, mirrored variables.
    assert mirrored["replicas"] == 2 and mirrored["variable"] == "MirroredVariable"
    # Same model, data, order and global batch: the same training, up to float summation order.
    assert abs(single["loss"] - mirrored["loss"]) < 1e-4
    for a, b in zip(single["weights"], mirrored["weights"]):
        np.testing.assert_allclose(np.array(a), np.array(b), atol=1e-4)
    # tfmot's pruning wrappers trained under the strategy reach the schedule's sparsity.
    assert abs(mirrored["sparsity"] - 0.5) < 0.01 and abs(single["sparsity"] - 0.5) < 0.01
    # compress --strategy mirrored: per-replica batch 16 on 2 replicas, every variant scored on the capped split.
    c = res["compress"]
    assert c["fine_tuning"]["strategy"] == "mirrored" and c["fine_tuning"]["replicas"] == 2
    assert c["fine_tuning"]["batch_per_replica"] == 16 and c["fine_tuning"]["global_batch"] == 32
    assert c["held_out"] == 150 and set(c["n"]) == {150}
    rows = c["rows"]
    assert set(rows) >= {"float", "pruned 50%", "PQAT", "cpu int8 .tflite"}
    assert rows["cpu int8 .tflite"] > 0.5 and abs(rows["cpu int8 .tflite"] - rows["PQAT"]) <= 0.05


def test_strategy_names_and_tf_config_are_checked(monkeypatch):
    from edgekit.compress.distribute import resolve_strategy

    with pytest.raises(ConfigError, match="expected one of: auto, none, mirrored, multiworker"):
        resolve_strategy("horovod")
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ConfigError, match="needs TF_CONFIG"):
        resolve_strategy("multiworker")
    monkeypatch.setenv("TF_CONFIG", "{not json")
    with pytest.raises(ConfigError, match="TF_CONFIG is not valid"):
        resolve_strategy("auto")
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": {"worker": ["a:1", "b:2"]}}))
    with pytest.raises(ConfigError, match="TF_CONFIG is not valid"):
        resolve_strategy("multiworker")
    monkeypatch.delenv("TF_CONFIG")
    none = resolve_strategy("auto")  # this machine: no GPU, no cluster
    assert none.name == "none" and none.replicas == 1 and none.global_batch(32) == 32


def test_cli_refuses_an_unknown_strategy_in_one_line(tmp_path, tf_keras_h5_path):
    result = CliRunner().invoke(
        app, ["compress", str(tf_keras_h5_path), "--data", str(tmp_path), "--out", str(tmp_path / "b"), "--strategy", "horovod"]
    )
    assert result.exit_code != 0
    assert "strategy 'horovod' is not known" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "b").exists()


_MULTIWORKER = textwrap.dedent(
    """
    import json, os, socket
    with socket.socket() as s:  # a free port for this one-worker cluster
        s.bind(("localhost", 0))
        port = s.getsockname()[1]
    os.environ["TF_CONFIG"] = json.dumps({"cluster": {"worker": [f"localhost:{port}"]}, "task": {"type": "worker", "index": 0}})
    import numpy as np
    from edgekit.compress.distribute import resolve_strategy

    training = resolve_strategy("multiworker")  # first thing, before any TensorFlow op
    from edgekit._tf import tf_keras
    from edgekit.compress.finetune import copy_model, fine_tune
    from edgekit.data import load_digits, sample_stratified

    keras = tf_keras()
    train = sample_stratified(load_digits(), 128, seed=0)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.layers.Input((28, 28, 1)), keras.layers.Flatten(), keras.layers.Dense(10, activation="softmax")])
    ft = dict(epochs=1, learning_rate=1e-3, output_kind="probabilities", seed=0, batch_size=training.global_batch(32))
    with training.scope():
        multi = copy_model(model)
        fine_tune(multi, train, **ft)
    single = copy_model(model)
    fine_tune(single, train, **ft)
    diff = max(float(np.abs(a - b).max()) for a, b in zip(multi.get_weights(), single.get_weights()))
    print("RESULT " + json.dumps({**training.to_dict(), "variable": type(multi.weights[0]).__name__, "max_weight_diff": diff}))
    """
)


@pytest.mark.slow
def test_multiworker_strategy_from_tf_config_trains_like_one_device(tmp_path):
    script = tmp_path / "multiworker.py"
    script.write_text(_MULTIWORKER, encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""), "TF_CPP_MIN_LOG_LEVEL": "2"}
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=600)
    line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
    assert proc.returncode == 0 and line, proc.stderr[-3000:]
    res = json.loads(line[len("RESULT "):])
    assert res["strategy"] == "multiworker" and res["replicas"] == 1
    assert res["variable"] != "ResourceVariable"  # a distributed variable, made by the strategy
    assert res["max_weight_diff"] < 1e-5
