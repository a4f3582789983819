"""Writing bundles atomically and reading them back with integrity checks.

A bundle is built in a hidden temporary folder beside its destination and
renamed into place only when complete, so Ctrl-C, a crash or a full disk never
leaves a half bundle that looks whole, and never damages an earlier bundle at
the same path (it is swapped out only after the new one is complete).
"""
from __future__ import annotations

import contextlib
import errno
import functools
import hashlib
import inspect
import json
import logging
import os
import shutil
import stat
import tempfile
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Callable, TypeVar

from edgekit.bundle.manifest import MANIFEST_NAME, ArtifactEntry, Manifest, check_relative_path
from edgekit.errors import BundleError, IntegrityError, OutputError
from edgekit.interrupts import checkpoint
from edgekit.jsonio import parse_json

log = logging.getLogger("edgekit.bundle")
F = TypeVar("F", bound=Callable[..., Any])


# A real manifest is a few KiB; a huge one is damage or an attack on the reader.
MAX_MANIFEST_BYTES = 16 << 20


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
        self._lock = OutputLock(self.dest)
        self._lock.acquire()
        try:
            self._tmp = self._stage()
        except BaseException:
            self._lock.release()
            raise
        return self

    def _stage(self) -> Path:
        self._tmp = Path(tempfile.mkdtemp(prefix=f".{self.dest.name}.partial-", dir=self.dest.parent))
        # mkdtemp makes the folder 0700; a published bundle gets the usual umask-based mode.
        os.chmod(self._tmp, 0o777 & ~_umask())
        (self._tmp / "reports").mkdir()
        return self._tmp

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        try:
            if exc_type is None:
                self._commit()
            elif isinstance(exc, OSError) and exc.errno in _DISK_ERRNOS:
                raise exc  # a full disk while staging: one line below, the stage is removed
        except OSError as e:
            raise OutputError(
                f"cannot write bundle {self.dest}: {e.strerror or e}"
                f"{' (' + str(e.filename) + ')' if e.filename else ''}; nothing was replaced.",
                hint="Free space or choose another --out." if e.errno == errno.ENOSPC else "Check the folder's permissions.",
            ) from e
        finally:
            if self._tmp is not None and self._tmp.exists():
                shutil.rmtree(self._tmp, ignore_errors=True)
            self._lock.release()

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
        # A Ctrl-C/SIGTERM that something swallowed on the way (TF's converter
        # cleanup turns it into OSError) must still not publish the bundle.
        checkpoint()
        _swap_into_place(root, self.dest)
        self._tmp = None


# Errors of the disk, not of edgekit: said in one line instead of a traceback.
_DISK_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def json_default(obj: Any) -> Any:
    """``json.dump(..., default=json_default)``: numpy scalars/arrays as plain values, anything else (paths) as text."""
    if hasattr(obj, "tolist"):  # numpy scalars give a Python number, arrays nested lists
        return obj.tolist()
    return str(obj)


def check_writable_target(path: str | os.PathLike[str], *, what: str = "output") -> Path:
    """The regular file that writing ``path`` would replace, after refusing anything else.

    A device node (``/dev/full``), a FIFO, a socket or a directory at ``path`` is
    refused: the temp-file-then-rename writer would replace it (as root, turn
    ``/dev/null`` into a PNG). A symlink is written *through*: the user named
    the link, so the file it leads to is what they mean, and replacing the link
    itself would silently detach whatever else reads it. A dangling link is
    refused (there is no file to write through to).

    Returns:
        The path to write (the symlink's resolved target, or ``path``).

    Raises:
        OutputError: ``path`` is something other than a regular file or nothing.
    """
    p = Path(path)
    target = p
    if p.is_symlink():
        target = Path(os.path.realpath(p))
        if not target.exists():
            raise OutputError(
                f"{what} path {p} is a symlink to {target}, which does not exist; refusing to replace the link.",
                hint="Point it at a file or choose another path.",
            )
    try:
        st = os.stat(target)
    except FileNotFoundError:
        return target
    except OSError as e:
        raise OutputError(f"cannot write {what} {p}: {e.strerror or e}.", hint="Choose another path.") from e
    if not stat.S_ISREG(st.st_mode):
        kind = _file_kind(st.st_mode)
        raise OutputError(
            f"{what} path {p} is {kind}, not a regular file; refusing to replace it.",
            hint="Give the path of a file to create or overwrite.",
        )
    return target


