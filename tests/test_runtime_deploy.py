"""``edgekit deploy`` and ``edgekit doctor`` end to end: outputs, error paths, signals, no TensorFlow.

Sources are real: videos and folders made from scikit-image photographs and
the shipped digit scans, and an MJPEG-over-HTTP stream served from the test
that OpenCV reads through FFmpeg like an IP camera.
"""
from __future__ import annotations

import errno
import glob
import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import runtime_fixtures as rf
from edgekit.cli import app
from edgekit.errors import SourceError
from edgekit.resources import digits_dir
from edgekit.runtime import OutputError, ReconnectPolicy, deploy

pytestmark = pytest.mark.slow
runner = CliRunner()
RECORD_KEYS = {"source", "frame", "timestamp", "topk", "ms"}
STAGE_KEYS = {"capture", "preprocess", "invoke", "postprocess"}


@pytest.fixture(scope="session")
def bundle(tmp_path_factory) -> Path:
    return rf.digits_bundle(tmp_path_factory)


@pytest.fixture()
def photo_video(tmp_path) -> Path:
    return rf.write_video(tmp_path / "photos.avi", list(rf.photos_bgr().values()) * 3, fourcc="MJPG")


def _one_error_line(result) -> str:
    assert "Traceback" not in result.output
    lines = [l for l in result.stderr.splitlines() if l.startswith("error:")]
    assert len(lines) == 1, result.output
    return lines[0]


# ----------------------------------------------------------------- happy paths


def test_deploy_a_video_writes_jsonl_an_annotated_video_and_a_summary(bundle, photo_video, tmp_path):
    import cv2

    out, video = tmp_path / "out" / "frames.jsonl", tmp_path / "out" / "annotated.mp4"
    r = runner.invoke(app, ["deploy", str(bundle), "--source", str(photo_video), "--jsonl", str(out), "--save", str(video), "--top-k", "3", "--json"])
    assert r.exit_code == 0, r.output
    summary = json.loads(r.stdout)
    assert summary["ok"] and summary["stopped_by"] == "end" and summary["frames"] == 12
    assert summary["dropped"] == 0 and summary["skipped"] == 0
    assert set(summary["latency_ms"]) == {*STAGE_KEYS, "total"}
    assert all(summary["latency_ms"][s]["n"] == 12 for s in STAGE_KEYS)
    assert summary["plan"]["file"] == "model_cpu.tflite"
    records = rf.read_jsonl(out)
    assert [r["frame"] for r in records] == list(range(12))
    for rec in records:
        assert RECORD_KEYS <= set(rec) and set(rec["ms"]) == STAGE_KEYS
        assert rec["source"] == str(photo_video) and len(rec["topk"]) == 3
        assert {t["label"] for t in rec["topk"]} <= set("0123456789")
    assert records[1]["position_ms"] == pytest.approx(100.0)
    cap = cv2.VideoCapture(str(video))
    assert cap.isOpened() and int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 12
    ok, frame = cap.read()
    assert ok and frame.shape[:2] == (240, 320)  # 160x120 scaled up to be legible
    # The top-k is drawn in the top-left corner; the rest is the picture itself.
    plain = cv2.resize(list(rf.photos_bgr().values())[0], (320, 240), interpolation=cv2.INTER_NEAREST)
    diff = np.abs(frame.astype(int) - plain.astype(int)).mean(axis=2)
    strong = diff > 60  # green text with a black outline, far from any codec error
    assert strong[:60, :120].mean() > 0.05 and strong[120:, 160:].mean() < 0.01


def test_deploy_an_image_folder_of_photos_and_digits(bundle, tmp_path):
    folder = tmp_path / "mixed"
    rf.write_photo_folder(folder / "photos")
    digits = rf.digit_files(1)
    (folder / "digits").mkdir()
    for f in digits:
        (folder / "digits" / f"{f.parent.name}_{f.name}").write_bytes(f.read_bytes())
    out = tmp_path / "mixed.jsonl"
    r = runner.invoke(app, ["deploy", str(bundle), "--source", str(folder), "--target", "cpu", "--jsonl", str(out)])
    assert r.exit_code == 0, r.output
    assert "14 frames from" in r.stdout and "the source ended" in r.stdout
    records = rf.read_jsonl(out)
    assert len(records) == 14
    by_name = {Path(rec["source"]).name: rec for rec in records}
    assert {"astronaut.jpg", "chelsea.jpg", "coffee.jpg", "rocket.jpg"} <= set(by_name)
    # The digit scans are classified as the digits they are (most of them: a small real model).
    right = sum(by_name[f"{f.parent.name}_{f.name}"]["topk"][0]["label"] == f.parent.name for f in digits)
    assert right >= 8


