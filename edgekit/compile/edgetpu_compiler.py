"""The Edge TPU target's one adapter: run ``edgetpu_compiler`` when it is on PATH.

When it is there, the compiler's ``*_edgetpu.tflite`` and its log join the
bundle (the compiled file as an extra artifact with ``compiled_from``), and
its op mapping is compared with our prediction. When it is not (it ships only
for x86-64 Debian/Ubuntu, as the ``edgetpu-compiler`` package), the artifact
is marked ``not_compiled`` and the report gives the exact command to run.
"""
from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgekit.compile.report import CompatReport

MAPPED = "Mapped to Edge TPU"

_HEADER = re.compile(r"^\s*Operator\s+Count\s+Status\s*$", re.MULTILINE)
_ROW = re.compile(r"^([A-Z][A-Z0-9_]*(?::[\w-]+)?)\s+(\d+)\s+(\S.*?)\s*$")
_VERSION = re.compile(r"Edge TPU Compiler version\s+(\S+)")
_COUNT = {
    "ops_on_tpu": re.compile(r"Number of operations that will run on Edge TPU:\s*(\d+)"),
    "ops_on_cpu": re.compile(r"Number of operations that will run on CPU:\s*(\d+)"),
    "ops_total": re.compile(r"Total number of operations:\s*(\d+)"),
    "subgraphs": re.compile(r"Number of Edge TPU subgraphs:\s*(\d+)"),
}


def parse_log(text: str) -> dict[str, Any]:
    """Parse ``edgetpu_compiler -s`` output (or its ``.log``) into counts per op and status.

    Returns:
        ``{"version", "rows": [{"op", "count", "status"}], "ops_on_tpu", "ops_on_cpu", ...}``;
        counts the compiler did not print are summed from the rows.
    """
    out: dict[str, Any] = {"version": None, "rows": []}
    if m := _VERSION.search(text):
        out["version"] = m.group(1)
    in_table = False
    for line in text.splitlines():
        if _HEADER.match(line):
            if in_table:
                break  # a second copy of the table (stdout followed by the .log)
            in_table = True
            continue
        if in_table and (m := _ROW.match(line.strip())):
            out["rows"].append({"op": m.group(1), "count": int(m.group(2)), "status": m.group(3)})
    for key, rx in _COUNT.items():
        if m := rx.search(text):
            out[key] = int(m.group(1))
    out.setdefault("ops_on_tpu", sum(r["count"] for r in out["rows"] if r["status"] == MAPPED))
    out.setdefault("ops_on_cpu", sum(r["count"] for r in out["rows"] if r["status"] != MAPPED))
    out.setdefault("ops_total", out["ops_on_tpu"] + out["ops_on_cpu"])
    return out


def compare_with_prediction(parsed: dict[str, Any], report: CompatReport) -> dict[str, Any]:
    """Per op type: how many ops we predicted on the TPU vs how many the compiler mapped."""
    predicted: dict[str, int] = {}
    for p in report.placements:
        predicted.setdefault(p.op, 0)
        predicted[p.op] += int(p.on_accelerator)
    compiled: dict[str, int] = {}
    for r in parsed["rows"]:
        compiled.setdefault(r["op"], 0)
        if r["status"] == MAPPED:
            compiled[r["op"]] += r["count"]
    diffs = [
        {"op": op, "predicted_on_tpu": predicted.get(op, 0), "compiler_on_tpu": compiled.get(op, 0)}
        for op in sorted(set(predicted) | set(compiled))
        if predicted.get(op, 0) != compiled.get(op, 0)
    ]
    return {"agrees": not diffs, "differences": diffs}


@dataclass
class AdapterResult:
    """What an adapter adds to one target's build."""

    status: str  # the base artifact's manifest status: "ok" or "not_compiled"
    info: dict[str, Any]  # goes to the compatibility report under extra["compiler"]
    extra_files: list[dict[str, Any]] = field(default_factory=list)  # {file, variant, compiled_from}
    reports: dict[str, str] = field(default_factory=dict)  # reports/<name> -> text
    failure: str | None = None  # set when the step ran and failed