def _file_kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISSOCK, "a socket")):  # fmt: skip
        if test(mode):
            return name
    return "not a regular file"


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes, *, what: str = "output") -> Path:
    """Write ``data`` to ``path`` atomically: a reader sees the old file or the new one, never half.

    The bytes go to a hidden temporary file (unique per writer) beside the
    file, are fsynced, and replace it in one rename; the temporary file never
    outlives a failure. Non-regular targets are refused and symlinks written
    through (see :func:`check_writable_target`).

    Returns:
        ``path`` as given.

    Raises:
        OutputError: ``path`` is a device, FIFO, socket, directory or dangling symlink.
        OSError: the write itself failed (full disk, no permission).
    """
    path = Path(path)
    target = check_writable_target(path, what=what)
    tmp = target.with_name(f".{target.name}.partial-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "xb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        check_writable_target(path, what=what)  # something may have appeared there meanwhile
        os.replace(tmp, target)
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
    # aside first and is removed only after the new one is in place. The
    # output lock keeps other edgekit runs out; a folder that vanishes or
    # appears meanwhile (another program) is handled, never a raw OSError.
    old = dest.with_name(f".{dest.name}.old-{uuid.uuid4().hex[:8]}")
    try:
        os.rename(dest, old)
    except FileNotFoundError:
        old = None  # nothing there (or it vanished): nothing to step aside
    try:
        os.rename(staged, dest)
    except OSError as e:
        if old is not None:
            with contextlib.suppress(OSError):
                os.rename(old, dest)
        if e.errno in (errno.ENOTEMPTY, errno.EEXIST, errno.EISDIR, errno.ENOTDIR):
            raise BundleError(
                f"{dest} was created by something else while the bundle was being written; refusing to replace it.",
                hint="Make sure only one program writes this --out, then run again.",
            ) from e
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


class OutputLock:
    """An advisory lock on a bundle's destination, so two runs cannot write the same ``--out``.

    The lock is ``flock`` on a hidden ``.NAME.lock`` file beside the folder,
    holding the owner's PID: the kernel releases it when the owner dies
    (SIGKILL included), so there are no stale locks. Reentrant within one
    process. Taking it the first time also cleans up what killed runs left
    beside the folder (hidden ``.NAME.partial-*`` stages, ``.NAME.old-*``
    copies), restoring the previous bundle if it was left aside.
    """

    _held: dict[Path, list] = {}  # dest -> [fd, count]
    _mutex = threading.Lock()

    def __init__(self, dest: str | os.PathLike[str]):
        self.dest = Path(dest).resolve()
        self.path = self.dest.with_name(f".{self.dest.name}.lock")
        self.cleaned: list[str] = []

    def acquire(self) -> "OutputLock":
        with self._mutex:
            held = self._held.get(self.dest)
            if held is not None:
                held[1] += 1
                return self
            self.dest.parent.mkdir(parents=True, exist_ok=True)
            fd = self._lock_file()
            self._held[self.dest] = [fd, 1]
        try:
            self.cleaned = clean_stale(self.dest)
        except BaseException:
            self.release()
            raise
        return self

    def _lock_file(self) -> int:
        import fcntl

        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                owner = os.read(fd, 64).decode("ascii", "replace").strip() or "unknown"
                os.close(fd)
                raise OutputError(
                    f"{self.dest} is being written by another edgekit run (PID {owner}); refusing to write it at the same time.",
                    hint="Wait for it to finish, or choose another --out.",
                ) from None
            # The previous holder may have unlinked the file between our open
            # and our lock: then we locked an orphan; start over.
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(self.path))
            except FileNotFoundError:
                same = False
            if same:
                os.ftruncate(fd, 0)
                os.write(fd, f"{os.getpid()}\n".encode())
                return fd
            os.close(fd)

    def release(self) -> None:
        with self._mutex:
            held = self._held.get(self.dest)
            if held is None:
                return
            held[1] -= 1
            if held[1] > 0:
                return
            del self._held[self.dest]
            with contextlib.suppress(OSError):
                os.unlink(self.path)  # before unlocking: a waiter re-checks the inode
            os.close(held[0])

    def __enter__(self) -> "OutputLock":
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()


def clean_stale(dest: str | os.PathLike[str]) -> list[str]:
    """Remove what killed runs left beside ``dest``; call only while holding its :class:`OutputLock`.

    A ``.NAME.old-*`` folder when ``dest`` itself is missing is the previous
    bundle, moved aside by a run killed mid-swap: it is put back, not deleted.

    Returns:
        One line per thing removed or restored (also logged as warnings).
    """
    dest = Path(dest)
    done: list[str] = []
    try:
        siblings = sorted(dest.parent.iterdir())
    except OSError:
        return done
    prefix = f".{dest.name}."
    olds = [p for p in siblings if p.name.startswith(prefix + "old-") and p.is_dir() and not p.is_symlink()]
    if olds and not os.path.lexists(dest) and (olds[-1] / MANIFEST_NAME).is_file():
        os.rename(olds[-1], dest)
        done.append(f"restored the previous bundle {dest} from {olds[-1].name}, left aside by an interrupted run")
        olds = olds[:-1]
    for p in siblings:
        if not p.name.startswith(prefix + "partial-") and p not in olds:
            continue
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                p.unlink()
        done.append(f"removed {p}, left by an interrupted run")
    for line in done:
        log.warning("%s", line)
    return done


