"""The Edge TPU target's one adapter: run ``edgetpu_compiler`` when it is on PATH.

When it is there, the compiler's ``*_edgetpu.tflite`` and its log join the
bundle (the compiled file as an extra artifact with ``compiled_from``), and
its op mapping is compared with our prediction. When it is not (it ships only
for x86-64 Debian/Ubuntu, as the ``edgetpu-compiler`` package), the artifact
is marked ``not_compiled`` and the report gives the exact command to run:
the compiler, then ``edgekit verify BUNDLE --adopt-compiled``
(:func:`adopt_compiled`), which adds the compiled file to the manifest the way
a build with the compiler would have. Nothing here imports TensorFlow: the
adoption runs wherever the compiler does.
"""
from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from edgekit.bundle.manifest import ArtifactEntry
from edgekit.compile.report import CompatReport, OpPlacement
from edgekit.errors import BundleError

VARIANT = "int8_edgetpu"  # the manifest variant of a compiled file
CUSTOM_OP = "edgetpu-custom-op"  # what the compiler puts in place of the ops it maps (one per Edge TPU subgraph)
ON_CPU = "Runs on the CPU (read from the compiled file)"
LOG_REPORT = "edgetpu_compiler.log"  # its log, under reports/

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


def compiled_mapping(source: Path, compiled: Path) -> dict[str, Any]:
    """The op mapping read from a compiled file itself, after checking it is one.

    A compiled Edge TPU model holds one ``edgetpu-custom-op`` per Edge TPU
    subgraph in place of the ops it maps; the ops it still lists run on the CPU.
    So: per op type, on the TPU = the source's count minus the compiled file's.

    Returns:
        ``{"rows": [...], "ops_on_tpu", "ops_on_cpu", "subgraphs"}`` in :func:`parse_log`'s shape.

    Raises:
        BundleError: no ``edgetpu-custom-op`` (e.g. an uncompiled copy), other model
            inputs/outputs (shape, dtype, quantization) than the source, or ops the source lacks.
    """
    from collections import Counter

    from edgekit.tflite_graph import read_graph

    src, out = read_graph(source), read_graph(compiled)
    customs = [op for op in out.ops if op.name == f"CUSTOM:{CUSTOM_OP}"]
    if not customs:
        raise BundleError(
            f"{compiled.name} has no {CUSTOM_OP} op, so it is not an edgetpu_compiler output "
            f"(an uncompiled copy of {source.name}?); nothing was adopted.",
            hint=f"Compile it: {EdgeTpuCompiler().command(str(source), str(source.parent))}",
        )
    for side, a_ids, b_ids in (("input", src.inputs, out.inputs), ("output", src.outputs, out.outputs)):
        want = [_io_signature(src.tensors[i]) for i in a_ids]
        got = [_io_signature(out.tensors[i]) for i in b_ids]
        if want != got:
            raise BundleError(
                f"{compiled.name} has {side}(s) {got} but {source.name} has {want}: it was not compiled from this artifact.",
                hint=f"Compile it again: {EdgeTpuCompiler().command(str(source), str(source.parent))}",
            )
    have = Counter(op.name for op in src.ops)
    cpu = Counter(op.name for op in out.ops if op.name != f"CUSTOM:{CUSTOM_OP}")
    extra = sorted(op for op in cpu if cpu[op] > have.get(op, 0))
    if extra:
        raise BundleError(f"{compiled.name} runs {', '.join(extra)} on the CPU more often than {source.name} has them: "
                          "it was not compiled from this artifact.")  # fmt: skip
    rows = []
    for op in sorted(have):
        if have[op] - cpu.get(op, 0):
            rows.append({"op": op, "count": have[op] - cpu.get(op, 0), "status": MAPPED})
        if cpu.get(op):
            rows.append({"op": op, "count": cpu[op], "status": ON_CPU})
    return {"rows": rows, "ops_on_tpu": sum(have.values()) - sum(cpu.values()), "ops_on_cpu": sum(cpu.values()),
            "subgraphs": len(customs)}  # fmt: skip


def _io_signature(t: Any) -> dict[str, Any]:
    return {"shape": list(t.shape), "dtype": t.dtype, "scale": list(t.scale), "zero_point": list(t.zero_point)}