def test_max_frames_and_a_live_http_stream(bundle, tmp_path):
    out = tmp_path / "live.jsonl"
    with rf.MjpegServer(list(rf.photos_bgr().values()), fps=60) as server:
        r = runner.invoke(app, ["deploy", str(bundle), "--source", server.url, "--max-frames", "5", "--jsonl", str(out), "--json"])
    assert r.exit_code == 0, r.output
    summary = json.loads(r.stdout)
    assert summary["frames"] == 5 and summary["stopped_by"] == "max_frames"
    assert summary["source"] == server.url
    assert len(rf.read_jsonl(out)) == 5


def test_fallback_warning_is_one_line_and_strict_is_an_error(bundle, tmp_path):
    src = str(rf.digit_files(1)[0])
    r = runner.invoke(app, ["deploy", str(bundle), "--source", src, "--target", "edgetpu"])
    assert r.exit_code == 0, r.output
    warnings = [l for l in r.stderr.splitlines() if l.startswith("warning:")]
    assert len(warnings) == 1 and "running model_cpu.tflite on the CPU instead" in warnings[0]
    r = runner.invoke(app, ["deploy", str(bundle), "--source", src, "--target", "edgetpu", "--strict"])
    assert r.exit_code == 2
    assert "target 'edgetpu' cannot run here" in _one_error_line(r)


# ---------------------------------------------------------------- error paths


@pytest.mark.parametrize(
    "case, message",
    [
        ("missing_bundle", "does not exist"),
        ("tampered", "failed its integrity check"),
        ("target", "target 'npu' is not in bundle"),
        ("source", "source 'no/such/clip.mp4' does not exist"),
        ("delegate", "delegate library /no/such/lib.so does not exist"),
        ("show", "--show needs a window but"),
        ("device", "unknown device 'toaster'"),
    ],
)
def test_bad_input_is_one_clear_line_and_writes_nothing(bundle, tmp_path, case, message):
    b, args = bundle, []
    src = str(rf.digit_files(1)[0])
    if case == "missing_bundle":
        b = tmp_path / "nope"
    elif case == "tampered":
        b = rf.copy_bundle(bundle, tmp_path / "tampered")
        data = bytearray((b / "model_cpu.tflite").read_bytes())
        data[200] ^= 0x01
        (b / "model_cpu.tflite").write_bytes(bytes(data))
    elif case == "target":
        args = ["--target", "npu"]
    elif case == "source":
        src = "no/such/clip.mp4"
    elif case == "delegate":
        args = ["--delegate", "/no/such/lib.so"]
    elif case == "show":
        args = ["--show"]
    elif case == "device":
        args = ["--device", "toaster"]
    out = tmp_path / "results" / "out.jsonl"
    r = runner.invoke(app, ["deploy", str(b), "--source", src, "--jsonl", str(out), *args])
    assert r.exit_code == 2, r.output
    assert message in _one_error_line(r)
    assert not out.exists() and not out.parent.exists()


def test_corrupt_frames_are_skipped_counted_and_named(bundle, tmp_path):
    folder = tmp_path / "pics"
    rf.write_photo_folder(folder)
    (folder / "zz_truncated.jpg").write_bytes((folder / "coffee.jpg").read_bytes()[:500])
    (folder / "zz_noise.png").write_bytes(os.urandom(300))
    r = runner.invoke(app, ["deploy", str(bundle), "--source", str(folder), "--json"])
    assert r.exit_code == 0, r.output
    s = json.loads(r.stdout)
    assert s["frames"] == 4 and s["skipped"] == 2
    assert [Path(p).name for p in s["skipped_items"]] == ["zz_noise.png", "zz_truncated.jpg"]
    assert sum(l.startswith("warning: skipped unreadable frame") for l in r.stderr.splitlines()) == 2


