"""Sources: parsing --source, image folders and globs, video files, live streams.

All pictures are real (scikit-image photographs, the shipped digit scans);
videos are written and decoded by this OpenCV; the live stream is a real
MJPEG-over-HTTP server read through FFmpeg.
"""
from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import runtime_fixtures as rf
from edgekit.errors import SourceError
from edgekit.preprocess import read_image
from edgekit.runtime.sources import ImageSource, LiveSource, ReconnectPolicy, VideoFileSource, open_source

FAST = ReconnectPolicy(attempts=3, open_attempts=3, initial_delay=0.05, factor=2.0, max_delay=0.2)


def test_folder_is_read_recursively_in_order_and_unreadable_files_are_counted(tmp_path):
    folder = tmp_path / "pics"
    good = rf.write_photo_folder(folder / "a")
    (folder / "b").mkdir()
    (folder / "b" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)  # header only: truncated
    (folder / "b" / "garbage.jpg").write_bytes(b"this is not a jpeg")
    (folder / "notes.txt").write_text("ignored: not an image name")
    src = open_source(folder)
    assert isinstance(src, ImageSource) and not src.live and src.total == len(good) + 2
    frames = list(src.frames())
    assert [f.source for f in frames] == [str(p) for p in sorted(good)]
    assert src.skipped == 2 and any("garbage.jpg" in s for s in src.skipped_items)
    for f in frames:
        assert np.array_equal(f.image, read_image(f.source))


def test_glob_single_image_and_video_are_recognised(tmp_path):
    paths = rf.write_photo_folder(tmp_path)
    g = open_source(str(tmp_path / "c*.jpg"))
    assert [Path(f.source).name for f in g.frames()] == ["chelsea.jpg", "coffee.jpg"]
    one = open_source(paths[0])
    assert isinstance(one, ImageSource) and one.total == 1
    video = rf.write_video(tmp_path / "v.avi", list(rf.photos_bgr().values()))
    v = open_source(video)
    assert isinstance(v, VideoFileSource) and v.total == 4 and v.fps == pytest.approx(10.0)


def test_video_file_is_read_in_full_and_exactly(tmp_path):
    photos = list(rf.photos_bgr().values()) * 5
    path = rf.write_video(tmp_path / "lossless.avi", photos, fourcc="FFV1")
    src = open_source(path)
    frames = list(src.frames())
    assert [f.index for f in frames] == list(range(20))
    assert src.dropped == 0 and src.skipped == 0
    assert all(np.array_equal(f.image, p) for f, p in zip(frames, photos))
    assert frames[3].position_ms == pytest.approx(300.0)


def _zero_mjpeg_frames(path: Path, which: list[int]) -> None:
    """Overwrite whole JPEG payloads inside an AVI's movi chunks (frames become undecodable)."""
    data = bytearray(path.read_bytes())
    chunks = [i for i in range(len(data) - 8) if data[i : i + 4] == b"00dc"]
    # the first '00dc' is the stream header's, the frames follow in order
    frames = [i for i in chunks if int.from_bytes(data[i + 4 : i + 8], "little") > 100]
    for k in which:
        start = frames[k] + 8
        size = int.from_bytes(data[frames[k] + 4 : frames[k] + 8], "little")
        data[start : start + size] = bytes(size)
    path.write_bytes(bytes(data))


def test_corrupt_video_frames_are_skipped_and_counted(tmp_path):
    photos = list(rf.photos_bgr().values()) * 3
    path = rf.write_video(tmp_path / "damaged.avi", photos, fourcc="MJPG")
    _zero_mjpeg_frames(path, [4, 7])
    src = open_source(path)
    frames = list(src.frames())
    assert [f.index for f in frames] == [0, 1, 2, 3, 5, 6, 8, 9, 10, 11]
    assert src.skipped == 2 and src.skipped_items[0].endswith("frame 4")


@pytest.mark.parametrize(
    "source, message",
    [
        ("no/such/file.mp4", "does not exist"),
        ("no/such/*.jpg", "matches no files"),
    ],
)
def test_missing_sources_are_named(source, message):
    with pytest.raises(SourceError, match=message) as e:
        open_source(source)
    assert source in str(e.value)


def test_empty_folder_and_non_video_file_are_clear_errors(tmp_path):
    with pytest.raises(SourceError, match="has no images"):
        open_source(tmp_path)
    fake = tmp_path / "clip.mp4"
    fake.write_text("not a video at all")
    with pytest.raises(SourceError, match=r"cannot open video file .*clip\.mp4"):
        open_source(fake)