def check_log(parsed: dict[str, Any], mapping: dict[str, Any]) -> list[str]:
    """Where a compiler log contradicts the compiled file's own mapping (empty: they agree)."""
    problems = []
    for key in ("ops_on_tpu", "ops_on_cpu", "subgraphs"):
        if key in parsed and parsed[key] != mapping[key]:
            problems.append(f"{key.replace('_', ' ')}: log {parsed[key]}, file {mapping[key]}")

    def mapped(rows: list[dict[str, Any]]) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in rows:
            if r["status"] == MAPPED:
                out[r["op"]] = out.get(r["op"], 0) + r["count"]
        return out

    log_rows, file_rows = mapped(parsed["rows"]), mapped(mapping["rows"])
    for op in sorted(set(log_rows) | set(file_rows)):
        if log_rows.get(op, 0) != file_rows.get(op, 0):
            problems.append(f"{op} on the Edge TPU: log {log_rows.get(op, 0)}, file {file_rows.get(op, 0)}")
    return problems


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
        return f"{self.executable} -s -o {shlex.quote(out_dir)} {shlex.quote(artifact)}"

    def manual_command(self, artifact: str, bundle: str) -> str:
        """What to run by hand: compile, then adopt the compiled file into the manifest."""
        return f"{self.command(f'{bundle}/{artifact}', bundle)} && edgekit verify {shlex.quote(bundle)} --adopt-compiled"

    def run(self, artifact: Path, report: CompatReport, *, bundle_hint: str) -> AdapterResult:
        """Compile ``artifact`` (in the staged bundle) next to itself.

        Args:
            artifact: the staged ``model_edgetpu.tflite``.
            report: the Edge TPU prediction to compare with.
            bundle_hint: how to name the bundle folder in the manual command.
        """
        exe = self.find()
        manual = self.manual_command(artifact.name, bundle_hint)
        ready = all(r["ok"] for r in report.requirements)
        if exe is None:
            if ready:
                message = (
                    f"{artifact.name} is Edge-TPU-ready (full int8, static shapes, batch 1; {report.ops_on}/{report.ops_total} "
                    "ops predicted on the Edge TPU) but NOT compiled: edgetpu_compiler is not on PATH here. "
                    "On an x86-64 Debian/Ubuntu host with the edgetpu-compiler package, run the command below "
                    "(it compiles, then adopts the compiled file into the manifest), or rebuild the bundle there "
                    "(edgekit runs the compiler itself)."
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
        try:
            mapping = compiled_mapping(artifact, compiled)
        except BundleError as e:
            compiled.unlink(missing_ok=True)
            return self._failed(f"edgetpu_compiler's output is not usable: {e.message}", manual, version, log_text)
        # The mapping comes from the compiled file; the log only has to agree with it.
        compare = compare_with_prediction(mapping, report)
        info = {
            "status": "compiled",
            "version": parsed["version"] or version,
            "file": compiled.name,
            "ops_on_tpu": mapping["ops_on_tpu"],
            "ops_on_cpu": mapping["ops_on_cpu"],
            "subgraphs": mapping["subgraphs"],
            "agrees": compare["agrees"],
            "differences": compare["differences"],
            "log": f"reports/{LOG_REPORT}",
            "log_matches_file": not check_log(parsed, mapping),
        }
        return AdapterResult(
            "ok",
            info,
            extra_files=[{"file": compiled.name, "variant": VARIANT, "compiled_from": artifact.name}],
            reports={LOG_REPORT: log_text},
        )

    def _failed(self, why: str, manual: str, version: str | None, log_text: str) -> AdapterResult:
        info = {"status": "failed", "message": why, "command": manual, "version": version}
        reports = {LOG_REPORT: log_text} if log_text else {}
        return AdapterResult("not_compiled", info, reports=reports, failure=why)


def _version(exe: str) -> str | None:
    try:
        proc = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    m = _VERSION.search(proc.stdout + proc.stderr)
    return m.group(1) if m else None


# ----------------------------------------------------------- compiled entries


def compiled_entry(
    root: Path,
    file: str,
    *,
    target: str,
    accelerator: str | None,
    recipe: dict[str, Any],
    info: dict[str, Any],
    compiled_from: str,
) -> ArtifactEntry:
    """The manifest entry of a compiled file in ``root`` (sha256/bytes are filled in by whoever writes it).

    Its I/O comes from the flatbuffer: loading it in an interpreter needs the
    Edge TPU delegate.
    """
    from edgekit.tflite_graph import read_graph

    g = read_graph(root / file)
    return ArtifactEntry(
        target=target,
        file=file,
        sha256="",
        bytes=0,
        variant=VARIANT,
        input=_graph_io(g, g.inputs[0]),
        output=_graph_io(g, g.outputs[0]),
        accelerator=accelerator,
        recipe=recipe,
        accuracy=None,  # running it needs an Edge TPU
        compatibility={k: info[k] for k in ("status", "version", "ops_on_tpu", "ops_on_cpu", "agrees") if k in info},
        compiled_from=compiled_from,
    )


def _graph_io(g: Any, index: int) -> dict[str, Any]:
    t = g.tensors[index]
    return {
        "name": t.name,
        "shape": list(t.shape),
        "dtype": t.dtype,
        "scale": t.scale[0] if t.scale else 0.0,
        "zero_point": t.zero_point[0] if t.zero_point else 0,
    }


def adopt_compiled(bundle_path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Add ``edgetpu_compiler`` output, compiled by hand inside a bundle, to its manifest.

    For each Edge TPU artifact whose ``<stem>_edgetpu.tflite`` sits beside it
    (what ``edgetpu_compiler -s -o BUNDLE BUNDLE/<stem>.tflite`` writes), the
    compiled file becomes an artifact with ``compiled_from``, hashed; the
    compiler's ``<stem>_edgetpu.log`` moves to ``reports/edgetpu_compiler.log``
    The op mapping is read from the compiled file itself
    (:func:`compiled_mapping`) and compared with the bundle's prediction; the log
    must agree with the file. The manifest
    is rewritten atomically. Adopting again (after recompiling) replaces the entry.

    Args:
        bundle_path: the bundle folder.

    Returns:
        One dict per adopted file: target, file, compiled_from, sha256, agrees, differences.

    Raises:
        BundleError: no Edge TPU artifact, no compiled file beside it, a file
            without ``edgetpu-custom-op`` (an uncompiled copy), one whose inputs or
            outputs differ from its source, or a log that contradicts the file.
        IntegrityError: the source artifact changed since the bundle was built.

    Example::

        for a in adopt_compiled("out/bundle"):
            print(a["file"], "agrees with the prediction:", a["agrees"])
    """
    from edgekit.bundle import MANIFEST_NAME, load_bundle, sha256_file, write_json_atomic

    bundle = load_bundle(bundle_path)
    m = bundle.manifest
    sources = [a for a in m.artifacts if a.accelerator == "edgetpu" and a.compiled_from is None]
    if not sources:
        have = ", ".join(m.targets) or "none"
        raise BundleError(
            f"bundle {bundle.path} has no Edge TPU artifact to adopt a compiled file for; it has: {have}.",
            hint="Build the bundle with the edgetpu target.",
        )
    adopted: list[dict[str, Any]] = []
    missing: list[str] = []
    for src in sources:
        bundle.artifact_path(src)  # sha256: the compiled file must come from the listed source
        rel = str(PurePosixPath(src.file).with_name(f"{PurePosixPath(src.file).stem}_edgetpu.tflite"))
        compiled = bundle.path / rel
        if not compiled.is_file():
            missing.append(f"{rel} (from {src.file})")
            continue
        mapping = compiled_mapping(bundle.path / src.file, compiled)  # refuses an uncompiled copy or other I/O
        info: dict[str, Any] = {"status": "compiled", "file": rel, "ops_on_tpu": mapping["ops_on_tpu"],
                                "ops_on_cpu": mapping["ops_on_cpu"], "subgraphs": mapping["subgraphs"]}  # fmt: skip
        info.update(_adopt_log(bundle.path, compiled.with_suffix(".log"), src.target, mapping))
        entry = compiled_entry(
            bundle.path, rel, target=src.target, accelerator=src.accelerator, recipe=dict(src.recipe),
            info=info, compiled_from=src.file,
        )
        entry.sha256, entry.bytes = sha256_file(compiled), compiled.stat().st_size
        m.artifacts = [a for a in m.artifacts if a.file != rel]
        m.artifacts.insert(m.artifacts.index(src) + 1, entry)
        src.status = "ok"  # as a build with the compiler marks it
        src.compatibility["compiler"] = {k: info[k] for k in ("status", "agrees") if k in info}
        adopted.append(
            {"target": src.target, "file": rel, "compiled_from": src.file, "sha256": entry.sha256,
             "agrees": info.get("agrees"), "differences": info.get("differences", [])}
        )
    if not adopted:
        first = sources[0]
        raise BundleError(
            f"no compiled file to adopt in {bundle.path}: expected {', '.join(missing)}.",
            hint=f"Compile first: {EdgeTpuCompiler().command(str(bundle.path / first.file), str(bundle.path))}",
        )
    reports = bundle.path / "reports"
    m.reports = sorted(p.relative_to(bundle.path).as_posix() for p in reports.rglob("*") if p.is_file())
    write_json_atomic(bundle.path / MANIFEST_NAME, m.to_dict())
    return adopted


def _adopt_log(root: Path, log: Path, target: str, mapping: dict[str, Any]) -> dict[str, Any]:
    """Compare the compiled file's mapping with the bundle's prediction; check the compiler's log against the file and keep it.

    Raises:
        BundleError: the log contradicts the compiled file (it is not this file's log).
    """
    out: dict[str, Any] = {}
    prediction = _prediction(root / "reports" / f"compat_{target}.json")
    if prediction is None:
        out["agrees"] = None
    else:
        out.update(compare_with_prediction(mapping, prediction))
    if not log.is_file():
        out["note"] = f"no {log.name}: the mapping was read from the compiled file alone"
        return out
    parsed = parse_log(log.read_text(errors="replace"))
    problems = check_log(parsed, mapping)
    if problems:
        raise BundleError(
            f"{log.name} does not describe the compiled file ({'; '.join(problems)}); nothing was adopted.",
            hint="Keep the .log that edgetpu_compiler wrote with this file, or delete it (the mapping is read from the file).",
        )
    out.update({"version": parsed["version"], "log": f"reports/{LOG_REPORT}"})
    dest = root / "reports" / LOG_REPORT
    dest.parent.mkdir(exist_ok=True)
    os.replace(log, dest)
    return out


def _prediction(path: Path) -> CompatReport | None:
    """The bundle's Edge TPU prediction, from its compatibility report (None when absent or unreadable)."""
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
        placements = [OpPlacement(**p) for p in d["placements"]]
        return CompatReport(d["target"], d["analysis"], d["accelerator"], d["method"], placements)
    except (OSError, ValueError, KeyError, TypeError):
        return None
