"""The project's one way to write an output: whole or not at all, never over something that is not ours.

- :func:`atomic_write_bytes` / :func:`atomic_write_text` / :func:`atomic_write_json` and :func:`atomic_open`
  write a temporary file in the *same* directory (``.<name>.tmp-<pid>-<rand>``), flush and ``fsync`` it, and
  ``os.replace`` it onto the target: a reader sees the old file or the new one, and a full disk or a kill leaves
  the old file intact (plus, after a kill, a stale temporary that :func:`clean_stale_temps` removes).
- :func:`atomic_directory` does the same for a folder of files (``<parent>/.<name>.tmp-<pid>-<rand>``, renamed
  at the end, removed on error); it replaces an existing folder only when asked and only when the folder is
  empty or carries the caller's marker file (a folder we wrote).
- :func:`check_output_path` refuses an existing output that is not a regular file (a device node, FIFO, socket,
  or a directory where a file is expected): ``os.replace`` would silently put a file in its place.

Symbolic links are followed: the file or folder they point to is replaced (in its own directory), the link stays.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

__all__ = [
    "atomic_directory",
    "atomic_open",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "check_output_directory",
    "check_output_path",
    "clean_stale_temps",
]

_KINDS: tuple[tuple[Callable[[int], bool], str], ...] = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISSOCK, "a socket"),
)


def _kind(mode: int) -> str:
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def _temp_name(name: str, kind: str = "tmp") -> str:
    return f".{name}.{kind}-{os.getpid()}-{secrets.token_hex(4)}"


def _target(path: str | os.PathLike[str]) -> Path:
    """``path`` with symbolic links resolved (so the link survives and the temporary lies beside the real file)."""
    return Path(os.path.realpath(os.fspath(path)))


def check_output_path(path: str | os.PathLike[str]) -> Path:
    """The file ``path`` resolves to, after checking that writing it destroys nothing that is not a file:
    ``ValueError`` naming ``path`` when it exists and is not a regular file (a directory, device node, FIFO,
    socket). A missing path is fine (its folder is not created here)."""
    target = _target(path)
    try:
        mode = os.stat(target).st_mode
    except FileNotFoundError:
        return target
    except OSError as exc:
        raise ValueError(f"output {path}: cannot inspect it ({exc.strerror or exc})") from None
    if not stat.S_ISREG(mode):
        raise ValueError(f"output {path} exists and is {_kind(mode)}, not a regular file; refusing to replace it")
    return target


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_directory(path: Path) -> None:
    """Make a rename in ``path`` durable (best effort: not every filesystem lets a directory be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike[str], mode: str = "wb", encoding: str | None = None) -> Iterator[IO[Any]]:
    """A file object (``mode`` ``"wb"`` or ``"w"``) whose content replaces ``path`` when the block ends without
    an error (flushed, fsynced, ``os.replace``); on an error the temporary is removed and ``path`` is untouched
    (an ``OSError`` without a file name, such as ``ENOSPC`` from a write, is raised again naming ``path``).
    The new file keeps the permissions of the file it replaces (else the umask's default)."""
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_open: mode must be 'wb' or 'w', got {mode!r}")
    target = check_output_path(path)
    try:
        perms: int | None = stat.S_IMODE(os.stat(target).st_mode)
    except FileNotFoundError:
        perms = None  # a new file: the umask's default
    tmp = target.with_name(_temp_name(target.name))
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666 if perms is None else perms)
    try:
        with os.fdopen(fd, mode, encoding=encoding if mode == "w" else None) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        if perms is not None:
            os.chmod(tmp, perms)  # exactly the replaced file's (os.open applied the umask)
        os.replace(tmp, target)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError) and exc.errno is not None and exc.filename is None:
            raise OSError(exc.errno, exc.strerror or os.strerror(exc.errno), os.fspath(path)) from exc  # name it
        raise
    _fsync_directory(target.parent)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_open`)."""
    with atomic_open(path, "wb") as handle:
        handle.write(data)


def atomic_write_text(path: str | os.PathLike[str], text: str, encoding: str = "utf-8") -> None:
    """Write ``text`` to ``path`` atomically (see :func:`atomic_open`)."""
    atomic_write_bytes(path, text.encode(encoding))


def atomic_write_json(path: str | os.PathLike[str], data: Any) -> None:
    """``data`` as indented JSON (trailing newline) to ``path``, atomically."""
    atomic_write_text(path, json.dumps(data, indent=2) + "\n")


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            path.unlink()


def clean_stale_temps(parent: str | os.PathLike[str], prefix: str) -> list[Path]:
    """Remove the temporaries this module left in ``parent`` for the output named ``prefix`` (files and folders
    ``.<prefix>.tmp-<pid>-<rand>``) by processes that are no longer alive; returns what was removed. A folder
    set aside while it was being replaced (``.<prefix>.old-<pid>-<rand>``) is moved back to ``prefix`` when the
    kill came between the two renames (``prefix`` missing), else removed. Temporaries of live processes (this
    one included) are left alone."""
    parent = Path(parent)
    pattern = re.compile(rf"^\.{re.escape(prefix)}\.(tmp|old)-(\d+)-[0-9a-f]+$")
    removed = []
    try:
        entries = list(parent.iterdir())
    except OSError:
        return removed
    for entry in sorted(entries):
        match = pattern.match(entry.name)
        if match is None or _pid_alive(int(match.group(2))):
            continue
        final = parent / prefix
        if match.group(1) == "old" and not os.path.lexists(final):
            os.replace(entry, final)  # the previous output, set aside just before a kill: put it back
            continue
        _remove(entry)
        removed.append(entry)
    return removed


def _check_directory(final: Path, shown: str, overwrite: bool, marker: str | None) -> None:
    """Raise unless ``final`` is missing, or an existing folder that ``overwrite`` allows replacing."""
    try:
        mode = os.stat(final).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(mode):
        what = "a regular file" if stat.S_ISREG(mode) else _kind(mode)
        raise ValueError(f"output folder {shown} exists and is {what}, not a folder; refusing to replace it")
    if not overwrite:
        raise FileExistsError(f"output folder {shown} exists; remove it or ask to overwrite it")
    if any(final.iterdir()) and not (marker is not None and (final / marker).is_file()):
        what = f"holds no {marker}" if marker is not None else "is not empty"
        raise ValueError(f"output folder {shown} exists and {what}: it was not written by us; refusing to "
                         "replace it (choose another folder)")


def check_output_directory(final_dir: str | os.PathLike[str], overwrite: bool = False,
                           marker: str | None = None) -> Path:
    """The check :func:`atomic_directory` makes before it starts, alone (nothing is created): raises unless
    ``final_dir`` is missing, or an existing folder that ``overwrite`` (and ``marker``) allow replacing. Returns the
    folder ``final_dir`` resolves to. For failing before a long computation whose result goes there."""
    final = _target(final_dir)
    _check_directory(final, os.fspath(final_dir), overwrite, marker)
    return final


@contextlib.contextmanager
def atomic_directory(final_dir: str | os.PathLike[str], overwrite: bool = False,
                     marker: str | None = None) -> Iterator[Path]:
    """A fresh folder to fill; when the block ends without an error it becomes ``final_dir`` in one rename
    (files fsynced first), else it is removed. Stale temporaries of killed runs are removed first
    (:func:`clean_stale_temps`).

    An existing ``final_dir`` raises ``FileExistsError`` unless ``overwrite``; even then it is replaced only when
    it is an empty folder or holds the file ``marker`` (the sign of a folder we wrote), else ``ValueError``. It is
    checked before the block runs and again before the rename.
    """
    final = _target(final_dir)
    shown = os.fspath(final_dir)
    _check_directory(final, shown, overwrite, marker)
    final.parent.mkdir(parents=True, exist_ok=True)
    clean_stale_temps(final.parent, final.name)
    tmp = final.parent / _temp_name(final.name)
    tmp.mkdir()
    try:
        yield tmp
        for file in tmp.rglob("*"):
            if file.is_file() and not file.is_symlink():
                _fsync_file(file)
        _check_directory(final, shown, overwrite, marker)
        if os.path.lexists(final):
            old = final.parent / _temp_name(final.name, "old")
            os.replace(final, old)
            try:
                os.replace(tmp, final)
            except BaseException:
                os.replace(old, final)
                raise
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
        _fsync_directory(final.parent)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
