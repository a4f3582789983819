"""Bad inputs across every command and the API: one line, exit != 0, no traceback, nothing lost.

Each case builds its own bad input in ``tmp_path`` (deeply nested JSON, zip
bombs, layer lists of integers, FIFOs, device nodes, symlinks out of a bundle,
locked outputs...). The CLI cases run in-process through Typer's runner and
check four things: a non-zero exit, exactly one ``error:`` line on stderr
naming what was wrong, no traceback anywhere, and every file the case put at
risk unchanged afterwards (same bytes, same kind of file). The API cases check
that an :class:`EdgekitError` with a one-line message is raised.
"""
from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
from typer.testing import CliRunner

import runtime_fixtures as rf
from edgekit.cli import app
from edgekit.errors import EdgekitError

runner = CliRunner()

DEEP = "[" * 100_000 + "]" * 100_000  # RecursionError in json.loads


@pytest.fixture(scope="session")
def bundle(tmp_path_factory) -> Path:
    return rf.digits_bundle(tmp_path_factory)


# ------------------------------------------------------------------ builders


def keras_zip(path: Path, config: str | bytes, meta: str = '{"keras_version": "3.10.0"}') -> Path:
    """A .keras archive with the given config.json (and a stand-in weights file)."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("config.json", config)
        z.writestr("metadata.json", meta)
        z.writestr("model.weights.h5", b"\x89HDF\r\n\x1a\n")
    return path


def garbage_model(tmp: Path) -> Path:
    p = tmp / "model.keras"
    p.write_text("this is not a model")
    return p


def data_dir(tmp: Path) -> Path:
    d = tmp / "data"
    (d / "a").mkdir(parents=True, exist_ok=True)
    return d


def fake_bundle(tmp: Path, manifest_text: str | bytes) -> Path:
    b = tmp / "fake_bundle"
    b.mkdir()
    (b / "manifest.json").write_bytes(manifest_text.encode() if isinstance(manifest_text, str) else manifest_text)
    return b


def fifo(tmp: Path) -> Path:
    p = tmp / "pipe"
    os.mkfifo(p)
    return p


def char_device(tmp: Path) -> Path:
    """A character device like /dev/null (needs root; the test is skipped otherwise)."""
    p = tmp / "null"
    try:
        os.mknod(p, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    except PermissionError:
        pytest.skip("creating a device node needs root")
    return p


def hold_lock(dest: Path) -> subprocess.Popen:
    """Another process holding the output lock on ``dest`` (as a running compress would)."""
    code = textwrap.dedent(f"""
        import sys, time
        from edgekit.bundle.store import OutputLock
        OutputLock({str(dest)!r}).acquire()
        print("locked", flush=True)
        time.sleep(60)
    """)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[1]), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout.readline().strip() == "locked"
    return proc


def snapshot(paths: list[Path]) -> dict[str, object]:
    """What must not change: each path's kind and, for regular files, bytes; for folders, the listing."""
    snap: dict[str, object] = {}
    for p in paths:
        if p.is_symlink():
            snap[str(p)] = ("link", os.readlink(p))
        elif not p.exists():
            snap[str(p)] = None
        else:
            st = os.stat(p)
            if stat.S_ISREG(st.st_mode):
                snap[str(p)] = ("file", p.read_bytes())
            elif stat.S_ISDIR(st.st_mode):
                snap[str(p)] = ("dir", sorted(x.name for x in p.iterdir()))
            else:
                snap[str(p)] = ("special", stat.S_IFMT(st.st_mode))
    return snap


def check_one_line_error(result, needles: tuple[str, ...]) -> str:
    assert result.exit_code not in (0, None), result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output and "Traceback" not in (result.stderr or "")
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.stderr
    for n in needles:
        assert n.lower() in lines[0].lower(), (n, lines[0])
    return lines[0]


# ---------------------------------------------------------------- CLI cases
# Each builder returns (argv, needles in the error line, paths that must not change, env).

