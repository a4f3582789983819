"""Wall time and peak memory of ``edgekit compress`` (issue 13 item 2; a script, not a test).

    python benchmarks/compress_cost.py                      # this checkout
    python benchmarks/compress_cost.py --tree /tmp/old      # another checkout (e.g. the commit before), same data

    python benchmarks/compress_cost.py --model EfficientNetB0   # the issue's other cases (DenseNet121 too)

The case: MobileNetV2 alpha 0.5 at 128x128 (keras.applications, weights=None, 10 classes;
``--model`` picks another keras.applications family at 128x128),
200 images (20 per class from the bundled digits, resized to 128x128 RGB), the default
recipe, targets cpu,gpu,edgetpu. Each run is a fresh ``edgekit compress --json`` process
(TensorFlow import included); peak RSS is that process's ``ru_maxrss`` and CPU time its user +
system time, both from ``wait4`` (on a shared, loaded machine CPU time is the steadier figure).
With several trees, runs alternate between them (interleaved rounds) so a load change on a
shared machine hits both alike. Prints one JSON line per run and a summary.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CASE = "{model}-128, 200 images, default recipe, targets cpu,gpu,edgetpu"
MODELS = {  # name -> (constructor call, --preprocess preset)
    "MobileNetV2-0.5": ("MobileNetV2(input_shape=(128,128,3), alpha=0.5, weights=None, classes=10)", "symmetric"),
    "EfficientNetB0": ("EfficientNetB0(input_shape=(128,128,3), weights=None, classes=10)", "raw"),  # rescales inside
    "DenseNet121": ("DenseNet121(input_shape=(128,128,3), weights=None, classes=10)", "symmetric"),
}


def make_case(work: Path, name: str = "MobileNetV2-0.5") -> tuple[Path, Path]:
    """The model file and the 200-image folder (built once, shared by every run)."""
    import numpy as np
    from PIL import Image

    root = Path(__file__).resolve().parents[1]
    digits = root / "calibration" / "digits"
    data = work / "images"
    for c in range(10):
        files = sorted((digits / str(c)).glob("*.png"))[:20]
        (data / str(c)).mkdir(parents=True, exist_ok=True)
        for f in files:
            Image.open(f).convert("RGB").resize((128, 128), Image.BILINEAR).save(data / str(c) / f.name)
    code = (
        "import os, sys; os.environ['TF_USE_LEGACY_KERAS']='1'\n"
        "import tf_keras as k\n"
        f"m = k.applications.{MODELS[name][0]}\n"
        "m.save(sys.argv[1])\n"
    )
    model = _model_file(work, name)
    if model.exists():
        return model, data
    subprocess.run([sys.executable, "-c", code, str(model)], check=True, capture_output=True)
    return model, data


def _model_file(work: Path, name: str) -> Path:
    return work / ("mnv2_050_128.h5" if name == "MobileNetV2-0.5" else f"{name.lower()}_128.h5")


def _popen_rss(tree: Path, model: Path, data: Path, out: Path, preset: str = "symmetric") -> dict:
    """run_once, but measuring the child's own peak RSS (communicate() reaps it, so use wait4 directly)."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    cmd = [sys.executable, "-c", "from edgekit.cli import main; main()", "compress", str(model), "--data", str(data),
           "--out", str(out), "--preprocess", preset, "--targets", "cpu,gpu,edgetpu", "--json"]
    with tempfile.TemporaryFile("w+") as so, tempfile.TemporaryFile("w+") as se:
        t = time.perf_counter()
        # cwd=tree: `python -c` puts the working directory first on sys.path, before PYTHONPATH
        proc = subprocess.Popen(cmd, env=env, stdout=so, stderr=se, text=True, cwd=tree)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t
        proc.returncode = os.waitstatus_to_exitcode(status)
        so.seek(0)
        se.seek(0)
        stdout, stderr = so.read(), se.read()
    row = {"tree": str(tree), "exit": proc.returncode, "wall_s": round(wall, 1),
           "cpu_s": round(usage.ru_utime + usage.ru_stime, 1),  # what a busy machine does not inflate
           "peak_rss_mb": round(usage.ru_maxrss / 1024)}
    try:
        payload = json.loads(stdout)
        row["timings"] = payload.get("timings")
        row["peak_rss_mb_after"] = (payload.get("reports") or {}).get("peak_rss_mb")  # per phase (newer edgekit)
        row["failures"] = [f"{f['target']}: {f['reason'][:80]}" for f in payload.get("failures") or []]
    except json.JSONDecodeError:
        row["stderr"] = stderr[-1500:]
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tree", action="append", type=Path, help="checkout(s) to run (default: this one)")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--work", type=Path, default=None)
    ap.add_argument("--model", choices=sorted(MODELS), default="MobileNetV2-0.5")
    args = ap.parse_args()
    trees = args.tree or [Path(__file__).resolve().parents[1]]
    work = args.work or Path(tempfile.mkdtemp(prefix="compress_cost_"))
    work.mkdir(parents=True, exist_ok=True)
    model, data = make_case(work, args.model)
    cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines() if ln.startswith("model name")), platform.processor())
    print(json.dumps({"case": CASE.format(model=args.model), "cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version()}), flush=True)
    rows: dict[str, list[dict]] = {str(t): [] for t in trees}
    for r in range(args.rounds):
        for i, tree in enumerate(trees):
            row = _popen_rss(tree, model, data, work / f"bundle_{tree.name}_{r}", MODELS[args.model][1])
            rows[str(tree)].append(row)
            print(json.dumps(row), flush=True)
    for tree, rs in rows.items():
        ok = [x for x in rs if x["exit"] in (0, 1)]
        if ok:
            print(f"{tree}: median wall {statistics.median(x['wall_s'] for x in ok):.1f} s, "
                  f"median CPU {statistics.median(x['cpu_s'] for x in ok):.1f} s, "
                  f"median peak RSS {statistics.median(x['peak_rss_mb'] for x in ok):.0f} MB over {len(ok)} run(s)")


if __name__ == "__main__":
    main()
