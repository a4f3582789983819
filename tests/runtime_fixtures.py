"""Shared helpers for the runtime tests: a real bundle, real pictures, real videos.

The bundle holds a small CNN trained for a few seconds on the shipped digits
(real 8x8 scans) and compiled by the build side's own
``edgekit.compile.build_bundle`` for the ``cpu`` (full int8), ``gpu`` (fp16)
and ``edgetpu`` (full int8, uint8 I/O; ``not_compiled`` here, as there is no
edgetpu_compiler) targets, with each artifact evaluated on the held-out split
(``split_dataset(load_digits(), 0.2, seed=0)``).

It is built once per test session (the first test that asks) and reused from
the session's temp folder: the write is atomic, so a manifest means complete.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

BUNDLE_DIR_NAME = "runtime_digits_bundle"
HOLDOUT, SEED = 0.2, 0


def digits_split():
    """(train, held_out) exactly as the bundle was built and evaluated."""
    from edgekit.data import load_digits, split_dataset

    return split_dataset(load_digits(), holdout=HOLDOUT, seed=SEED)


def _train_and_convert(dest: Path) -> None:
    from edgekit._tf import tf_keras
    from edgekit.compile.build import build_bundle
    from edgekit.data.digits import DIGITS_SPEC

    keras = tf_keras()
    keras.utils.set_random_seed(0)
    train, held_out = digits_split()
    model = keras.Sequential(
        [
            keras.layers.Input((28, 28, 1)),
            keras.layers.Conv2D(8, 3, strides=2, activation="relu"),
            keras.layers.Conv2D(16, 3, strides=2, activation="relu"),
            keras.layers.Flatten(),
            keras.layers.Dense(10, activation="softmax"),
        ],
        name="runtime_test_cnn",
    )
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(train.x, train.y, epochs=4, batch_size=64, verbose=0)
    result = build_bundle(
        dest,
        model=model,
        spec=DIGITS_SPEC,
        labels=train.class_names,
        representative=train.x[:200],
        targets=["cpu", "gpu", "edgetpu"],
        eval_data=(held_out, held_out.y),  # streamed, as compress scores it
        progress=False,
    )
    assert not result.failures, result.failures


def digits_bundle(tmp_path_factory) -> Path:
    """The session's digits bundle (built on first use).

    On a device (no TensorFlow) it is copied from ``EDGEKIT_TEST_BUNDLE``,
    made on the build side by ``python tools/make_test_bundle.py DEST``;
    without either, the test is skipped with that reason.
    """
    import os

    import pytest

    root = tmp_path_factory.getbasetemp() / BUNDLE_DIR_NAME
    if not (root / "manifest.json").is_file():
        given = os.environ.get("EDGEKIT_TEST_BUNDLE")
        if given:
            shutil.copytree(given, root)
        else:
            import importlib.util

            if importlib.util.find_spec("tensorflow") is None or importlib.util.find_spec("tf_keras") is None:
                pytest.skip("the test bundle needs TensorFlow to build; set EDGEKIT_TEST_BUNDLE (tools/make_test_bundle.py)")
            _train_and_convert(root)
    return root


def copy_bundle(src: Path, dest: Path, **manifest_changes) -> Path:
    """A copy of a bundle with top-level manifest fields replaced (artifacts untouched)."""
    shutil.copytree(src, dest)
    m = json.loads((dest / "manifest.json").read_text())
    m.update(manifest_changes)
    (dest / "manifest.json").write_text(json.dumps(m, indent=2))
    return dest


def edit_manifest(bundle: Path, fn) -> None:
    m = json.loads((bundle / "manifest.json").read_text())
    fn(m)
    (bundle / "manifest.json").write_text(json.dumps(m, indent=2))


# ---------------------------------------------------------------- pictures


def photos_bgr(size: tuple[int, int] = (160, 120)) -> dict[str, np.ndarray]:
    """scikit-image's real photographs as BGR uint8, resized to ``size`` (w, h)."""
    import cv2
    from skimage import data

    out = {}
    for name in ("astronaut", "chelsea", "coffee", "rocket"):
        rgb = getattr(data, name)()
        out[name] = cv2.resize(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), size, interpolation=cv2.INTER_AREA)
    return out


def write_photo_folder(dest: Path) -> list[Path]:
    import cv2

    dest.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, img in photos_bgr().items():
        p = dest / f"{name}.jpg"
        cv2.imwrite(str(p), img)
        paths.append(p)
    return paths