def locks_output(param: str = "out") -> Callable[[F], F]:
    """Decorator: hold the :class:`OutputLock` of the function's ``param`` argument for the whole call.

    So a second run on the same ``--out`` fails at once with the first one's
    PID instead of training for minutes and then racing it to publish.
    """

    def deco(fn: F) -> F:
        sig = inspect.signature(fn)

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            dest = sig.bind_partial(*args, **kwargs).arguments.get(param)
            if dest is None:
                return fn(*args, **kwargs)
            with OutputLock(dest):
                return fn(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return deco


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
            _check_sha(p, sha256_file(p), entry)
        return p

    def artifact_bytes(self, entry: ArtifactEntry) -> bytes:
        """The artifact's content, read once and checked against the manifest's sha256.

        Use these bytes (not the path again) so what runs is what was hashed.

        Raises:
            BundleError: the file is missing or leads outside the bundle.
            IntegrityError: its content changed since the bundle was built.
        """
        p = self.artifact_path(entry, verify=False)
        try:
            data = p.read_bytes()
        except OSError as e:
            raise BundleError(f"cannot read {p}: {e.strerror or e}.") from e
        _check_sha(p, hashlib.sha256(data).hexdigest(), entry)
        return data


def _check_sha(p: Path, actual: str, entry: ArtifactEntry) -> None:
    if actual != entry.sha256:
        raise IntegrityError(
            f"{p} failed its integrity check: sha256 {actual[:12]}… but the manifest says {entry.sha256[:12]}…; "
            "the file was modified or corrupted.",
            hint="Rebuild or re-copy the bundle; never edit artifacts by hand.",
        )


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
    if mpath.is_symlink():
        try:
            mpath.resolve().relative_to(mpath.parent.resolve())
        except ValueError:
            raise BundleError(
                f"{mpath} is a symlink leading outside the bundle (to {mpath.resolve()}); refusing to read it.",
                hint="Copy the bundle with real files (cp -rL), not links.",
            ) from None
    if mpath.stat().st_size > MAX_MANIFEST_BYTES:
        raise BundleError(
            f"{mpath} is {mpath.stat().st_size:,} bytes; a manifest is at most {MAX_MANIFEST_BYTES:,}; the bundle is damaged.",
            hint="Rebuild it.",
        )
    try:
        text = mpath.read_bytes()
    except OSError as e:
        raise BundleError(f"cannot read {mpath}: {e.strerror or e}.") from e
    data = parse_json(text, what=str(mpath), error=BundleError, hint="The bundle is damaged; rebuild it.")
    return Bundle(path=mpath.parent, manifest=Manifest.from_dict(data))


@dataclass
class VerifyResult:
    path: Path
    ok: bool
    checks: list[dict]  # one per artifact/report: file, ok, detail

    def to_dict(self) -> dict:
        return {"bundle": str(self.path), "ok": self.ok, "checks": self.checks}


def verify_bundle(path: str | os.PathLike[str]) -> VerifyResult:
    """Check every artifact as loading would, and that every listed report exists.

    Per artifact: sha256 and size of the bytes read once, then the same
    manifest-vs-artifact checks the runtime makes before running it
    (:mod:`edgekit.bundle.contract`: preprocessing spec, input shape and dtype,
    outputs vs labels), read from those bytes' header.
    """
    from edgekit.bundle.contract import bundle_spec, check_artifact

    bundle = load_bundle(path)
    checks = []
    spec = None
    try:
        spec = bundle_spec(bundle.manifest, bundle.path)
    except BundleError as e:
        checks.append({"file": MANIFEST_NAME, "target": None, "ok": False, "detail": str(e)})
    for entry in bundle.manifest.artifacts:
        try:
            data = bundle.artifact_bytes(entry)
            if len(data) != entry.bytes:
                raise BundleError(f"size {len(data)} != manifest {entry.bytes}")
            detail = "sha256 ok"
            if spec is not None:
                _check_artifact_header(data, entry, bundle, spec, check_artifact)
                detail = "sha256 ok; fits the manifest"
            checks.append({"file": entry.file, "target": entry.target, "ok": True, "detail": detail})
        except BundleError as e:
            checks.append({"file": entry.file, "target": entry.target, "ok": False, "detail": str(e)})
    for rel in bundle.manifest.reports:
        exists = (bundle.path / rel).is_file()
        checks.append({"file": rel, "target": None, "ok": exists, "detail": "present" if exists else "missing"})
    return VerifyResult(bundle.path, all(c["ok"] for c in checks), checks)


def _check_artifact_header(data: bytes, entry: ArtifactEntry, bundle: Bundle, spec: Any, check: Callable[..., None]) -> None:
    from edgekit.errors import MissingExtraError
    from edgekit.tflite_graph import read_graph

    try:
        graph = read_graph(data)
    except MissingExtraError:
        return  # no LiteRT schema here: the hash is all verify can check
    tin, tout = graph.tensor(graph.inputs[0]) if graph.inputs else None, graph.tensor(graph.outputs[0]) if graph.outputs else None
    if tin is None or tout is None:
        raise BundleError(f"{entry.file} has no input or output tensor.", hint="Rebuild the bundle.")
    check(spec, list(bundle.manifest.labels), entry, input_shape=tin.shape, input_dtype=tin.dtype, output_shape=tout.shape)