def test_camera_unplugged_mid_run_gives_up_and_keeps_what_was_written(bundle, tmp_path):
    out = tmp_path / "unplugged.jsonl"
    policy = ReconnectPolicy(attempts=3, open_attempts=1, initial_delay=0.05, max_delay=0.1)
    with rf.MjpegServer(list(rf.photos_bgr().values()), fps=100, stop_after=8) as server:
        # A slow consumer keeps the queue full, so the loss is seen mid-run.
        result = deploy(bundle, server.url, jsonl=out, policy=policy, on_result=lambda _r: time.sleep(0.01))
    assert isinstance(result.error, SourceError) and result.stopped_by == "error"
    assert "gave up after 3 reconnect attempts" in str(result.error)
    assert "results written so far are kept" in str(result.error)
    lines = rf.read_jsonl(out)  # every line parses
    assert len(lines) == result.stats.frames >= 1
    assert result.stats.frames + result.stats.dropped == 8
    assert server.refused == 3


class _DiskFillsAfter(io.TextIOWrapper):
    """A real file whose disk 'fills' after n lines: the next write lands half a line, then ENOSPC."""

    def __init__(self, path: Path, n: int):
        super().__init__(open(path, "wb"), encoding="utf-8")
        self.n = n

    def write(self, s: str) -> int:
        if self.n == 0:
            super().write(s[: len(s) // 2])
            super().flush()
            raise OSError(errno.ENOSPC, "No space left on device")
        self.n -= 1
        return super().write(s)


def test_full_disk_stops_the_run_and_keeps_every_complete_line(bundle, tmp_path):
    path = tmp_path / "filling.jsonl"
    f = _DiskFillsAfter(path, 5)
    result = deploy(bundle, str(digits_dir()), jsonl=f)
    f.close()
    assert isinstance(result.error, OutputError) and result.stopped_by == "error"
    assert str(result.error).startswith("stopped: the disk holding")
    assert "the 5 lines written before are kept" in str(result.error)
    assert len(rf.read_jsonl(path)) == 5  # the half line was cut back
    assert result.outputs["jsonl"]["lines"] == 5


def test_a_write_that_fails_mid_line_on_a_real_file_is_cut_back(bundle, tmp_path):
    """The OS refuses bytes past a file-size limit (RLIMIT_FSIZE): a real short write, then EFBIG."""
    out = tmp_path / "limited.jsonl"
    code = f"""
import json, resource, signal
from edgekit.runtime import deploy
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # get EFBIG instead of being killed
resource.setrlimit(resource.RLIMIT_FSIZE, (1500, resource.RLIM_INFINITY))
r = deploy({str(bundle)!r}, {str(digits_dir())!r}, jsonl={str(out)!r})
print(json.dumps({{"error": str(r.error), "lines": r.outputs["jsonl"]["lines"], "frames": r.stats.frames}}))
"""
    p = rf.run_python(code)
    assert p.returncode == 0, p.stderr[-3000:]
    got = json.loads(p.stdout.strip().splitlines()[-1])
    assert got["error"].startswith(f"stopped: writing {out} failed: File too large")
    lines = rf.read_jsonl(out)  # parses: the partial line is gone
    assert len(lines) == got["lines"] == got["frames"] - 1 >= 3
    assert out.stat().st_size < 1500


def test_full_disk_through_the_cli_prints_summary_then_one_error(bundle, photo_video):
    r = runner.invoke(app, ["deploy", str(bundle), "--source", str(photo_video), "--jsonl", "/dev/full"])
    assert r.exit_code == 2
    line = _one_error_line(r)
    assert "the disk holding /dev/full is full; the 0 lines written before are kept" in line
    assert "stopped by an error" in r.stderr


# -------------------------------------------------------------------- signals


def _wait_for_lines(path: Path, n: int, timeout: float = 30) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if path.exists() and path.read_text().count("\n") >= n:
            return
        time.sleep(0.05)
    raise AssertionError(f"{path} never reached {n} lines")


def test_sigterm_stops_cleanly_prints_the_summary_and_keeps_results(bundle, tmp_path):
    out = tmp_path / "term.jsonl"
    with rf.MjpegServer(list(rf.photos_bgr().values()), fps=50) as server:
        proc = subprocess.Popen(
            [sys.executable, "-c", "from edgekit.cli import main; main()", "deploy", str(bundle), "--source", server.url, "--jsonl", str(out), "--json"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        try:
            _wait_for_lines(out, 3)
            proc.send_signal(signal.SIGTERM)
            stdout, stderr = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
    # 143 = 128 + SIGTERM, as a shell reports it: a cancelled run is not a success.
    assert proc.returncode == 143, stderr[-2000:]
    summary = json.loads(stdout)
    assert summary["stopped_by"] == "SIGTERM" and summary["ok"]
    lines = rf.read_jsonl(out)
    assert len(lines) == summary["frames"] >= 3


def test_ctrl_c_in_process_stops_with_summary_and_exit_130(bundle, tmp_path):
    out = tmp_path / "int.jsonl"

    def interrupt_when_running():
        _wait_for_lines(out, 2)
        os.kill(os.getpid(), signal.SIGINT)

    with rf.MjpegServer(list(rf.photos_bgr().values()), fps=50) as server:
        t = threading.Thread(target=interrupt_when_running, daemon=True)
        t.start()
        r = runner.invoke(app, ["deploy", str(bundle), "--source", server.url, "--jsonl", str(out)])
        t.join(5)
    assert r.exit_code == 130, r.output
    assert "stopped by Ctrl-C" in r.stdout
    assert len(rf.read_jsonl(out)) >= 2
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handler restored


# --------------------------------------------------------------- no TensorFlow


BUILD_SIDE = ("tensorflow", "tf_keras", "keras", "tensorflow_model_optimization")


def test_deploy_runs_where_tensorflow_cannot_be_imported(bundle, photo_video, tmp_path):
    out, saved = tmp_path / "notf.jsonl", tmp_path / "notf.avi"
    code = f"""
import json, sys
import edgekit.runtime
from edgekit.runtime import deploy, diagnose
r = deploy({str(bundle)!r}, {str(photo_video)!r}, target="auto", jsonl={str(out)!r}, save={str(saved)!r})
report = diagnose({str(bundle)!r})
build_side = [m for m in sys.modules if m.split(".")[0] in {BUILD_SIDE!r}
              or m.startswith(("edgekit._tf", "edgekit.compile", "edgekit.intake", "edgekit.compress"))]
print(json.dumps({{"frames": r.stats.frames, "ok": r.ok, "backend": report["backend"]["selected"], "build_side": build_side}}))
"""
    p = rf.run_python(code, blocked=BUILD_SIDE)
    assert p.returncode == 0, p.stderr[-3000:]
    got = json.loads(p.stdout.strip().splitlines()[-1])
    assert got == {"frames": 12, "ok": True, "backend": "ai_edge_litert", "build_side": []}
    assert len(rf.read_jsonl(out)) == 12 and saved.stat().st_size > 0


def test_the_cli_deploy_runs_where_tensorflow_cannot_be_imported(bundle, tmp_path):
    out = tmp_path / "cli_notf.jsonl"
    code = f"""
import sys
from edgekit.cli import main
sys.argv = ["edgekit", "deploy", {str(bundle)!r}, "--source", {str(digits_dir())!r}, "--jsonl", {str(out)!r}]
try:
    main()
except SystemExit as e:
    code = e.code
print("EXIT", code, "tensorflow" in sys.modules)
"""
    p = rf.run_python(code, blocked=BUILD_SIDE)
    assert p.returncode == 0, p.stderr[-3000:]
    assert p.stdout.strip().splitlines()[-1] == "EXIT 0 False"
    assert len(rf.read_jsonl(out)) == 1797


# ---------------------------------------------------------------------- doctor


def test_opencv_build_information_is_read_in_one_place():
    import cv2

    from edgekit.runtime.doctor import _check_opencv
    from edgekit.runtime.outputs import gui_available
    from edgekit.runtime.sources import opencv_build_info

    info = opencv_build_info()
    raw = cv2.getBuildInformation()
    assert "GUI:" in raw and info["GUI"] == raw.split("GUI:", 1)[1].splitlines()[0].strip()
    assert info["FFMPEG"] == "YES" and info["v4l/v4l2"].startswith("YES")
    d = _check_opencv()
    assert (d["gui"], d["ffmpeg"], d["gstreamer"], d["v4l2"]) == (info["GUI"], info["FFMPEG"], info["GStreamer"], info["v4l/v4l2"])
    ok, why = gui_available()
    assert ok is False and why.startswith("this OpenCV build has no GUI support") and info["GUI"] == "NONE"


def test_doctor_reports_backend_accelerators_opencv_and_cameras(bundle):
    r = runner.invoke(app, ["doctor", "--json", "--bundle", str(bundle)])
    assert r.exit_code == 0, r.output
    import ai_edge_litert

    d = json.loads(r.stdout)
    assert d["backend"]["selected"] == "ai_edge_litert" and d["backend"]["version"] == ai_edge_litert.__version__
    import importlib.util

    from edgekit.runtime import find_library

    # Absent on the build machine; a Pi or Coral board may have them.
    tfl = d["backend"]["others"].get("tflite_runtime", "")
    assert tfl == "not installed" if importlib.util.find_spec("tflite_runtime") is None else tfl.startswith("installed")
    assert d["accelerators"]["edgetpu"]["library"] == find_library("libedgetpu.so.1")
    assert "libLiteRtWebGpuAccelerator.so" in d["accelerators"]["gpu"]["litert_accelerator_libraries"]
    assert d["opencv"]["gui"] == "NONE" and d["opencv"]["show_window"] is False
    assert "FFMPEG" in d["opencv"]["video_backends"] and "GSTREAMER" not in d["opencv"]["video_backends"]
    assert [c["device"] for c in d["cameras"]] == sorted(glob.glob("/dev/video*"), key=lambda p: (len(p), p))
    rows = {row["target"]: row for row in d["bundle"]["artifacts"]}
    assert rows["cpu"]["runs"] is True
    assert rows["edgetpu"]["runs"] is False and "not compiled" in rows["edgetpu"]["reason"]
    table = runner.invoke(app, ["doctor"])
    assert table.exit_code == 0
    assert f"interpreter backend: ai_edge_litert {ai_edge_litert.__version__}" in table.stdout
    assert "GUI NONE" in table.stdout


def test_jsonl_dash_writes_to_stdout_and_the_summary_to_stderr(bundle, tmp_path):
    images = rf.digit_files(1)[:3]
    folder = tmp_path / "few"
    folder.mkdir()
    for p in images:
        (folder / p.name).write_bytes(p.read_bytes())
    r = runner.invoke(app, ["deploy", str(bundle), "--source", str(folder), "--jsonl", "-"])
    assert r.exit_code == 0, r.output
    records = [json.loads(line) for line in r.stdout.splitlines()]
    assert len(records) == 3 and all(RECORD_KEYS <= set(rec) for rec in records)
    assert "frames from" in r.stderr
    assert not (Path.cwd() / "-").exists()


def test_deploy_on_one_image_shows_its_prediction(bundle, tmp_path):
    image = rf.digit_files(1)[0]
    r = runner.invoke(app, ["deploy", str(bundle), "--source", str(image)])
    assert r.exit_code == 0, r.output
    line = next(l for l in r.stdout.splitlines() if str(image) in l and "frame 0:" in l)
    label = line.split("frame 0:", 1)[1].split()[0]
    assert label in json.loads((bundle / "manifest.json").read_text())["labels"]


@pytest.mark.parametrize("how", ["cli", "api"])
def test_a_live_run_with_max_frames_exits_cleanly(bundle, how):
    """No abort at interpreter exit (was 134 'FATAL: exception not rethrown' or 139) after a live run."""
    if how == "cli":
        code = f"from edgekit.cli import main; import sys; sys.argv = ['edgekit', 'deploy', {str(bundle)!r}, '--source', URL, '--max-frames', '3']; main()"
    else:
        code = f"from edgekit.runtime import Predictor\np = Predictor.from_bundle({str(bundle)!r})\nprint(len(list(p.run(URL, max_frames=3))))"
    env = {**os.environ, "PYTHONPATH": f"{Path(__file__).resolve().parents[1]}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    with rf.MjpegServer(list(rf.photos_bgr().values()), fps=60) as server:
        for _ in range(2):
            p = subprocess.run([sys.executable, "-c", code.replace("URL", repr(server.url))], capture_output=True, text=True,
                               timeout=120, env=env)
            assert p.returncode in (0,), (p.returncode, p.stderr[-1500:])
            assert "FATAL" not in p.stderr
