"""Safe file I/O: atomic writes, code-free loading of torch files, the run folder's lock."""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sne_loihi.errors import CheckpointError, ConfigError, UnsafeFileError, one_line


#: Suffix of :func:`atomic_write_bytes`' temporary files (``.NAME.<random>.tmp``).
TMP_SUFFIX = ".tmp"
#: The names ``tempfile.mkstemp`` gives them: the target's name, then 8 random characters.
_TMP_NAME = re.compile(r"^\..+\.[a-z0-9_]{8}" + re.escape(TMP_SUFFIX) + "$")


def _umask() -> int:
    """The process's umask (read by setting it and putting it back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def remove_stale_temporaries(folder: Path) -> list[Path]:
    """Remove the temporary files :func:`atomic_write_bytes` left in ``folder`` and its
    immediate subfolders when a process was killed mid-write (each a whole checkpoint's size).

    Call it only while holding the folder's :func:`run_lock`, so no writer is using them; a
    subfolder with a lock file of its own (another run folder, e.g. a harness's seed, which
    its own writer may hold) is left alone.

    Returns:
        The files removed.
    """
    removed = []
    for pattern in (f".*{TMP_SUFFIX}", f"*/.*{TMP_SUFFIX}"):
        for tmp in Path(folder).glob(pattern):
            if tmp.parent != Path(folder) and (tmp.parent / LOCK_FILE).exists():
                continue
            if _TMP_NAME.match(tmp.name) and tmp.is_file() and not tmp.is_symlink():
                try:
                    tmp.unlink()
                    removed.append(tmp)
                except OSError:
                    pass
    return removed


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file and ``os.replace``.

    A crash mid-write leaves the previous file intact (and a ``.NAME.*.tmp`` file, which
    :func:`run_lock` removes when it next takes the folder's lock). The new file gets the
    permissions a plainly created one would (``0o666`` less the umask), not the temporary
    file's owner-only ``0o600``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TMP_SUFFIX)
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_json(path: Path, obj: Any) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    atomic_write_bytes(Path(path), (json.dumps(obj, indent=2) + "\n").encode())


def file_key(path: Path) -> str:
    """Size and modification time of a file: changes whenever it is rewritten, so results
    derived from a checkpoint can tell when they predate it."""
    st = Path(path).stat()
    return f"{st.st_size}:{st.st_mtime_ns}"


def same_content(path: Path, key: str | None, sha256: str | None) -> bool:
    """Whether ``path`` still holds what a result was derived from: its :func:`file_key`
    equals ``key``, or else (a copy, with a new modification time) its SHA-256 equals
    ``sha256`` (``None``: unknown, so not the same)."""
    if key is not None and file_key(path) == key:
        return True
    return sha256 is not None and sha256_file(path) == sha256


def save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    """Save a checkpoint dict atomically (plain tensors, numbers, strings, lists, dicts)."""
    import io

    import torch

    buf = io.BytesIO()
    torch.save(payload, buf)
    atomic_write_bytes(Path(path), buf.getvalue())


#: Records of a zip archive that mark TorchScript: ``constants.pkl`` is what
#: ``torch.serialization._is_torchscript_zip`` looks for before handing the file to
#: ``torch.jit.load`` (which runs the archive's code, even under ``weights_only=True`` in
#: torch < 2.6); ``code/`` and ``.data/ts_code/`` hold the code itself.
_TORCHSCRIPT_RECORDS = ("constants.pkl",)
_TORCHSCRIPT_PREFIXES = ("code/", ".data/ts_code/")
#: How torch recognises its zip format (``torch.serialization._is_zipfile``): the first bytes.
_ZIP_MAGIC = b"PK\x03\x04"
#: How torch's weights-only unpickler words a refused global, constructor or call (its other
#: refusals, e.g. ``Unsupported operand``, are bytes that are not a pickle at all).
_CODE_REFUSALS = ("Unsupported class", "Trying to instantiate unsupported class", "Trying to call reduce")


def refuse_code(data: bytes, path: Path, what: str = "file") -> None:
    """Refuse a torch file that would run code when loaded, before torch sees it.

    ``data`` is checked with torch's own zip reader (the one ``torch.load`` uses), so the
    check and the load see the same archive.

    Raises:
        UnsafeFileError: ``data`` is a TorchScript archive.
        CheckpointError: ``data`` claims to be a torch zip archive but cannot be read.
    """
    import io

    import torch

    if not data.startswith(_ZIP_MAGIC):
        return  # legacy (non-zip) format: read by the weights-only unpickler alone
    try:
        records = torch._C.PyTorchFileReader(io.BytesIO(data)).get_all_records()
    except Exception as exc:  # corrupt or truncated zip
        raise CheckpointError(f"cannot load {what} {path} (truncated or corrupt zip archive: {one_line(exc, 120)})") from None
    code = [r for r in records if r in _TORCHSCRIPT_RECORDS or r.startswith(_TORCHSCRIPT_PREFIXES)]
    if code:
        raise UnsafeFileError(
            f"cannot load {what} {path}: it is a TorchScript archive (holds {code[0]}), whose code would run "
            "on loading; refused (only files of tensors and plain Python values written by torch.save are read)"
        )


def load_torch_file(path: Path, map_location: str = "cpu", what: str = "file") -> Any:
    """Load a ``torch.save`` file without running any code it may carry.

    The one loader for every torch file the toolkit reads. The bytes are read once, refused
    if they are a TorchScript archive (:func:`refuse_code`), then unpickled by
    ``torch.load(weights_only=True)``, which allows only tensors and plain Python values.

    Args:
        path: The file.
        map_location: Where tensors go.
        what: What the file is, for messages (``"checkpoint"``, ``"cache"``, ...).

    Raises:
        UnsafeFileError: A TorchScript archive, or a pickle that asks for any other class
            or function (it is not run).
        CheckpointError: Missing, unreadable, truncated or corrupt file.
    """
    import io

    import torch

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{what} not found: {path}")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CheckpointError(f"cannot read {what} {path}: {exc.strerror or type(exc).__name__}") from None
    refuse_code(data, path, what)
    try:
        return torch.load(io.BytesIO(data), map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises many types for corrupt files
        text = one_line(exc, 400)
        reason = text.split("WeightsUnpickler error:", 1)[1].strip() if "WeightsUnpickler error:" in text else ""
        if reason.startswith(_CODE_REFUSALS):  # not garbage: a pickle naming code to import or call
            raise UnsafeFileError(
                f"cannot load {what} {path}: it holds more than tensors and plain Python values ({reason}); "
                "refused, nothing in it was run"
            ) from None
        # the unpickler's own reason, not torch's preamble (which suggests weights_only=False)
        raise CheckpointError(f"cannot load {what} {path} (truncated, corrupt or not a torch file: "
                              f"{reason or one_line(exc, 160)})") from None


def load_checkpoint(path: Path, map_location: str = "cpu", what: str = "checkpoint") -> dict[str, Any]:
    """Load a checkpoint dict without running code (:func:`load_torch_file`).

    Raises:
        UnsafeFileError: The file carries code or objects other than plain data.
        CheckpointError: Missing, truncated, corrupt, or not a dict.
    """
    payload = load_torch_file(path, map_location=map_location, what=what)
    if not isinstance(payload, dict):
        raise CheckpointError(f"{what} {path} does not hold a dict (got {type(payload).__name__})")
    return payload


def load_cache(path: Path, what: str = "cache") -> dict[str, Any] | None:
    """Load a derived-data cache (teacher features, cascade head) that may be recomputed.

    A cache that cannot be read (truncated, corrupt, not a dict) is reported by one
    ``warning:`` line on stderr and ``None`` is returned, so the caller recomputes it; a cache
    that would run code is an error, never silently replaced.

    Raises:
        UnsafeFileError: The file is a TorchScript archive or pickles more than plain data.
    """
    try:
        return load_checkpoint(path, what=what)
    except UnsafeFileError:
        raise
    except CheckpointError as exc:
        print(f"warning: {exc}; it is recomputed", file=sys.stderr)
        return None


#: The lock file of a run folder (holds the pid of the process writing the folder).
LOCK_FILE = ".sne.lock"
#: Run folders this process holds locked (resolved path -> nesting depth).
_HELD: dict[Path, int] = {}


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists on this machine."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def refuse_outside_links(run_dir: Path) -> None:
    """Refuse a run folder holding a link that leads outside it (anything written there would
    change a file elsewhere).

    Raises:
        ConfigError: The first such link, in one line.
    """
    root = Path(run_dir).resolve()
    for dirpath, dirnames, filenames in os.walk(run_dir, followlinks=False):
        for name in dirnames + filenames:
            entry = Path(dirpath) / name
            if entry.is_symlink():
                target = entry.resolve()
                if target != root and root not in target.parents:
                    raise ConfigError(f"{entry} is a link to {target}, outside the run folder; refused "
                                      "(a run folder's files are written in place)")


@contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    """Hold the run folder's lock (``RUN/.sne.lock``) for one writer at a time.

    An exclusive ``flock`` on the lock file, which the kernel releases when its holder exits,
    so the lock of a killed process is simply taken over; the file records the holder's pid
    for the message. Re-entrant within one process. A missing run folder whose parent exists
    is created for the lock and removed again if it is still empty afterwards; without a
    parent there is nothing to lock yet.

    Raises:
        ConfigError: Another process holds the lock, or ``run_dir`` is not a folder.
    """
    import fcntl

    run_dir = Path(run_dir)
    key = run_dir.resolve()
    if key in _HELD:
        _HELD[key] += 1
        try:
            yield
        finally:
            _HELD[key] -= 1
        return
    if run_dir.exists() and not run_dir.is_dir():
        raise ConfigError(f"run folder {run_dir} exists and is not a folder")
    created = False
    if not run_dir.exists():
        if not run_dir.parent.is_dir():
            yield
            return
        try:
            run_dir.mkdir()
            created = True
        except FileExistsError:
            pass
    path = run_dir / LOCK_FILE
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
        except OSError as exc:
            if path.is_symlink():
                raise ConfigError(f"{path} is a link; the run lock is never written through a link "
                                  "(remove it)") from None
            raise ConfigError(f"cannot lock run folder {run_dir}: {exc.strerror or type(exc).__name__}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.read(fd, 32).decode(errors="replace").strip()
            os.close(fd)
            raise ConfigError(
                f"run folder {run_dir} is in use by another process (pid {holder or 'unknown'}, {path}); "
                "wait for it to finish"
            ) from None
        try:  # the holder before us may have unlinked the file after we opened it: lock the current one
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    _HELD[key] = 1
    try:
        refuse_outside_links(run_dir)
        remove_stale_temporaries(run_dir)
        yield
    finally:
        del _HELD[key]
        try:
            os.unlink(path)
        finally:
            os.close(fd)
        if created:
            try:
                run_dir.rmdir()  # only if nothing else was written
            except OSError:
                pass


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
