"""Nothing lost, nothing hidden: interrupts no ``except`` can swallow, the output lock,
stale partial folders, the rename swap, writers that never replace special files,
``verify`` running the loader's checks, and the console staying free of raw warnings.
"""
from __future__ import annotations

import errno
import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from edgekit import interrupts
from edgekit.bundle import MANIFEST_NAME, BundleWriter, Manifest, load_bundle, write_bytes_atomic
from edgekit.bundle.store import OutputLock, _swap_into_place, check_writable_target, clean_stale
from edgekit.cli._common import run_command
from edgekit.errors import BundleError, ConfigError, OutputError

ROOT = Path(__file__).resolve().parents[1]


def _manifest() -> Manifest:
    return Manifest(labels=["a", "b"], preprocess={}, source_model={"name": "m"})


def _bundle(dest: Path, marker: str) -> Path:
    with BundleWriter(dest) as w:
        (w.path / "reports" / "marker.txt").write_text(marker)
        w.manifest = _manifest()
    return dest


# ---------------------------------------------------------------- interrupts


def test_an_interrupt_swallowed_as_oserror_still_stops_the_bundle_from_publishing(tmp_path):
    """The traced case: Ctrl-C inside TF's converter cleanup surfaced as OSError [Errno 9] and a broad
    ``except Exception`` made it a note; the bundle writer must still refuse to publish."""
    dest = _bundle(tmp_path / "bundle", "old")
    notes = []
    with interrupts.catch_signals():
        with pytest.raises(KeyboardInterrupt):
            with BundleWriter(dest) as w:
                (w.path / "reports" / "marker.txt").write_text("new")
                w.manifest = _manifest()
                try:
                    try:
                        os.kill(os.getpid(), signal.SIGINT)  # a real signal, delivered here
                        time.sleep(1)
                    except KeyboardInterrupt as e:
                        raise OSError(errno.EBADF, "Bad file descriptor") from e  # what TF's cleanup turned it into
                except Exception as e:  # noqa: BLE001 - the kind of handler that swallowed it
                    notes.append(str(e))
        assert interrupts.received() == "SIGINT"
    assert notes, "the interrupt was not swallowed: the test did not reproduce the bug"
    assert (dest / "reports" / "marker.txt").read_text() == "old"  # the previous bundle is intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle"]  # no partial, no lock file left


def test_run_command_exits_130_or_143_even_when_the_interrupt_was_swallowed():
    calls = []

    @run_command
    def long_command(sig: int) -> None:
        try:
            os.kill(os.getpid(), sig)
            time.sleep(1)
        except BaseException:  # noqa: BLE001 - swallowed, as broad handlers deep in TF do
            calls.append(sig)
        # ...and the command goes on to "succeed"

    before = (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM))
    for sig, code in ((signal.SIGINT, 130), (signal.SIGTERM, 143)):
        with pytest.raises(typer.Exit) as info:
            long_command(sig)
        assert info.value.exit_code == code
    assert calls == [signal.SIGINT, signal.SIGTERM]
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before  # handlers restored
    assert interrupts.received() is None  # and the record forgotten