Case = Callable[[Path, Callable[[], Path]], tuple[list, tuple[str, ...], list[Path], dict]]


def _inspect_deep(t, b):
    return ["inspect", keras_zip(t / "deep.keras", DEEP)], ("deep.keras", "nested"), [], {}


def _inspect_deep_object(t, b):
    cfg = {"class_name": "Sequential", "config": {"name": "s", "layers": []}}
    inner = cfg["config"]
    for _ in range(200):
        inner["x"] = {}
        inner = inner["x"]
    return ["inspect", keras_zip(t / "deep2.keras", json.dumps(cfg))], ("nested",), [], {}


def _inspect_layers_ints(t, b):
    cfg = json.dumps({"class_name": "Sequential", "config": {"name": "s", "layers": [1, 2]}})
    return ["inspect", keras_zip(t / "ints.keras", cfg)], ("layer 0", "corrupt"), [], {}


def _inspect_config_null(t, b):
    cfg = json.dumps({"class_name": "Functional", "config": None})
    return ["inspect", keras_zip(t / "null.keras", cfg)], ("'config'",), [], {}


def _inspect_layers_null(t, b):
    cfg = json.dumps({"class_name": "Sequential", "config": {"name": "s", "layers": None}})
    return ["inspect", keras_zip(t / "nolayers.keras", cfg)], ("'layers'",), [], {}


def _inspect_zip_bomb(t, b):
    # 2 MB of JSON whitespace deflates to ~2 KB; the cap is lowered so the test stays small.
    cfg = b" " * 2_000_000 + b"{}"
    return (["inspect", keras_zip(t / "bomb.keras", cfg)], ("config.json", "EDGEKIT_MAX_CONFIG_BYTES", "1,000,000"), [],
            {"EDGEKIT_MAX_CONFIG_BYTES": "1000000"})


def _inspect_bad_metadata(t, b):
    cfg = json.dumps({"class_name": "Sequential", "config": {"name": "s", "layers": []}})
    return ["inspect", keras_zip(t / "meta.keras", cfg, meta="[1, 2]")], ("metadata.json",), [], {}


def _inspect_not_utf8(t, b):
    return ["inspect", keras_zip(t / "latin.keras", b"\xff\xfe{")], ("utf-8",), [], {}


def _inspect_missing(t, b):
    return ["inspect", t / "nope.keras"], ("nope.keras",), [], {}


def _inspect_text(t, b):
    return ["inspect", garbage_model(t)], ("model.keras",), [], {}


def _compress_missing_data_before_model(t, b):
    # The model is garbage too: the data error must come first (before any model load).
    out = t / "out"
    return (["compress", garbage_model(t), "--data", t / "nodata", "--out", out], ("nodata", "does not exist"), [out], {})


def _compress_bad_preprocess_before_model(t, b):
    out = t / "out"
    return (["compress", garbage_model(t), "--data", data_dir(t), "--out", out, "--preprocess", "nosuch"],
            ("--preprocess", "nosuch"), [out], {})


def _compress_deep_preprocess(t, b):
    spec = t / "spec.json"
    spec.write_text(DEEP)
    return (["compress", garbage_model(t), "--data", data_dir(t), "--out", t / "out", "--preprocess", spec],
            ("spec.json", "nested"), [spec], {})


def _compress_out_is_a_file(t, b):
    out = t / "notes.txt"
    out.write_text("my notes")
    return (["compress", garbage_model(t), "--data", data_dir(t), "--out", out, "--preprocess", "unit"],
            ("notes.txt", "not an edgekit bundle"), [out], {})


def _compress_sparsity(t, b):
    return (["compress", garbage_model(t), "--data", data_dir(t), "--out", t / "out", "--sparsity", "1.5"],
            ("sparsity",), [], {})


def _compress_unknown_target(t, b):
    return (["compress", garbage_model(t), "--data", data_dir(t), "--out", t / "out", "-t", "nosuchtarget"],
            ("nosuchtarget",), [], {})


