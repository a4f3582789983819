"""``edgekit quickstart`` end to end: the README's main job, in a temporary folder, in-process (CliRunner).

Steps 4 and 5 run ``edgekit deploy`` / ``edgekit bench`` in a new process where
importing TensorFlow fails; they must still succeed.
"""
from __future__ import annotations

import json
import re

import pytest
from typer.testing import CliRunner

pytestmark = [pytest.mark.slow, pytest.mark.build]


def test_quickstart_runs_every_step_and_leaves_a_verified_bundle(tmp_path):
    from edgekit.bundle import load_bundle, verify_bundle
    from edgekit.cli import app

    work = tmp_path / "qs"
    r = CliRunner().invoke(app, ["quickstart", "--workdir", str(work), "--epochs", "2", "--bench-seconds", "0"],
                           terminal_width=80)  # fmt: skip
    assert r.exit_code == 0, r.output
    for step in ("1/5 train", "2/5 inspect", "3/5 compress", "4/5 deploy", "5/5 benchmark"):
        assert step in r.output
    # an 80-column log: tables wrap or split, numbers are never cut (inspect may still shorten a layer *name*)
    assert not re.search(r"[0-9,.%×]…", r.output), re.findall(r".{20}[0-9,.%×]….{5}", r.output)
    assert re.search(r"time: load [0-9.]+ s .*\(build: .*convert [0-9.]+ s.*\); total", r.output)  # compress's phase times
    bundle = work / "bundle"
    assert verify_bundle(bundle).ok
    assert sorted(a.target for a in load_bundle(bundle).manifest.artifacts) == ["cpu", "cpu-fp32", "edgetpu", "gpu"]
    lines = (work / "predictions.jsonl").read_text().splitlines()
    assert len(lines) == 1797 and all(isinstance(json.loads(line), dict) for line in lines[:5])
    assert "edgekit bench" in r.output and "--model" in r.output  # how to add the TensorFlow peers
