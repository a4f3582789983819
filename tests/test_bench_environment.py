"""Environment capture: every key present, values read from this machine, JSON-ready, no TensorFlow."""
from __future__ import annotations

import json
import os
import platform
import subprocess
import sys

from edgekit.bench.environment import ENVIRONMENT_KEYS, capture_environment, cpu_model, temperature_c, usable_cores


def test_every_key_is_present_and_json_ready():
    from edgekit.runtime.backends import select_backend

    backend = select_backend()
    env = capture_environment(backend)
    assert tuple(env) == ENVIRONMENT_KEYS
    json.dumps(env)
    assert env["python"] == platform.python_version()
    assert env["cpu_cores_logical"] == os.cpu_count()
    assert 1 <= env["cpu_cores_usable"] <= env["cpu_cores_logical"]
    assert env["backend"] == backend.name and env["backend_version"] == backend.version
    assert env["machine"] == platform.machine()
    assert env["memory_total_mb"] > 0
    import numpy

    assert env["numpy"] == numpy.__version__


def test_cpu_model_comes_from_proc_cpuinfo():
    model = cpu_model()
    assert model
    if os.path.exists("/proc/cpuinfo"):
        with open("/proc/cpuinfo") as f:
            assert model in f.read()


def test_unreadable_values_are_none_not_guesses():
    # This machine has no cpufreq or thermal zones exposed; where a board has them, they are numbers.
    env = capture_environment()
    for key in ("governor", "temperature_c", "cpu_freq_mhz", "device_model"):
        assert env[key] is None or isinstance(env[key], (str, float))
    t = temperature_c()
    assert t is None or -40 < t < 150
    assert env["backend"] is None  # no backend given: nothing claimed
    assert usable_cores() == len(os.sched_getaffinity(0))


def test_bench_modules_import_without_tensorflow():
    code = (
        "import sys; sys.modules['tensorflow'] = None; sys.modules['tf_keras'] = None\n"
        "import edgekit.bench, edgekit.bench.report, edgekit.bench.peers, edgekit.cli.bench_cmd\n"
        "from edgekit.bench import capture_environment, BenchConfig\n"
        "capture_environment(); BenchConfig(runs=3)\n"
        "assert 'matplotlib' not in sys.modules, 'matplotlib is imported only to plot'\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