def _compress_zip_bomb(t, b):
    model = keras_zip(t / "bomb.keras", b" " * 2_000_000 + b"{}")
    return (["compress", model, "--data", data_dir(t), "--out", t / "out", "--preprocess", "unit"],
            ("EDGEKIT_MAX_CONFIG_BYTES",), [], {"EDGEKIT_MAX_CONFIG_BYTES": "1000000"})


def _compress_layers_ints(t, b):
    model = keras_zip(t / "ints.keras", json.dumps({"class_name": "Sequential", "config": {"name": "s", "layers": [1, 2]}}))
    return (["compress", model, "--data", data_dir(t), "--out", t / "out", "--preprocess", "unit"], ("layer 0",), [], {})


def _compress_json_error_object(t, b):
    return (["compress", garbage_model(t), "--data", t / "nodata", "--out", t / "out", "--json"], ("nodata",), [], {})


def _verify_missing(t, b):
    return ["verify", t / "nobundle"], ("nobundle",), [], {}


def _verify_deep(t, b):
    return ["verify", fake_bundle(t, DEEP)], ("manifest.json", "nested"), [], {}


def _verify_array(t, b):
    return ["verify", fake_bundle(t, "[1, 2]")], ("manifest",), [], {}


def _verify_not_utf8(t, b):
    return ["verify", fake_bundle(t, b"\xff\xfe\x00{")], ("utf-8",), [], {}


def _verify_huge_int(t, b):
    return ["verify", fake_bundle(t, '{"schema_version": ' + "9" * 5000 + "}")], ("manifest.json",), [], {}


def _verify_manifest_symlink_outside(t, b):
    outside = t / "elsewhere.json"
    outside.write_text(json.dumps({"labels": ["a"], "preprocess": {}, "source_model": {}}))
    bundle_dir = t / "linked"
    bundle_dir.mkdir()
    (bundle_dir / "manifest.json").symlink_to(outside)
    return ["verify", bundle_dir], ("symlink", "outside the bundle"), [outside], {}


def _deploy_missing(t, b):
    return ["deploy", t / "nobundle", "--source", t], ("nobundle",), [], {}


def _deploy_deep(t, b):
    return ["deploy", fake_bundle(t, DEEP), "--source", t], ("nested",), [], {}


def _deploy_stdout_twice(t, b):
    return ["deploy", t / "whatever", "--source", t, "--jsonl", "-", "--json"], ("--jsonl -", "--json"), [], {}


def _bench_output_fifo(t, b):
    p = fifo(t)
    return ["bench", t / "nobundle", "-o", p], ("fifo",), [p], {}


def _bench_plot_directory(t, b):
    d = t / "plots"
    d.mkdir()
    (d / "keep.png").write_bytes(b"png")
    return ["bench", t / "nobundle", "--plot", d], ("directory",), [d, d / "keep.png"], {}


def _bench_html_device(t, b):
    p = char_device(t)
    return ["bench", t / "nobundle", "--html", p], ("character device",), [p], {}


def _bench_output_dangling_link(t, b):
    link = t / "result.json"
    link.symlink_to(t / "missing" / "target.json")
    return ["bench", t / "nobundle", "-o", link], ("symlink",), [link], {}


def _bench_deep_baseline(t, b):
    base = t / "base.json"
    base.write_text(DEEP)
    return ["bench", t / "nobundle", "--baseline", base], ("base.json", "nested"), [base], {}


def _bench_deep_manifest(t, b):
    return ["bench", fake_bundle(t, DEEP)], ("nested",), [], {}


def _bench_missing(t, b):
    return ["bench", t / "nobundle"], ("nobundle",), [], {}


def _doctor_deep_manifest(t, b):
    return ["doctor", "--bundle", fake_bundle(t, DEEP)], ("nested",), [], {}