def test_missing_camera_fails_fast_with_what_exists():
    t0 = time.monotonic()
    with pytest.raises(SourceError, match=r"cannot open camera 9 .*3 attempts") as e:
        open_source(9, policy=FAST)
    assert "/dev/video" in str(e.value)  # says which cameras exist (or that none do)
    assert time.monotonic() - t0 < 5


def test_live_stream_over_http_is_read_on_a_thread():
    with rf.MjpegServer(list(rf.photos_bgr().values()), fps=100) as server:
        src = open_source(server.url, policy=FAST)
        assert isinstance(src, LiveSource) and src.live
        got = []
        for frame in src.frames():
            got.append(frame)
            if len(got) == 5:
                break
        src.close()
    assert all(f.image.shape == (120, 160, 3) for f in got)
    assert [f.index for f in got] == sorted(f.index for f in got)


def test_live_source_drops_the_oldest_frames_when_the_consumer_is_slow():
    with rf.MjpegServer(list(rf.photos_bgr().values()), fps=200) as server:
        src = open_source(server.url, policy=FAST, queue_size=2)
        got = []
        for frame in src.frames():
            got.append(frame.index)
            time.sleep(0.05)  # a slow model: 20 fps against a 200 fps camera
            if len(got) == 8:
                break
        src.close()
    assert src.dropped > 10
    # Each frame taken is newer than the last by more than one: the queue kept the newest.
    assert all(b > a for a, b in zip(got, got[1:]))
    assert got[-1] - got[0] > len(got)


def test_stream_that_fails_then_recovers_is_opened_by_retrying():
    with rf.MjpegServer(list(rf.photos_bgr().values()), fps=100, refuse_first=2) as server:
        src = open_source(server.url, policy=FAST)
        first = next(iter(src.frames()))
        src.close()
    assert server.refused == 2 and first.image.shape == (120, 160, 3)


def test_stream_lost_mid_run_reconnects_then_gives_up_with_a_clear_message():
    policy = ReconnectPolicy(attempts=3, open_attempts=1, initial_delay=0.05, max_delay=0.1)
    with rf.MjpegServer(list(rf.photos_bgr().values()), fps=100, stop_after=6) as server:
        src = open_source(server.url, policy=policy, queue_size=16)
        got = []
        with pytest.raises(SourceError, match=r"lost http://127\.0\.0\.1:\d+/stream\.mjpg and gave up after 3 reconnect attempts"):
            for frame in src.frames():
                got.append(frame)
    assert len(got) == 6  # every frame that arrived before the loss was delivered
    assert server.refused == 3


def _read_bounded(src, limit: int) -> list:
    """Frames until the source ends, or ``limit`` of them (a source that loops would never end)."""
    got = []
    for frame in src.frames():
        got.append(frame)
        if len(got) >= limit:
            break
    src.close()
    return got


def test_finite_video_at_a_url_ends_cleanly_at_its_last_frame(tmp_path):
    photos = list(rf.photos_bgr().values()) * 2
    clip = rf.write_video(tmp_path / "clip.avi", photos, fourcc="FFV1")
    with rf.MjpegServer(files={"clip.avi": clip}) as server:
        src = open_source(server.file_url("clip.avi"), policy=FAST, queue_size=64)
        assert isinstance(src, LiveSource)
        got = _read_bounded(src, 3 * len(photos))
    # The end of the file is the end: no reconnect, no replay from frame 0.
    assert [f.index for f in got] == list(range(len(photos)))
    assert all(np.array_equal(f.image, p) for f, p in zip(got, photos))
    assert src.reconnects == 0 and server.connections == 1


def test_damaged_frame_in_a_finite_video_at_a_url_is_skipped_not_a_lost_stream(tmp_path):
    photos = list(rf.photos_bgr().values()) * 2
    clip = rf.write_video(tmp_path / "clip.avi", photos, fourcc="MJPG")
    _zero_mjpeg_frames(clip, [3])
    with rf.MjpegServer(files={"clip.avi": clip}) as server:
        src = open_source(server.file_url("clip.avi"), policy=FAST, queue_size=64)
        got = _read_bounded(src, 3 * len(photos))
    assert [f.index for f in got] == [0, 1, 2, 4, 5, 6, 7]
    assert src.skipped == 1 and src.reconnects == 0 and server.connections == 1


