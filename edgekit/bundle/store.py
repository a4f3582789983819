"""Writing bundles atomically and reading them back with integrity checks.

A bundle is built in a hidden temporary folder beside its destination and
renamed into place only when complete, so Ctrl-C, a crash or a full disk never
leaves a half bundle that looks whole, and never damages an earlier bundle at
the same path (it is swapped out only after the new one is complete).
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from edgekit.bundle.manifest import MANIFEST_NAME, ArtifactEntry, Manifest, check_relative_path
from edgekit.errors import BundleError, IntegrityError


def sha256_file(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


class BundleWriter:
    """Context manager that stages a bundle and publishes it atomically.

    Example::

        with BundleWriter("out/bundle") as w:
            shutil.copy("model.tflite", w.path / "model_cpu.tflite")
            w.manifest = manifest          # artifacts' sha256/bytes filled in on commit
        # out/bundle now exists, complete; on any exception nothing changed.
    """

    def __init__(self, dest: str | os.PathLike[str], *, overwrite: bool = True):
        self.dest = Path(dest).resolve()
        if self.dest.exists() and not (self.dest / MANIFEST_NAME).is_file():
            if not self.dest.is_dir() or any(self.dest.iterdir()):
                raise BundleError(
                    f"{self.dest} exists and is not an edgekit bundle; refusing to replace it.",
                    hint="Choose another --out path or remove it yourself.",
                )
        if self.dest.exists() and not overwrite:
            raise BundleError(f"bundle {self.dest} already exists.", hint="Pass --overwrite or choose another --out.")
        self.manifest: Manifest | None = None
        self._tmp: Path | None = None

    @property
    def path(self) -> Path:
        if self._tmp is None:
            raise RuntimeError("BundleWriter used outside its 'with' block")
        return self._tmp

    def __enter__(self) -> "BundleWriter":
        self.dest.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = Path(tempfile.mkdtemp(prefix=f".{self.dest.name}.partial-", dir=self.dest.parent))
        # mkdtemp makes the folder 0700; a published bundle gets the usual umask-based mode.
        os.chmod(self._tmp, 0o777 & ~_umask())
        (self._tmp / "reports").mkdir()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        try:
            if exc_type is None:
                self._commit()
        finally:
            if self._tmp is not None and self._tmp.exists():
                shutil.rmtree(self._tmp, ignore_errors=True)

    def _commit(self) -> None:
        if self.manifest is None:
            raise BundleError("no manifest was set for the bundle; nothing was written.")
        root = self.path
        for entry in self.manifest.artifacts:
            f = root / entry.file
            if not f.is_file():
                raise BundleError(f"artifact {entry.file} is listed in the manifest but was not written.")
            entry.sha256 = sha256_file(f)
            entry.bytes = f.stat().st_size
        self.manifest.reports = sorted(
            str(p.relative_to(root).as_posix()) for p in (root / "reports").rglob("*") if p.is_file()
        )
        write_json_atomic(root / MANIFEST_NAME, self.manifest.to_dict())
        _swap_into_place(root, self.dest)
        self._tmp = None


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def json_default(obj: Any) -> Any:
    """``json.dump(..., default=json_default)``: numpy scalars/arrays as plain values, anything else (paths) as text."""
    if hasattr(obj, "tolist"):  # numpy scalars give a Python number, arrays nested lists
        return obj.tolist()
    return str(obj)


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically: a reader sees the old file or the new one, never half.

    The bytes go to a hidden temporary file beside ``path``, are fsynced, and
    replace ``path`` in one rename; the temporary file never outlives a failure.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.partial")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()
    return path


def write_json_atomic(path: str | os.PathLike[str], payload: dict) -> None:
    """Write ``payload`` as JSON to ``path`` atomically (see :func:`write_bytes_atomic`)."""
    text = json.dumps(payload, indent=2, sort_keys=False, default=json_default) + "\n"
    write_bytes_atomic(path, text.encode("utf-8"))


def _swap_into_place(staged: Path, dest: Path) -> None:
    # rename() cannot replace a non-empty directory, so the old bundle steps
    # aside first and is removed only after the new one is in place.
    old = None
    if dest.exists():
        old = dest.with_name(f".{dest.name}.old-{uuid.uuid4().hex[:8]}")
        os.rename(dest, old)
    try:
        os.rename(staged, dest)
    except BaseException:
        if old is not None:
            os.rename(old, dest)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


@dataclass
class Bundle:
    """A bundle on disk: its folder and parsed manifest."""

    path: Path
    manifest: Manifest

    def artifact_path(self, entry: ArtifactEntry, *, verify: bool = True) -> Path:
        """The artifact's file, its sha256 checked against the manifest.

        Raises:
            BundleError: the file is missing.
            IntegrityError: its content changed since the bundle was built.
        """
        p = self.path / check_relative_path(entry.file, f"artifact {entry.target!r} file")
        try:
            p.resolve().relative_to(self.path.resolve())
        except ValueError:  # a symlink inside the bundle that leads out of it
            raise BundleError(
                f"{p} leads outside the bundle (to {p.resolve()}); refusing to read it.",
                hint="Copy the bundle with real files (cp -rL), not links.",
            ) from None
        if not p.is_file():
            raise BundleError(f"{p} is listed in the manifest but missing; the bundle is incomplete.", hint="Rebuild it.")
        if verify:
            actual = sha256_file(p)
            if actual != entry.sha256:
                raise IntegrityError(
                    f"{p} failed its integrity check: sha256 {actual[:12]}… but the manifest says {entry.sha256[:12]}…; "
                    "the file was modified or corrupted.",
                    hint="Rebuild or re-copy the bundle; never edit artifacts by hand.",
                )
        return p


def load_bundle(path: str | os.PathLike[str]) -> Bundle:
    """Read a bundle's manifest (artifacts are hash-checked when used).

    Raises:
        BundleError: missing folder, missing or malformed manifest.
    """
    root = Path(path)
    if not root.exists():
        raise BundleError(f"bundle {root} does not exist.", hint="Build one with 'edgekit compress MODEL --out DIR'.")
    mpath = root / MANIFEST_NAME if root.is_dir() else root
    if not mpath.is_file():
        raise BundleError(f"{root} is not an edgekit bundle: no {MANIFEST_NAME} in it.")
    try:
        data = json.loads(mpath.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise BundleError(f"{mpath} is not valid JSON ({e}); the bundle is damaged.", hint="Rebuild it.") from e
    return Bundle(path=mpath.parent, manifest=Manifest.from_dict(data))


@dataclass
class VerifyResult:
    path: Path
    ok: bool
    checks: list[dict]  # one per artifact/report: file, ok, detail

    def to_dict(self) -> dict:
        return {"bundle": str(self.path), "ok": self.ok, "checks": self.checks}


def verify_bundle(path: str | os.PathLike[str]) -> VerifyResult:
    """Check every artifact's sha256 and size and that every listed report exists."""
    bundle = load_bundle(path)
    checks = []
    for entry in bundle.manifest.artifacts:
        try:
            p = bundle.artifact_path(entry)
            size_ok = p.stat().st_size == entry.bytes
            detail = "sha256 ok" if size_ok else f"size {p.stat().st_size} != manifest {entry.bytes}"
            checks.append({"file": entry.file, "target": entry.target, "ok": size_ok, "detail": detail})
        except BundleError as e:
            checks.append({"file": entry.file, "target": entry.target, "ok": False, "detail": str(e)})
    for rel in bundle.manifest.reports:
        exists = (bundle.path / rel).is_file()
        checks.append({"file": rel, "target": None, "ok": exists, "detail": "present" if exists else "missing"})
    return VerifyResult(bundle.path, all(c["ok"] for c in checks), checks)