def _doctor_missing_bundle(t, b):
    return ["doctor", "--bundle", t / "nobundle"], ("nobundle",), [], {}


def _targets_bad_toml(t, b):
    p = t / "mine.toml"
    p.write_text("name = [unclosed\n")
    return ["targets", p], ("mine.toml",), [p], {}


def _bench_frame_size_huge(t, b):
    return ["bench", b(), "--frame-size", "100000x100000", "--runs", "1"], ("100000x100000", "EDGEKIT_MAX_IMAGE_PIXELS"), [], {}


def _deploy_labels_mismatch(t, b):
    bad = rf.copy_bundle(b(), t / "b3", labels=["a", "b", "c"])
    return ["deploy", bad, "--source", t], ("3 labels",), [], {}


def _deploy_invalid_preprocess(t, b):
    bad = t / "bp"
    rf.copy_bundle(b(), bad)
    rf.edit_manifest(bad, lambda m: m["preprocess"].update(resize="sideways"))
    return ["deploy", bad, "--source", t], ("preprocess",), [], {}


def _deploy_jsonl_is_directory(t, b):
    d = t / "results"
    d.mkdir()
    (d / "keep.txt").write_text("keep")
    return (["deploy", b(), "--source", str(digits_image(t)), "--jsonl", d], ("results",), [d, d / "keep.txt"], {})


def _deploy_bad_source(t, b):
    return ["deploy", b(), "--source", t / "no_such_video.mp4"], ("no_such_video.mp4",), [], {}


def _bench_plot_fifo_with_bundle(t, b):
    p = fifo(t)
    return ["bench", b(), "--plot", p, "--runs", "1"], ("fifo",), [p], {}


def digits_image(t: Path) -> Path:
    import shutil

    src = next(iter(rf.digit_files(1)))
    dest = t / "digit.png"
    shutil.copy(src, dest)
    return dest


CLI_CASES = [
    _inspect_deep, _inspect_deep_object, _inspect_layers_ints, _inspect_config_null, _inspect_layers_null,
    _inspect_zip_bomb, _inspect_bad_metadata, _inspect_not_utf8, _inspect_missing, _inspect_text,
    _compress_missing_data_before_model, _compress_bad_preprocess_before_model, _compress_deep_preprocess,
    _compress_out_is_a_file, _compress_sparsity, _compress_unknown_target, _compress_zip_bomb, _compress_layers_ints,
    _compress_json_error_object,
    _verify_missing, _verify_deep, _verify_array, _verify_not_utf8, _verify_huge_int, _verify_manifest_symlink_outside,
    _deploy_missing, _deploy_deep, _deploy_stdout_twice,
    _bench_output_fifo, _bench_plot_directory, _bench_html_device, _bench_output_dangling_link, _bench_deep_baseline,
    _bench_deep_manifest, _bench_missing,
    _doctor_deep_manifest, _doctor_missing_bundle, _targets_bad_toml,
]
CLI_BUNDLE_CASES = [
    _bench_frame_size_huge, _deploy_labels_mismatch, _deploy_invalid_preprocess, _deploy_jsonl_is_directory,
    _deploy_bad_source, _bench_plot_fifo_with_bundle,
]


def _run_case(case, tmp_path, bundle_getter):
    argv, needles, at_risk, env = case(tmp_path, bundle_getter)
    before = snapshot(at_risk)
    result = runner.invoke(app, [str(a) for a in argv], env=env)
    check_one_line_error(result, needles)
    assert snapshot(at_risk) == before, "a bad command changed files it was given"
    assert not list(tmp_path.glob(".*partial*")), "a partial file or folder was left behind"
    if "--json" in argv:  # a pipe still gets JSON: the error as an object on stdout
        doc = json.loads(result.stdout)
        assert doc["ok"] is False and doc["error"]["message"] and doc["error"]["exit_code"] == result.exit_code
    return result