def test_stream_that_reopens_but_brings_no_new_frame_gives_up(tmp_path):
    """A finite video cut short by the server: every reopen replays the same 4 frames, then fails."""
    photos = list(rf.photos_bgr().values()) * 2
    full = rf.write_video(tmp_path / "full.avi", photos, fourcc="MJPG")
    data = full.read_bytes()
    frames = [i for i in range(len(data) - 8) if data[i : i + 4] == b"00dc" and int.from_bytes(data[i + 4 : i + 8], "little") > 100]
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[: frames[4]])  # the header still says 8 frames
    policy = ReconnectPolicy(attempts=3, open_attempts=1, initial_delay=0.05, max_delay=0.1)
    with rf.MjpegServer(files={"cut.avi": cut}) as server:
        src = open_source(server.file_url("cut.avi"), policy=policy, queue_size=64)
        got = []
        with pytest.raises(SourceError, match=r"gave up after 3 reconnect attempts .*3 reopen\(s\) succeeded but delivered no new frame"):
            for frame in src.frames():
                got.append(frame)
                assert len(got) <= 3 * len(photos), "the source keeps replaying the same frames"
    assert [f.index for f in got] == [0, 1, 2, 3]  # each frame once, though the server sent it 4 times
    assert server.connections == 4


def test_video_file_that_appears_late_is_picked_up_by_reconnecting(tmp_path):
    """An injectable opener over a real file: opening fails until the file exists."""
    import cv2

    final = tmp_path / "late.avi"
    staged = rf.write_video(tmp_path / "staged.avi", list(rf.photos_bgr().values()), fourcc="FFV1")
    threading.Timer(0.2, lambda: shutil.move(staged, final)).start()
    policy = ReconnectPolicy(attempts=0, open_attempts=10, initial_delay=0.05, factor=1.5, max_delay=0.2)
    src = LiveSource("late file", lambda: cv2.VideoCapture(str(final)), policy=policy, queue_size=8)
    frame = next(iter(src.frames()))
    src.close()
    assert frame.image.shape == (120, 160, 3)


def test_reconnect_policy_backoff_is_capped():
    p = ReconnectPolicy(initial_delay=0.5, factor=2, max_delay=3)
    assert [p.delay(i) for i in range(1, 7)] == [0.0, 0.5, 1.0, 2.0, 3.0, 3.0]
    with pytest.raises(ValueError):
        ReconnectPolicy(open_attempts=0)


def _exit_after_a_few_live_frames(url: str, root: Path) -> list[int]:
    """Three fresh interpreters read a few frames of a live stream, break out, and exit."""
    import os
    import subprocess
    import sys

    code = f"""
from edgekit.runtime.sources import open_source
src = open_source({url!r})
for i, frame in enumerate(src.frames()):
    if i == 2:
        break
"""
    env = {**os.environ, "PYTHONPATH": f"{root}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    codes = []
    for _ in range(3):
        p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env)
        assert "FATAL" not in p.stderr, p.stderr[-1000:]
        codes.append(p.returncode)
    return codes


def test_live_source_left_open_still_exits_cleanly():
    """The capture thread is joined at exit even when nobody closed the source (no abort 134/139)."""
    with rf.MjpegServer(list(rf.photos_bgr().values()), fps=100) as server:
        codes = _exit_after_a_few_live_frames(server.url, Path(__file__).resolve().parents[1])
    assert codes == [0, 0, 0]


def test_closing_a_live_source_joins_its_capture_thread():
    with rf.MjpegServer(list(rf.photos_bgr().values()), fps=100) as server:
        src = open_source(server.url, policy=FAST)
        for i, _ in enumerate(src.frames()):
            if i == 2:
                break
        src.close()
        assert src._thread is not None and not src._thread.is_alive()


def test_a_truncated_video_accounts_for_every_frame(tmp_path):
    """A copy cut short: frames read + skipped + unread = the header's count (none unaccounted)."""
    rng = np.random.default_rng(0)  # noise: every frame is big, so the cut lands mid-stream
    frames = [rng.integers(0, 255, (48, 64, 3), dtype=np.uint8) for _ in range(60)]
    whole = rf.write_video(tmp_path / "whole.avi", frames, fourcc="FFV1")
    cut = tmp_path / "cut.avi"
    data = whole.read_bytes()
    cut.write_bytes(data[: int(len(data) * 0.3)])  # the index at the end is gone too
    src = VideoFileSource(cut)
    read = sum(1 for _ in src.frames())
    if src.total is None:
        pytest.skip("this OpenCV build reports no frame count for a truncated AVI")
    assert read < src.total
    assert read + src.skipped + src.unread == src.total, (read, src.skipped, src.unread, src.total)


def test_reconnect_waits_are_not_part_of_the_frame_rate():
    from edgekit.runtime.stats import RunStats

    s = RunStats()
    for _ in range(10):
        s.add_frame({"invoke": 1.0})
    time.sleep(0.2)
    s.stop()
    s.paused_s = 0.15
    assert s.fps == pytest.approx(10 / (s.elapsed_s - 0.15))
    assert s.to_dict()["reconnect_wait_s"] == 0.15