class EdgeTpuCompiler:
    """Runs ``edgetpu_compiler -s -o OUT MODEL`` (see the module docstring)."""

    name = "edgetpu_compiler"
    executable = "edgetpu_compiler"
    timeout_s = 180  # the compiler's own default timeout

    def find(self) -> str | None:
        return shutil.which(self.executable)

    def command(self, artifact: str, out_dir: str) -> str:
        return f"{self.executable} -s -o {out_dir} {artifact}"

    def run(self, artifact: Path, report: CompatReport, *, bundle_hint: str) -> AdapterResult:
        """Compile ``artifact`` (in the staged bundle) next to itself.

        Args:
            artifact: the staged ``model_edgetpu.tflite``.
            report: the Edge TPU prediction to compare with.
            bundle_hint: how to name the bundle folder in the manual command.
        """
        exe = self.find()
        manual = self.command(f"{bundle_hint}/{artifact.name}", bundle_hint)
        ready = all(r["ok"] for r in report.requirements)
        if exe is None:
            if ready:
                message = (
                    f"{artifact.name} is Edge-TPU-ready (full int8, static shapes, batch 1; {report.ops_on}/{report.ops_total} "
                    "ops predicted on the Edge TPU) but NOT compiled: edgetpu_compiler is not on PATH here. "
                    "On an x86-64 Debian/Ubuntu host with the edgetpu-compiler package, run the command below, "
                    "or rebuild the bundle there (edgekit runs the compiler itself); a file added by hand is not in the manifest."
                )
            else:
                failed = ", ".join(r["name"] for r in report.requirements if not r["ok"])
                message = (
                    f"{artifact.name} is NOT Edge-TPU-ready ({failed}) and was not compiled: edgetpu_compiler is not on PATH here."
                )
            return AdapterResult("not_compiled", {"status": "not_compiled", "message": message, "command": manual})
        version = _version(exe)
        try:
            proc = subprocess.run(
                [exe, "-s", "-o", str(artifact.parent), str(artifact)],
                capture_output=True,
                text=True,
                timeout=self.timeout_s,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return self._failed(f"edgetpu_compiler timed out after {self.timeout_s} s", manual, version, "")
        except OSError as e:
            return self._failed(f"edgetpu_compiler could not start: {e}", manual, version, "")
        log_text = proc.stdout + ("\n" + proc.stderr if proc.stderr.strip() else "")
        compiled = artifact.with_name(f"{artifact.stem}_edgetpu.tflite")
        if proc.returncode != 0 or not compiled.is_file():
            last = (proc.stderr.strip() or proc.stdout.strip() or "no output").splitlines()[-1]
            return self._failed(f"edgetpu_compiler exited with {proc.returncode}: {last}", manual, version, log_text)
        side_log = artifact.with_name(f"{artifact.stem}_edgetpu.log")
        side_text = ""
        if side_log.is_file():
            side_text = side_log.read_text(errors="replace")
            side_log.unlink()  # kept under reports/ instead
        # With -s the op table is on stdout and in the .log: parse one copy, keep both.
        parsed = parse_log(proc.stdout if _HEADER.search(proc.stdout) else proc.stdout + "\n" + side_text)
        if side_text:
            log_text += "\n--- " + side_log.name + " ---\n" + side_text
        compare = compare_with_prediction(parsed, report)
        info = {
            "status": "compiled",
            "version": parsed["version"] or version,
            "file": compiled.name,
            "ops_on_tpu": parsed["ops_on_tpu"],
            "ops_on_cpu": parsed["ops_on_cpu"],
            "agrees": compare["agrees"],
            "differences": compare["differences"],
            "log": "reports/edgetpu_compiler.log",
        }
        return AdapterResult(
            "ok",
            info,
            extra_files=[{"file": compiled.name, "variant": "int8_edgetpu", "compiled_from": artifact.name}],
            reports={"edgetpu_compiler.log": log_text},
        )

    def _failed(self, why: str, manual: str, version: str | None, log_text: str) -> AdapterResult:
        info = {"status": "failed", "message": why, "command": manual, "version": version}
        reports = {"edgetpu_compiler.log": log_text} if log_text else {}
        return AdapterResult("not_compiled", info, reports=reports, failure=why)


def _version(exe: str) -> str | None:
    try:
        proc = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    m = _VERSION.search(proc.stdout + proc.stderr)
    return m.group(1) if m else None