@pytest.mark.parametrize("case", CLI_CASES, ids=[c.__name__.lstrip("_") for c in CLI_CASES])
def test_cli_bad_input_is_one_line_and_loses_nothing(case, tmp_path):
    _run_case(case, tmp_path, lambda: pytest.fail("this case needs no bundle"))


@pytest.mark.slow
@pytest.mark.build
@pytest.mark.parametrize("case", CLI_BUNDLE_CASES, ids=[c.__name__.lstrip("_") for c in CLI_BUNDLE_CASES])
def test_cli_bad_input_with_a_real_bundle(case, tmp_path, bundle):
    _run_case(case, tmp_path, lambda: bundle)


def test_compress_on_a_locked_out_names_the_holder(tmp_path):
    out = tmp_path / "bundle"
    holder = hold_lock(out)
    try:
        result = runner.invoke(app, ["compress", str(garbage_model(tmp_path)), "--data", str(data_dir(tmp_path)),
                                     "--out", str(out), "--preprocess", "unit"])
        check_one_line_error(result, (f"PID {holder.pid}", "another edgekit run"))
    finally:
        holder.kill()
        holder.wait()
    # The holder died (SIGKILL): the kernel dropped its lock, so the next run gets past it.
    result = runner.invoke(app, ["compress", str(garbage_model(tmp_path)), "--data", str(data_dir(tmp_path)),
                                 "--out", str(out), "--preprocess", "unit"])
    assert "another edgekit run" not in result.output


# ---------------------------------------------------------------- API cases


def _api_load_model_deep(t):
    from edgekit.intake import load_model

    return lambda: load_model(keras_zip(t / "deep.keras", DEEP)), ("nested",)


def _api_load_model_layers_ints(t):
    from edgekit.intake import load_model

    cfg = json.dumps({"class_name": "Functional", "config": {"name": "f", "layers": [1, 2]}})
    return lambda: load_model(keras_zip(t / "ints.keras", cfg)), ("layer 0",)


def _api_load_model_config_null(t):
    from edgekit.intake import load_model

    return lambda: load_model(keras_zip(t / "null.keras", '{"class_name": "Sequential", "config": null}')), ("'config'",)


def _api_load_bundle_deep(t):
    from edgekit.bundle import load_bundle

    return lambda: load_bundle(fake_bundle(t, DEEP)), ("nested",)


def _api_verify_symlinked_manifest(t):
    from edgekit.bundle import verify_bundle

    args = _verify_manifest_symlink_outside(t, None)[0]
    return lambda: verify_bundle(args[1]), ("outside the bundle",)


def _api_write_fifo(t):
    from edgekit.bundle import write_bytes_atomic

    p = fifo(t)
    return lambda: write_bytes_atomic(p, b"x"), ("fifo",)


def _api_write_directory(t):
    from edgekit.bundle import write_bytes_atomic

    (t / "d").mkdir()
    return lambda: write_bytes_atomic(t / "d", b"x"), ("directory",)


def _api_write_device(t):
    from edgekit.bundle import write_bytes_atomic

    p = char_device(t)
    return lambda: write_bytes_atomic(p, b"x"), ("character device",)


def _api_write_dangling_symlink(t):
    from edgekit.bundle import write_bytes_atomic

    (t / "link").symlink_to(t / "nowhere" / "x")
    return lambda: write_bytes_atomic(t / "link", b"x"), ("symlink",)


def _api_read_image_over_cap(t):
    import cv2

    from edgekit.preprocess import read_image

    p = t / "big.png"
    cv2.imwrite(str(p), np.zeros((1200, 1000), np.uint8))
    os.environ["EDGEKIT_MAX_IMAGE_PIXELS"] = "1000000"
    return lambda: read_image(p), ("1000x1200", "EDGEKIT_MAX_IMAGE_PIXELS")


