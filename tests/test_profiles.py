"""Target and device profiles: the built-in registry, strict parsing, lookups, user files."""
from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from edgekit import profiles
from edgekit.errors import ConfigError, TargetError
from edgekit.profiles import (
    DeviceProfile,
    TargetProfile,
    get_device,
    get_target,
    list_devices,
    list_targets,
    load_profile,
    resolve_targets,
)

GOOD_TARGET = """
kind = "target"
name = "toy"
description = "a throwaway float32 target"
artifact = "model_toy.tflite"
quantization = "fp32"
io_dtype = "float32"
batch = 1
analysis = "xnnpack"

[check]
tolerance = 0.001
samples = 8
"""


def write(tmp_path, text, name="p.toml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_builtins_are_listed_in_fixed_order():
    # the built-ins first, in their fixed order; a target added as one more file follows
    assert list_targets() == ["cpu", "gpu", "edgetpu", "cpu-fp32"]
    assert list_devices() == ["rpi4", "rpi5", "jetson-nano", "jetson-orin-nano", "coral-usb", "coral-devboard"]


@pytest.mark.parametrize("name", list_targets())
def test_every_builtin_target_parses_and_names_known_behaviour(name):
    from edgekit.compile.registry import ADAPTERS, ANALYSES, check_profile

    t = get_target(name)
    assert isinstance(t, TargetProfile) and t.name == name and t.batch == 1
    assert t.artifact == f"model_{name}.tflite"
    check_profile(t)  # its analysis and adapter are registered
    assert t.analysis in ANALYSES and (t.adapter is None or t.adapter in ADAPTERS)
    assert t.to_dict()["check"]["tolerance"] == t.tolerance


@pytest.mark.parametrize("name", list_devices())
def test_every_builtin_device_names_known_targets_and_their_delegates(name):
    d = get_device(name)
    assert isinstance(d, DeviceProfile) and d.targets
    for t in d.targets:
        acc = get_target(t).accelerator
        assert acc is None or d.delegates[acc], f"{name} runs {t} but lists no {acc} delegate library"
    assert dict(d.delegates) == {k: tuple(v) for k, v in d.to_dict()["delegates"].items()}


def test_capabilities_are_declared_as_data():
    cpu, gpu, tpu = (get_target(n) for n in ("cpu", "gpu", "edgetpu"))
    assert (cpu.quantization, cpu.io_dtype, cpu.accelerator, cpu.analysis) == ("int8", "int8", None, "xnnpack")
    assert (gpu.quantization, gpu.io_dtype, gpu.accelerator) == ("fp16", "float32", "gpu")
    assert (tpu.quantization, tpu.io_dtype, tpu.accelerator, tpu.adapter) == ("int8", "uint8", "edgetpu", "edgetpu_compiler")
    assert get_device("coral-usb").delegates["edgetpu"] == ("libedgetpu.so.1",)
    assert get_device("coral-usb").delegate_options["edgetpu"]["device"] == "usb"
    assert get_device("jetson-orin-nano").targets == ("gpu", "cpu")


def test_unknown_target_lists_the_valid_ones_without_guessing():
    with pytest.raises(TargetError) as e:
        get_target("cpuu")
    msg = str(e.value)
    assert "unknown target 'cpuu'" in msg and "cpu, gpu, edgetpu" in msg
    assert "did you mean" not in msg.lower()


def test_unknown_device_lists_the_valid_ones():
    with pytest.raises(TargetError, match="valid devices: rpi4, rpi5, jetson-nano, jetson-orin-nano, coral-usb, coral-devboard"):
        get_device("rpi3")


def test_a_target_name_is_not_a_device():
    with pytest.raises(TargetError, match="that is a target"):
        get_device("gpu")


def test_custom_target_file_loads_and_resolves_by_path(tmp_path):
    path = write(tmp_path, GOOD_TARGET, "toy.toml")
    prof = load_profile(path)
    assert isinstance(prof, TargetProfile)
    assert (prof.name, prof.quantization, prof.tolerance, prof.check_samples) == ("toy", "fp32", 0.001, 8)
    assert prof.source == str(path)
    assert resolve_targets([str(path), "cpu"])[0] == prof


def test_custom_device_file(tmp_path):
    path = write(
        tmp_path,
        """
        kind = "device"
        name = "my-board"
        description = "a board"
        targets = ["edgetpu", "cpu"]
        threads = 2
        [delegates]
        edgetpu = ["libedgetpu.so.1"]
        """,
    )
    dev = load_profile(path)
    assert isinstance(dev, DeviceProfile) and dev.threads == 2 and dev.arch is None
    assert [t.name for t in resolve_targets(device=str(path))] == ["edgetpu", "cpu"]


@pytest.mark.parametrize(
    "bad, key",
    [
        ('quantisation = "int8"', "quantisation"),  # a typo
        ("[check]\ntolerance = 0.1\nsample = 3", "check.sample"),
    ],
)
def test_unknown_key_is_named(tmp_path, bad, key):
    text = GOOD_TARGET.replace("[check]\ntolerance = 0.001\nsamples = 8\n", "") + bad + "\n"
    if "[check]" not in bad:
        text += "[check]\ntolerance = 0.1\n"
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as e:
        load_profile(path)
    assert f"'{key}'" in str(e.value) and str(path) in str(e.value)


@pytest.mark.parametrize(
    "old, new, key, expect",
    [
        ("batch = 1", 'batch = "1"', "batch", "must be an integer, got string"),
        ("batch = 1", "batch = true", "batch", "must be an integer, got boolean"),
        ("tolerance = 0.001", 'tolerance = "tight"', "check.tolerance", "must be an integer or a number"),
        ('quantization = "fp32"', 'quantization = "int4"', "quantization", "expected one of: int8, fp16, fp32"),
        ('io_dtype = "float32"', 'io_dtype = "uint8"', "io_dtype", 'needs quantization = "int8"'),
        ("batch = 1", "batch = 8", "batch", "batch-1 artifacts only"),
        ('artifact = "model_toy.tflite"', 'artifact = "../x.tflite"', "artifact", "plain file name"),
    ],
)
def test_wrong_type_or_value_names_the_key(tmp_path, old, new, key, expect):
    assert old in GOOD_TARGET
    path = write(tmp_path, GOOD_TARGET.replace(old, new))
    with pytest.raises(ConfigError) as e:
        load_profile(path)
    msg = str(e.value)
    assert f"'{key}'" in msg and expect in msg and str(path) in msg


def test_missing_required_key_and_bad_toml(tmp_path):
    with pytest.raises(ConfigError, match="missing required key 'artifact'"):
        load_profile(write(tmp_path, GOOD_TARGET.replace('artifact = "model_toy.tflite"', "")))
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_profile(write(tmp_path, 'kind = "target"\nname = '))
    with pytest.raises(ConfigError, match="does not exist"):
        load_profile(tmp_path / "nope.toml")


def test_edgetpu_target_must_be_full_int8(tmp_path):
    text = GOOD_TARGET.replace('analysis = "xnnpack"', 'analysis = "edgetpu"\naccelerator = "edgetpu"')
    with pytest.raises(ConfigError, match="Edge TPU target needs"):
        load_profile(write(tmp_path, text))


def test_device_errors_name_the_key(tmp_path):
    base = 'kind = "device"\nname = "b"\ndescription = "d"\ntargets = ["cpu"]\n'
    with pytest.raises(ConfigError, match="'delegates.npu' names no accelerator"):
        load_profile(write(tmp_path, base + '[delegates]\nnpu = ["libnpu.so"]\n'))
    with pytest.raises(ConfigError, match="'threads' must be an integer"):
        load_profile(write(tmp_path, base + 'threads = "four"\n'))
    with pytest.raises(ConfigError, match="lists a target twice"):
        load_profile(write(tmp_path, base.replace('["cpu"]', '["cpu", "cpu"]')))
    gpu_dev = write(tmp_path, base.replace('["cpu"]', '["gpu"]'))
    with pytest.raises(ConfigError, match="needs the gpu accelerator but there is no 'delegates.gpu'"):
        resolve_targets(device=str(gpu_dev))
    unknown = write(tmp_path, base.replace('["cpu"]', '["npu"]'))
    with pytest.raises(TargetError, match="unknown target 'npu'; valid targets: cpu, gpu, edgetpu"):
        resolve_targets(device=str(unknown))


def test_resolve_targets_rules():
    assert [t.name for t in resolve_targets(device="coral-usb")] == ["edgetpu", "cpu"]
    assert [t.name for t in resolve_targets(["cpu"], device="coral-usb")] == ["cpu"]
    with pytest.raises(TargetError, match="device 'rpi5' runs targets cpu; gpu is not among them"):
        resolve_targets(["gpu"], device="rpi5")
    with pytest.raises(ConfigError, match="listed more than once"):
        resolve_targets(["cpu", "cpu"])
    with pytest.raises(ConfigError, match="target list is empty"):
        resolve_targets([])
    with pytest.raises(ConfigError, match="is a target profile"):
        resolve_targets(device=str(get_target("cpu").source))


def test_profiles_and_graph_reader_import_no_tensorflow():
    code = (
        "import sys; sys.modules['tensorflow'] = None\n"  # any 'import tensorflow' now raises
        "import edgekit.profiles as p, edgekit.tflite_graph, edgekit.compile.edgetpu, edgekit.compile.gpu\n"
        "print(p.get_device('coral-devboard').targets)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "('edgetpu', 'cpu')" in proc.stdout


def test_registry_rejects_a_file_whose_name_differs(tmp_path, monkeypatch):
    import shutil

    from edgekit.resources import targets_dir

    for f in targets_dir().glob("*.toml"):
        shutil.copy(f, tmp_path / f.name)
    write(tmp_path, GOOD_TARGET, "other.toml")  # name = "toy" in other.toml
    monkeypatch.setattr("edgekit.resources.targets_dir", lambda: tmp_path)
    profiles._registry.cache_clear()
    try:
        with pytest.raises(ConfigError, match="they must match"):
            list_targets()
        (tmp_path / "other.toml").rename(tmp_path / "toy.toml")
        profiles._registry.cache_clear()
        assert list_targets() == ["cpu", "gpu", "edgetpu", "cpu-fp32", "toy"]  # a new file is a new target, after the built-ins, by name
    finally:
        profiles._registry.cache_clear()