@pytest.mark.slow
@pytest.mark.build
def test_sigterm_during_compress_exits_143_and_keeps_the_previous_bundle(tmp_path, trained_example):
    """``docker stop`` / CI cancel sends SIGTERM: handled like Ctrl-C, nothing partial left, the old bundle intact."""
    from edgekit.resources import digits_dir

    out = _bundle(tmp_path / "bundle", "old")
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    proc = subprocess.Popen(
        [sys.executable, "-c", "from edgekit.cli import main; main()", "compress", str(trained_example.model_path),
         "--data", str(digits_dir()), "--out", str(out), "--epochs", "3"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    lock = tmp_path / ".bundle.lock"
    deadline = time.monotonic() + 120
    while not lock.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(3)  # into the model load / fine-tuning
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 143, stderr[-2000:]
    assert "Traceback" not in stderr
    assert "interrupted (SIGTERM)" in stderr
    assert (out / "reports" / "marker.txt").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle"]


# ----------------------------------------------------------- lock and stale


def test_two_writers_on_one_out_the_second_fails_naming_the_first_pid(tmp_path):
    dest = tmp_path / "bundle"
    code = textwrap.dedent(f"""
        import time
        from edgekit.bundle import BundleWriter, Manifest
        with BundleWriter({str(dest)!r}) as w:
            w.manifest = Manifest(labels=["a"], preprocess={{}}, source_model={{}})
            print("writing", flush=True)
            time.sleep(30)
    """)
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    first = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert first.stdout.readline().strip() == "writing"
        with pytest.raises(OutputError, match=f"another edgekit run \\(PID {first.pid}\\)"):
            _bundle(dest, "second")
    finally:
        first.kill()
        first.wait()
    # The first writer was SIGKILLed mid-write: its stage is left behind, its lock is not.
    assert list(tmp_path.glob(".bundle.partial-*"))
    _bundle(dest, "third")
    assert (dest / "reports" / "marker.txt").read_text() == "third"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle"]  # the stale stage was cleaned


def test_stale_partials_are_removed_and_a_bundle_left_aside_is_restored(tmp_path, caplog):
    dest = _bundle(tmp_path / "bundle", "previous")
    # A run killed between the two renames of the swap: the old bundle aside, nothing at dest.
    os.rename(dest, tmp_path / ".bundle.old-deadbeef")
    (tmp_path / ".bundle.partial-abc123").mkdir()
    (tmp_path / ".bundle.partial-abc123" / "model.tflite").write_bytes(b"half")
    (tmp_path / "other").mkdir()  # not ours: untouched
    with OutputLock(dest) as lock:
        assert len(lock.cleaned) == 2
    assert (dest / "reports" / "marker.txt").read_text() == "previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle", "other"]
    assert any("restored the previous bundle" in r.getMessage() for r in caplog.records)
    assert clean_stale(dest) == []


def test_swap_survives_the_destination_vanishing_and_refuses_one_that_appears(tmp_path):
    staged = tmp_path / "staged"
    staged.mkdir()
    (staged / MANIFEST_NAME).write_text("{}")
    dest = tmp_path / "dest"
    _swap_into_place(staged, dest)  # nothing there: no FileNotFoundError
    assert (dest / MANIFEST_NAME).is_file()

    staged2 = tmp_path / "staged2"
    staged2.mkdir()
    real_rename = os.rename

    def rename_with_a_rival(src, dst):  # another program creates dest right after it stepped aside
        real_rename(src, dst)
        if Path(dst).name.startswith(".dest.old-"):
            (tmp_path / "dest").mkdir()
            (tmp_path / "dest" / "theirs.txt").write_text("theirs")

    import edgekit.bundle.store as store

    store.os.rename = rename_with_a_rival
    try:
        with pytest.raises(BundleError, match="created by something else"):
            _swap_into_place(staged2, dest)
    finally:
        store.os.rename = real_rename
    assert (dest / "theirs.txt").read_text() == "theirs"  # theirs is left alone, no raw ENOTEMPTY


# ------------------------------------------------------------------ writers


def test_writer_writes_through_a_symlink_and_keeps_the_link(tmp_path):
    real = tmp_path / "results" / "latest.json"
    real.parent.mkdir()
    real.write_text("old")
    link = tmp_path / "result.json"
    link.symlink_to(real)
    write_bytes_atomic(link, b"new")
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert real.read_text() == "new"
    assert sorted(p.name for p in real.parent.iterdir()) == ["latest.json"]


@pytest.mark.parametrize("kind", ["fifo", "directory", "socket"])
def test_writer_refuses_special_targets_and_leaves_them(tmp_path, kind):
    import socket

    p = tmp_path / "target"
    sock = None
    if kind == "fifo":
        os.mkfifo(p)
    elif kind == "directory":
        p.mkdir()
    else:
        sock = socket.socket(socket.AF_UNIX)
        sock.bind(str(p))
    mode = os.stat(p).st_mode
    try:
        with pytest.raises(OutputError, match="refusing to replace it"):
            write_bytes_atomic(p, b"data")
        assert stat.S_IFMT(os.stat(p).st_mode) == stat.S_IFMT(mode)
    finally:
        if sock is not None:
            sock.close()
    assert sorted(x.name for x in tmp_path.iterdir()) == ["target"]


def test_check_writable_target_accepts_new_and_regular_files(tmp_path):
    assert check_writable_target(tmp_path / "new.json") == tmp_path / "new.json"
    (tmp_path / "old.json").write_text("{}")
    assert check_writable_target(tmp_path / "old.json") == tmp_path / "old.json"


# ------------------------------------------------------------------ console


def test_python_warnings_reach_the_console_as_one_line_without_source_paths(capsys):
    @run_command
    def noisy() -> None:
        warnings.warn("something to know", UserWarning)

    noisy()
    err = capsys.readouterr().err
    assert "warning: something to know" in err
    assert ".py:" not in err and "UserWarning" not in err


def test_json_mode_prints_the_error_as_a_json_object(capsys):
    @run_command
    def failing(json_out: bool = False) -> None:
        raise ConfigError("bad value", hint="Fix it.")

    with pytest.raises(typer.Exit) as info:
        failing(json_out=True)
    out, err = capsys.readouterr()
    doc = json.loads(out)
    assert doc == {"ok": False, "error": {"type": "ConfigError", "message": "bad value Fix it.", "exit_code": 2}}
    assert info.value.exit_code == 2 and err.startswith("error: bad value")


def test_recursion_error_is_one_line(capsys):
    @run_command
    def deep() -> None:
        def f(n):
            return f(n + 1)

        f(0)

    with pytest.raises(typer.Exit):
        deep()
    err = capsys.readouterr().err
    assert err.startswith("error: nesting too deep") and "Traceback" not in err


def test_manifest_is_read_once_and_deep_nesting_is_refused(tmp_path):
    b = tmp_path / "b"
    b.mkdir()
    labels: object = ["a"]
    for _ in range(64):
        labels = [labels]  # with the object around it: 66 levels, a few more than any real manifest
    (b / MANIFEST_NAME).write_text(json.dumps({"labels": labels}))
    with pytest.raises(BundleError, match="nested 66 levels deep; at most 64"):
        load_bundle(b)


def test_a_full_disk_while_staging_is_one_line_and_keeps_the_previous_bundle(tmp_path):
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full here")
    dest = _bundle(tmp_path / "bundle", "old")
    with pytest.raises(OutputError, match="No space left on device") as info:
        with BundleWriter(dest) as w:
            w.manifest = _manifest()
            with open("/dev/full", "wb") as f:  # the kernel's own ENOSPC, as a full disk gives it
                f.write(b"x" * 4096)
                f.flush()
    assert "\n" not in str(info.value)
    assert (dest / "reports" / "marker.txt").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle"]


def test_a_full_disk_anywhere_in_a_command_is_one_line(capsys):
    @run_command
    def writes() -> None:
        with open("/dev/full", "wb") as f:
            f.write(b"x" * 4096)
            f.flush()

    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full here")
    with pytest.raises(typer.Exit) as info:
        writes()
    err = capsys.readouterr().err
    assert info.value.exit_code == 2 and err.startswith("error: No space left on device") and err.count("\n") == 1


@pytest.fixture(scope="module")
def real_bundle(tmp_path_factory):
    import runtime_fixtures as rf

    return rf.digits_bundle(tmp_path_factory)


@pytest.mark.slow
@pytest.mark.build
@pytest.mark.parametrize("damage, expected", [
    (lambda m: m.update(labels=["a", "b", "c"]), "3 labels"),
    (lambda m: m["preprocess"].update(resize="sideways"), "invalid preprocess spec"),
    (lambda m: m["preprocess"].update(input_size=[32, 32]), "input shape"),
    (lambda m: m["artifacts"][0]["input"].update(shape=[1, 32, 32, 1]), "input shape"),
], ids=["labels-vs-outputs", "invalid-preprocess", "spec-vs-artifact-shape", "entry-vs-artifact-shape"])
def test_verify_fails_what_deploy_refuses(real_bundle, tmp_path, damage, expected):
    """verify runs the loader's own checks (edgekit.bundle.contract): it passes exactly what deploy accepts."""
    import runtime_fixtures as rf
    from edgekit.bundle import verify_bundle
    from edgekit.cli import app
    from edgekit.runtime import Predictor

    bad = tmp_path / "bad"
    rf.copy_bundle(real_bundle, bad)
    rf.edit_manifest(bad, damage)
    result = verify_bundle(bad)
    assert not result.ok
    assert any(expected in c["detail"] for c in result.checks if not c["ok"]), result.checks
    with pytest.raises(BundleError, match=expected):
        Predictor.from_bundle(bad, target="cpu")
    r = CliRunner().invoke(app, ["verify", str(bad)])
    assert r.exit_code == 1 and "FAIL" in r.stdout
    assert verify_bundle(real_bundle).ok


# ------------------------------------------------------- silent wrong results


def test_chance_accuracy_is_warned_and_real_accuracy_is_not():
    from edgekit.compress.pipeline import chance_warning

    assert "chance for 2 classes" in chance_warning(0.5, 2, 100, "preset unit")
    assert "preset unit" in chance_warning(0.11, 10, 360, "preset unit")
    assert chance_warning(0.95, 10, 360, "x") is None
    assert chance_warning(0.70, 2, 400, "x") is None


@pytest.mark.slow
@pytest.mark.build
def test_a_model_that_rescales_itself_gets_raw_pixels_and_a_dropped_pqat_is_said(tmp_path, tf_keras):
    """No sidecar, a leading Rescaling(1/255): preprocessing is inferred (raw 0-255), never 'unit' twice;
    the float model is not at chance; --sparsity with QAT that tfmot cannot apply is said, not silent."""
    from edgekit.compress import compress
    from edgekit.data import load_dataset
    from edgekit.preprocess import PreprocessSpec
    from edgekit.resources import digits_dir

    raw = PreprocessSpec.from_preset("raw", (28, 28), channels=1, output="probabilities")
    ds = load_dataset(digits_dir(), raw, labelled=True)
    tf_keras.utils.set_random_seed(0)
    L = tf_keras.layers
    m = tf_keras.Sequential([tf_keras.Input((28, 28, 1)), L.Rescaling(1 / 255), L.Conv2D(8, 3, activation="relu"),
                             L.MaxPooling2D(), L.Flatten(), L.Dense(len(ds.class_names), activation="softmax")])
    m.compile("adam", "sparse_categorical_crossentropy")
    m.fit(ds.x, ds.y, epochs=3, verbose=0)
    path = tmp_path / "rescales.h5"
    m.save(path)
    result = compress(path, digits_dir(), tmp_path / "bundle", recipe="default",
                      overrides={"sparsity": 0.5, "prune_min_weights": 0, "epochs": 1, "calibration_samples": 32}, targets=["cpu"], progress=False)
    assert result.reports["data"]["preprocess_from"].startswith("inferred: the model starts with Rescaling")
    assert not any("chance" in n for n in result.notes), result.notes
    assert result.variants[0]["top1"] > 0.5
    if result.reports["qat"] is None:  # tfmot could not apply PQAT: it must say so
        assert any("PQAT" in n and "NOT applied" in n for n in result.notes), result.notes


@pytest.mark.slow
@pytest.mark.build
def test_numeric_check_of_a_near_zero_sigmoid_is_measured_on_the_probability_scale(tmp_path, tf_keras):
    """A sigmoid saying ~0.001 everywhere: an absolute error of ~0.001 is not '1.0, outside tolerance'."""
    import shutil
    from dataclasses import replace

    from edgekit.compile.build import build_bundle
    from edgekit.data import load_dataset, split_dataset
    from edgekit.data.digits import DIGITS_SPEC
    from edgekit.resources import digits_dir

    root = tmp_path / "d"
    for n in ("0", "1"):
        shutil.copytree(digits_dir() / n, root / n)
    ds = load_dataset(root, DIGITS_SPEC, labelled=True)
    train, test = split_dataset(ds, holdout=0.2, seed=0)
    tf_keras.utils.set_random_seed(0)
    L = tf_keras.layers
    m = tf_keras.Sequential([tf_keras.Input((28, 28, 1)), L.Conv2D(4, 3, activation="relu"), L.Flatten(),
                             L.Dense(1, activation="sigmoid", bias_initializer=tf_keras.initializers.Constant(-7.0))])
    built = build_bundle(tmp_path / "b", model=m, spec=replace(DIGITS_SPEC, output="probabilities"), labels=ds.class_names,
                         representative=train.x[:32], targets=["cpu"], eval_data=(test.x[:50], test.y[:50]), progress=False)
    numeric = built.reports["cpu"].numeric
    assert numeric["max_abs_error"] < 0.01
    assert numeric["max_error"] == pytest.approx(numeric["max_abs_error"]) and numeric["ok"], numeric


def test_concurrent_atomic_writes_to_one_path_never_raise_and_leave_one_whole_file(tmp_path):
    """The old writer shared one temp name: two writers raced to FileNotFoundError."""
    import threading

    target = tmp_path / "result.json"
    errors: list[BaseException] = []
    payloads = [bytes([65 + i]) * 50_000 for i in range(6)]

    def writer(data: bytes) -> None:
        try:
            for _ in range(30):
                write_bytes_atomic(target, data)
        except BaseException as e:  # noqa: BLE001 - collected for the assertion
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(p,)) for p in payloads]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert target.read_bytes() in payloads
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result.json"]


@pytest.mark.slow
@pytest.mark.build
def test_the_runtime_runs_the_bytes_it_hashed(real_bundle):
    """No re-open by path between the sha256 check and the load: the engine holds the verified bytes."""
    import hashlib

    from edgekit.runtime import Predictor

    p = Predictor.from_bundle(real_bundle, target="cpu")
    try:
        content = p.engine._content
        assert content is not None and hashlib.sha256(content).hexdigest() == p.plan.entry.sha256
    finally:
        p.close()


def test_class_count_in_a_mismatch_error_comes_from_the_data_not_the_spec_labels(tmp_path):
    import shutil

    from edgekit.data import check_labels, load_dataset
    from edgekit.data.digits import DIGITS_SPEC
    from edgekit.errors import DataError
    from edgekit.resources import digits_dir

    for n in ("0", "1"):
        shutil.copytree(digits_dir() / n, tmp_path / "two" / n)
    ds = load_dataset(tmp_path / "two", DIGITS_SPEC, labelled=True, class_names=[str(i) for i in range(10)])
    with pytest.raises(DataError, match=r"holds 2 classes .* \(the class list given has 10\)"):
        check_labels(ds, 3)