def _api_dataset_with_huge_png(t):
    import cv2

    from edgekit.data import load_dataset
    from edgekit.data.digits import DIGITS_SPEC

    for cls in ("a", "b"):
        (t / "ds" / cls).mkdir(parents=True)
        cv2.imwrite(str(t / "ds" / cls / "small.png"), np.zeros((28, 28), np.uint8))
    cv2.imwrite(str(t / "ds" / "a" / "huge.jpg"), np.zeros((1500, 1000), np.uint8))
    os.environ["EDGEKIT_MAX_IMAGE_PIXELS"] = "1000000"
    return lambda: load_dataset(t / "ds", DIGITS_SPEC, labelled=True), ("huge.jpg", "EDGEKIT_MAX_IMAGE_PIXELS")


def _api_frame_size(t):
    from edgekit.bench import parse_frame_size

    return lambda: parse_frame_size("100000x100000"), ("EDGEKIT_MAX_IMAGE_PIXELS",)


def _api_parse_json_huge_int(t):
    from edgekit.jsonio import parse_json

    return lambda: parse_json('{"a": ' + "1" * 5000 + "}", what="x.json"), ("x.json",)


def _api_bad_cap_variable(t):
    from edgekit.limits import IMAGE_PIXELS

    os.environ["EDGEKIT_MAX_IMAGE_PIXELS"] = "lots"
    return lambda: IMAGE_PIXELS.value, ("EDGEKIT_MAX_IMAGE_PIXELS",)


def _api_output_lock(t):
    from edgekit.bundle.store import OutputLock

    holder = hold_lock(t / "out")
    t.joinpath("holder.pid").write_text(str(holder.pid))

    def attempt():
        try:
            OutputLock(t / "out").acquire()
        finally:
            holder.kill()
            holder.wait()

    return attempt, (f"PID {holder.pid}",)


def _api_compress_locked(t):
    from edgekit.compress import compress

    holder = hold_lock(t / "out")

    def attempt():
        try:
            compress(garbage_model(t), data_dir(t), t / "out", preprocess="unit")
        finally:
            holder.kill()
            holder.wait()

    return attempt, (f"PID {holder.pid}",)


def _api_compress_missing_data(t):
    from edgekit.compress import compress

    return lambda: compress(garbage_model(t), t / "nodata", t / "out", preprocess="unit"), ("nodata",)


API_CASES = [
    _api_load_model_deep, _api_load_model_layers_ints, _api_load_model_config_null, _api_load_bundle_deep,
    _api_verify_symlinked_manifest, _api_write_fifo, _api_write_directory, _api_write_device, _api_write_dangling_symlink,
    _api_read_image_over_cap, _api_dataset_with_huge_png, _api_frame_size, _api_parse_json_huge_int, _api_bad_cap_variable,
    _api_output_lock, _api_compress_locked, _api_compress_missing_data,
]


@pytest.mark.parametrize("case", API_CASES, ids=[c.__name__.lstrip("_") for c in API_CASES])
def test_api_bad_input_raises_one_line(case, tmp_path, monkeypatch):
    monkeypatch.delenv("EDGEKIT_MAX_IMAGE_PIXELS", raising=False)
    try:
        call, needles = case(tmp_path)
        with pytest.raises(EdgekitError) as info:
            call()
    finally:
        os.environ.pop("EDGEKIT_MAX_IMAGE_PIXELS", None)
    message = str(info.value)
    assert "\n" not in message
    for n in needles:
        assert n.lower() in message.lower(), (n, message)
    assert not list(tmp_path.glob(".*partial*"))


@pytest.mark.slow
@pytest.mark.build
@pytest.mark.parametrize("dtype", ["int64", "bool", "uint16", "int32"])
def test_predict_names_an_unsupported_array_dtype(bundle, dtype):
    from edgekit.errors import DataError
    from edgekit.runtime import Predictor

    p = Predictor.from_bundle(bundle, target="cpu")
    try:
        with pytest.raises(DataError, match=f"received {dtype}"):
            p.predict(np.zeros((28, 28, 1), dtype=dtype))
    finally:
        p.close()
