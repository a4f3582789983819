"""Resident memory and time to first result of ``edgekit deploy`` in a given environment.

The device-side figures a user needs: how much memory the runtime takes and
how long from launching ``edgekit deploy`` to the first classified frame
(process start, imports, bundle load and sha256 check, backend and
accelerator choice, first inference, exit), measured per child process with
``os.wait4`` (peak RSS) and a wall clock. Rounds interleave the variants so a
shared machine's load hits them alike. Not a test: figures are printed, never
gated.

    python benchmarks/device_footprint.py --python /tmp/rtvenv/bin/python \\
        --bundle BUNDLE --source calibration/digits --rounds 5
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import tempfile
import time
from pathlib import Path


def run_once(cmd: list[str]) -> tuple[float, float]:
    """(wall seconds, peak RSS MiB) of one child process."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} exited {proc.returncode}")
    return wall, usage.ru_maxrss / 1024  # KiB on Linux


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--python", required=True, help="the interpreter of the environment to measure")
    ap.add_argument("--bundle", required=True)
    ap.add_argument("--source", required=True, help="an image folder")
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    py = args.python
    has_tf = subprocess.run([py, "-c", "import tensorflow"], capture_output=True).returncode == 0
    with tempfile.TemporaryDirectory() as tmp:
        variants = {
            "python startup": [py, "-c", "pass"],
            "import edgekit.cli": [py, "-c", "import edgekit.cli"],
            "deploy first result (auto)": [py, "-m", "edgekit", "deploy", args.bundle, "-s", args.source, "--max-frames", "1", "--json"],
            "deploy first result (--target cpu)": [py, "-m", "edgekit", "deploy", args.bundle, "-s", args.source, "--max-frames", "1", "--target", "cpu", "--json"],
            "deploy whole folder (auto)": [py, "-m", "edgekit", "deploy", args.bundle, "-s", args.source, "--json", "--jsonl", f"{tmp}/out.jsonl"],
        }
        results: dict[str, list[tuple[float, float]]] = {k: [] for k in variants}
        run_once(variants["deploy first result (auto)"])  # warm the page cache once
        for _ in range(args.rounds):
            for name, cmd in variants.items():
                results[name].append(run_once(cmd))
    frames = sum(1 for p in Path(args.source).rglob("*") if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
    print(f"{cpu_model()} · {os.cpu_count()} CPUs · load {os.getloadavg()[0]:.1f} · python {py} · TensorFlow importable: {has_tf}")
    print(f"{'variant':38} {'wall median s':>14} {'min s':>8} {'peak RSS MiB':>13}")
    rows = {}
    for name, vals in results.items():
        walls = [w for w, _ in vals]
        rss = max(r for _, r in vals)
        rows[name] = {"wall_median_s": statistics.median(walls), "wall_min_s": min(walls), "peak_rss_mib": rss}
        print(f"{name:38} {statistics.median(walls):14.3f} {min(walls):8.3f} {rss:13.1f}")
    print(json.dumps({"frames_in_folder": frames, "rounds": args.rounds, "results": rows}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
