"""Peak memory and wall time of ``edgekit compress`` as the data set grows (issue 14).

Makes image folders of N JPEGs at 224x224 from scikit-image's real sample
photographs (random crops, flips and scales; one class per source photo), a
MobileNetV2-0.5 (``keras.applications``, ``weights=None``, a small
classification head), and runs ``edgekit compress --epochs 1`` on each folder
in a fresh process, recording its peak RSS (``ru_maxrss`` of the child) and
wall time. Streaming data means the peak RSS should not grow with N.

Not a test: run it by hand and report the figures with the CPU model::

    python benchmarks/streaming_data.py make /tmp/ek-2k 2000
    python benchmarks/streaming_data.py model /tmp/ek-mnv2
    python benchmarks/streaming_data.py run /tmp/ek-mnv2/mobilenetv2_050.h5 /tmp/ek-2k --json out.jsonl
    python benchmarks/streaming_data.py stream /tmp/ek-20k --json out.jsonl

``stream`` isolates the data path (no model): it lists and checks the folder,
splits it, and feeds one epoch of the fine-tuning ``tf.data`` stream plus one
pass over the held-out split, in a child process, reporting the same figures.

Measured 2026-11-27 on a shared 2-core AMD EPYC (other jobs running; wall
times are only roughly comparable): ``run`` 2,000 images 4,201 MiB peak RSS /
266 s, 5,004 images 4,101 MiB / 275 s; ``stream`` 2,000 images 806 MiB / 74 s,
20,000 images 808 MiB / 264 s; later, ``run`` 20,000 images 4,318 MiB / 818 s
(load ~4; QAT 667 s of it).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry")
SIZE = 224


def make_folder(dest: str | Path, n: int, *, seed: int = 0, quality: int = 90) -> dict[str, int]:
    """Write ``n`` 224x224 JPEGs to ``dest/<photo>/<i>.jpg``: crops, flips and scales of skimage photos."""
    import cv2
    import skimage.data

    out = Path(dest)
    rng = np.random.default_rng(seed)
    photos = {name: cv2.cvtColor(getattr(skimage.data, name)(), cv2.COLOR_RGB2BGR) for name in PHOTOS}
    counts = {name: 0 for name in PHOTOS}
    for name in PHOTOS:
        (out / name).mkdir(parents=True, exist_ok=True)
    for i in range(n):
        name = PHOTOS[i % len(PHOTOS)]
        img = photos[name]
        h, w = img.shape[:2]
        side = int(rng.uniform(0.35, 1.0) * min(h, w))  # a crop of 35-100 % of the short side...
        y0 = int(rng.integers(0, h - side + 1))
        x0 = int(rng.integers(0, w - side + 1))
        crop = img[y0 : y0 + side, x0 : x0 + side]
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        if rng.random() < 0.2:
            crop = crop[::-1]
        crop = cv2.resize(np.ascontiguousarray(crop), (SIZE, SIZE), interpolation=cv2.INTER_AREA)  # ...scaled to 224
        ok, jpg = cv2.imencode(".jpg", crop, [cv2.IMWRITE_JPEG_QUALITY, quality])
        if not ok:
            raise RuntimeError(f"OpenCV could not encode image {i}")
        (out / name / f"{i:06d}.jpg").write_bytes(jpg.tobytes())
        counts[name] += 1
    return counts


def make_model(dest: str | Path, classes: int = len(PHOTOS)) -> Path:
    """MobileNetV2 alpha=0.5 at 224x224 (random weights) + GAP + Dense softmax, saved as tf_keras .h5 with its spec."""
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    import tf_keras as keras

    from edgekit.preprocess import PreprocessSpec

    keras.utils.set_random_seed(0)
    base = keras.applications.MobileNetV2(input_shape=(SIZE, SIZE, 3), alpha=0.5, include_top=False, weights=None, pooling="avg")
    head = keras.layers.Dense(classes, activation="softmax", name="head")(keras.layers.Dropout(0.2)(base.output))
    model = keras.Model(base.input, head, name="mobilenetv2_050")
    out = Path(dest)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "mobilenetv2_050.h5"
    model.save(path)
    spec = PreprocessSpec.from_preset("symmetric", (SIZE, SIZE), channels=3, output="probabilities")
    Path(str(path) + ".preprocess.json").write_text(
        json.dumps({"preprocess": spec.to_dict(), "labels": sorted(PHOTOS)}, indent=2), encoding="utf-8"
    )
    return path


RECIPE = """\
description = "streaming benchmark: 1 epoch of QAT, full int8"
epochs = 1
batch_size = 32
qat = true
calibration_samples = 100
holdout = 0.2
targets = ["cpu"]
"""


def run_one(model: Path, data: Path, out: Path, recipe: Path, extra: list[str]) -> dict[str, object]:
    """One ``edgekit compress`` in a child process; its peak RSS and wall time."""
    cmd = [
        sys.executable, "-c", "from edgekit.cli import main; main()", "compress", str(model),
        "--data", str(data), "--out", str(out), "--recipe", str(recipe), "--json", *extra,
    ]  # fmt: skip
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    images = sum(1 for _ in data.rglob("*.jpg"))
    row: dict[str, object] = {"mode": "compress", "images": images, "rc": proc.returncode, "wall_s": round(wall, 1), "peak_rss_mib": round(peak_kib / 1024, 1)}
    if peak_kib <= before:
        row["note"] = "peak RSS not above an earlier child's; run each size in its own invocation"
    if proc.returncode == 0:
        res = json.loads(proc.stdout)
        row["timings"] = res["timings"]
        row["data"] = res["reports"]["data"]
    else:
        row["stderr"] = proc.stderr[-2000:]
    return row


_STREAM_CHILD = """
import json, sys, time
from edgekit._tf import tf
from edgekit.compress.finetune import training_data, steps_per_epoch
from edgekit.data import load_dataset, split_dataset
from edgekit.preprocess import PreprocessSpec
import numpy as np