def digit_files(n_per_class: int = 3) -> list[Path]:
    """The first ``n_per_class`` shipped digit scans of each class, sorted."""
    from edgekit.resources import digits_dir

    out = []
    for cls in sorted(p for p in digits_dir().iterdir() if p.is_dir()):
        out.extend(sorted(cls.glob("*.png"))[:n_per_class])
    return out


def write_video(path: Path, frames: list[np.ndarray], fourcc: str = "FFV1", fps: float = 10.0) -> Path:
    """Write BGR (or gray) frames to a video; FFV1 is lossless, so frames decode exactly."""
    import cv2

    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (w, h))
    assert writer.isOpened(), f"this OpenCV cannot write {fourcc} to {path.suffix}"
    for f in frames:
        writer.write(f if f.ndim == 3 else cv2.cvtColor(f, cv2.COLOR_GRAY2BGR))
    writer.release()
    return path


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines()]


# ------------------------------------------------------------ a live stream


class MjpegServer:
    """A real MJPEG-over-HTTP stream (multipart/x-mixed-replace), as IP cameras serve.

    OpenCV reads it through FFmpeg exactly as it reads a camera on the
    network. Knobs to make it misbehave the way real cameras do:

    Args:
        frames: BGR pictures, served round-robin as JPEGs.
        fps: frames per second pushed to each client.
        refuse_first: the first N connections get "503 Service Unavailable".
        stop_after: after this many frames in total the stream is cut and
            every later connection is refused (a camera unplugged for good).
        files: ``{name: path}`` served whole as plain files at ``/name``
            (a finite video at a URL, as a web server or a NAS serves it);
            see :meth:`file_url`. ``frames`` may then be empty.
    """

    def __init__(self, frames=(), fps: float = 50.0, refuse_first: int = 0, stop_after: int | None = None, files=None):
        import http.server
        import socketserver
        import threading

        import cv2

        self.jpegs = [cv2.imencode(".jpg", f)[1].tobytes() for f in frames]
        self.files = {f"/{name}": Path(path).read_bytes() for name, path in (files or {}).items()}
        self.fps = fps
        self.refuse_first = refuse_first
        self.stop_after = stop_after
        self.connections = 0
        self.served = 0
        self.refused = 0
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - the http.server API
                with outer._lock:
                    outer.connections += 1
                    refuse = outer.connections <= outer.refuse_first or (
                        outer.stop_after is not None and outer.served >= outer.stop_after
                    )
                    if refuse:
                        outer.refused += 1
                if refuse:
                    self.send_error(503, "camera unavailable")
                    return
                if self.path in outer.files:
                    body = outer.files[self.path]
                    self.send_response(200)
                    self.send_header("Content-Type", "video/x-msvideo")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    try:
                        self.wfile.write(body)
                    except (BrokenPipeError, ConnectionResetError):
                        pass
                    return
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.end_headers()
                try:
                    while not outer._stopping.is_set():
                        with outer._lock:
                            if outer.stop_after is not None and outer.served >= outer.stop_after:
                                break
                            jpg = outer.jpegs[outer.served % len(outer.jpegs)]
                            outer.served += 1
                        self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(jpg) + jpg + b"\r\n")
                        self.wfile.flush()
                        outer._stopping.wait(1.0 / outer.fps)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, *args):
                pass

        socketserver.ThreadingTCPServer.allow_reuse_address = True
        self._server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/stream.mjpg"

    def file_url(self, name: str) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/{name}"

    def __enter__(self) -> "MjpegServer":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()


# --------------------------------------------------- subprocess with imports blocked

_BLOCKER = """
import sys
_BLOCKED = {blocked!r}
class _Blocker:
    # Raising from find_spec makes 'import x' fail exactly as a missing package would.
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in _BLOCKED:
            raise ImportError(f"import of {{name}} blocked by the test")
        return None
sys.meta_path.insert(0, _Blocker())
"""


def run_python(code: str, *, blocked: tuple[str, ...] = (), cwd: Path | None = None, timeout: float = 120, **popen):
    """Run ``code`` in a fresh interpreter where importing any of ``blocked`` raises ImportError."""
    import os
    import subprocess
    import sys

    env = dict(os.environ)
    env.pop("EDGEKIT_BACKEND", None)
    script = _BLOCKER.format(blocked=tuple(blocked)) + "\n" + code
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=timeout, cwd=cwd, env=env, **popen)
