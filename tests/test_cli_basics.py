"""The CLI shell: version, help, lazy imports, and a non-editable install."""
from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

import edgekit
from edgekit.cli import app

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[1]


def test_version():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"edgekit {edgekit.__version__}"


def test_help_lists_only_working_commands():
    from edgekit.cli.commands import COMMANDS

    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for name, _ in COMMANDS:
        assert name in result.output
    assert {"inspect", "example", "quickstart"} <= {n for n, _ in COMMANDS}


def test_cli_import_pulls_in_no_heavy_modules():
    code = (
        "import sys, edgekit.cli; "
        "heavy = [m for m in ('tensorflow', 'tf_keras', 'keras', 'tensorflow_model_optimization', 'cv2', 'ai_edge_litert') if m in sys.modules]; "
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


@pytest.mark.slow
def test_wheel_install_finds_targets_and_calibration(tmp_path):
    """A non-editable install carries targets/ and calibration/ inside the package."""
    pytest.importorskip("hatchling", reason="building the wheel needs hatchling (the dev extra); a device has the wheel already")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path / "dist"), str(ROOT)],
        check=True,
        capture_output=True,
    )
    wheel = next((tmp_path / "dist").glob("edgekit-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert any(n.startswith("edgekit/_data/targets/") and n.endswith(".toml") for n in names)
    assert any(n.startswith("edgekit/_data/calibration/digits/") and n.endswith(".png") for n in names)
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    # Run from an unrelated folder with the unpacked wheel first on the path, so the
    # repository checkout (editable install) cannot be what answers.
    code = (
        "import edgekit, edgekit.resources as r; "
        "print(edgekit.__file__); print(r.targets_dir()); print(r.digits_dir()); "
        "print(len(list(r.targets_dir().glob('*.toml'))), len(list(r.digits_dir().rglob('*.png'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=tmp_path, env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"})
    pkg, targets, digits, counts = out.stdout.strip().splitlines()
    assert pkg.startswith(str(site))
    assert targets.startswith(str(site)) and digits.startswith(str(site))
    n_toml, n_png = map(int, counts.split())
    assert n_toml >= 3 and n_png == 1797


def test_every_lazy_export_resolves():
    for name in edgekit._LAZY:
        assert getattr(edgekit, name) is not None, name
    with pytest.raises(AttributeError):
        edgekit.no_such_thing  # noqa: B018


@pytest.mark.build  # the error under test is the build side's (TensorFlow present, tfmot missing)
def test_missing_extra_names_the_install_command():
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'tensorflow_model_optimization':\n"
        "            raise ImportError('blocked for the test')\n"
        "sys.meta_path.insert(0, Block())\n"
        "from edgekit._tf import tfmot\n"
        "from edgekit.errors import MissingExtraError\n"
        "try:\n"
        "    tfmot()\n"
        "except MissingExtraError as e:\n"
        "    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "tensorflow-model-optimization is not installed" in out.stdout
    assert 'pip install "edgekit[compress]"' in out.stdout