t0 = time.perf_counter()
spec = PreprocessSpec.from_preset("symmetric", (224, 224), channels=3)
ds = load_dataset(sys.argv[1], spec)
train, held = split_dataset(ds, holdout=0.2, seed=0)
t1 = time.perf_counter()
stream = training_data(train, train.y, 32, seed=0)
n = 0
for images, labels in stream.take(steps_per_epoch(len(train), 32)):
    n += int(images.shape[0])
t2 = time.perf_counter()
m = 0
for batch in held.batches(64):
    m += len(batch)
t3 = time.perf_counter()
print(json.dumps({"listed_s": round(t1 - t0, 1), "train_epoch_s": round(t2 - t1, 1), "held_out_pass_s": round(t3 - t2, 1),
                  "train_images": n, "held_out_images": m}))
"""


def stream_one(data: Path) -> dict[str, object]:
    """The data path alone (list + check, one fine-tuning epoch's stream, one held-out pass) in a child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", _STREAM_CHILD, str(data)], capture_output=True, text=True)
    wall = time.perf_counter() - t
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    row: dict[str, object] = {"mode": "stream", "images": sum(1 for _ in data.rglob("*.jpg")), "rc": proc.returncode,
                              "wall_s": round(wall, 1), "peak_rss_mib": round(peak_kib / 1024, 1)}  # fmt: skip
    if peak_kib <= before:
        row["note"] = "peak RSS not above an earlier child's; run each size in its own invocation"
    if proc.returncode == 0:
        row.update(json.loads(proc.stdout.strip().splitlines()[-1]))
    else:
        row["stderr"] = proc.stderr[-2000:]
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("make", help="write an image folder of N JPEGs")
    m.add_argument("dest")
    m.add_argument("n", type=int)
    mm = sub.add_parser("model", help="save MobileNetV2-0.5 (random weights) and its preprocessing spec")
    mm.add_argument("dest")
    r = sub.add_parser("run", help="edgekit compress --epochs 1 on one folder (one per invocation: ru_maxrss is a maximum)")
    r.add_argument("model")
    r.add_argument("data")
    r.add_argument("--out", default=None)
    r.add_argument("--json", default=None, help="append the result row to this JSON-lines file")
    r.add_argument("extra", nargs="*", help="more compress flags, after --")
    st = sub.add_parser("stream", help="the data path alone on one folder (no model)")
    st.add_argument("data")
    st.add_argument("--json", default=None)
    a = ap.parse_args()
    if a.cmd == "stream":
        row = stream_one(Path(a.data))
        row["cpu"] = _cpu()
        print(json.dumps(row, indent=2))
        if a.json:
            with open(a.json, "a", encoding="utf-8") as f:
                f.write(json.dumps(row) + "\n")
        return
    if a.cmd == "make":
        print(json.dumps(make_folder(a.dest, a.n)))
    elif a.cmd == "model":
        print(make_model(a.dest))
    else:
        data = Path(a.data)
        out = Path(a.out or f"{data}-bundle")
        recipe = out.parent / f"{out.name}-recipe.toml"
        recipe.write_text(RECIPE, encoding="utf-8")
        row = run_one(Path(a.model), data, out, recipe, a.extra)
        row["cpu"] = _cpu()
        row["python"] = platform.python_version()
        print(json.dumps(row, indent=2))
        if a.json:
            with open(a.json, "a", encoding="utf-8") as f:
                f.write(json.dumps(row) + "\n")


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip() + f" ({os.cpu_count()} logical CPUs)"
    except OSError:
        pass
    return platform.processor()


if __name__ == "__main__":
    main()
