"""``hwmodel.atomic``: outputs appear whole or not at all, never over a device, FIFO, socket or foreign folder;
stale temporaries of killed processes are cleaned."""

from __future__ import annotations

import errno
import json
import os
import socket
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from hwmodel.atomic import (atomic_directory, atomic_open, atomic_write_bytes, atomic_write_json, atomic_write_text,
                            check_output_path, clean_stale_temps)


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def dead_pid() -> int:
    """The pid of a process that has exited."""
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                          check=True)
    return int(done.stdout)


# --- single files -------------------------------------------------------------------------------------
def test_write_text_bytes_json_replace_and_leave_no_temporary(tmp_path):
    path = tmp_path / "out.json"
    atomic_write_text(path, "old\n")
    os.chmod(path, 0o640)
    atomic_write_json(path, {"a": 1})
    assert json.loads(path.read_text()) == {"a": 1}
    assert stat.S_IMODE(path.stat().st_mode) == 0o640  # the replaced file's permissions are kept
    atomic_write_bytes(tmp_path / "b.bin", b"\x00\x01")
    assert (tmp_path / "b.bin").read_bytes() == b"\x00\x01"
    assert leftovers(tmp_path) == []


def test_a_failed_write_leaves_the_previous_file_intact(tmp_path):
    path = tmp_path / "last.ckpt"
    path.write_bytes(b"good")
    with pytest.raises(OSError) as err:
        with atomic_open(path) as handle:
            handle.write(b"half of the new")
            raise OSError(errno.ENOSPC, "No space left on device")
    assert err.value.errno == errno.ENOSPC and err.value.filename == str(path)
    assert path.read_bytes() == b"good"
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("kind", ["fifo", "socket", "directory"])
def test_non_regular_outputs_are_refused(tmp_path, kind):
    path = tmp_path / "out.json"
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "directory":
        path.mkdir()
    else:
        sock = socket.socket(socket.AF_UNIX)
        sock.bind(str(path))
    with pytest.raises(ValueError, match=f"output {path} exists and is a"):
        atomic_write_json(path, {"a": 1})
    with pytest.raises(ValueError, match=str(path)):
        check_output_path(path)
    assert not path.is_file() and os.path.lexists(path)  # still what it was
    assert leftovers(tmp_path) == []


def test_a_device_node_is_refused_and_kept():
    with pytest.raises(ValueError, match="/dev/null exists and is a character device"):
        atomic_write_text("/dev/null", "x")
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)


def test_a_symlink_is_followed_and_kept(tmp_path):
    real = tmp_path / "real.txt"
    real.write_text("old")
    link = tmp_path / "link.txt"
    link.symlink_to(real)
    atomic_write_text(link, "new")
    assert link.is_symlink() and real.read_text() == "new"
    assert check_output_path(tmp_path / "missing.txt") == tmp_path / "missing.txt"


# --- folders --------------------------------------------------------------------------------------------
def test_atomic_directory_appears_whole_or_not_at_all(tmp_path):
    out = tmp_path / "bundle"
    with pytest.raises(RuntimeError):
        with atomic_directory(out) as tmp:
            (tmp / "a.json").write_text("{}")
            raise RuntimeError("export failed half-way")
    assert not out.exists() and leftovers(tmp_path) == []
    with atomic_directory(out) as tmp:
        (tmp / "a.json").write_text("{}")
        assert not out.exists()
    assert (out / "a.json").is_file() and leftovers(tmp_path) == []


def test_atomic_directory_replaces_only_a_folder_of_ours(tmp_path):
    out = tmp_path / "bundle"
    with atomic_directory(out) as tmp:
        (tmp / "subnet.json").write_text("1")
    with pytest.raises(FileExistsError, match="exists"):
        with atomic_directory(out, marker="subnet.json"):
            pass
    with atomic_directory(out, overwrite=True, marker="subnet.json") as tmp:
        (tmp / "subnet.json").write_text("2")
    assert (out / "subnet.json").read_text() == "2" and leftovers(tmp_path) == []

    foreign = tmp_path / "home"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("years of work")
    with pytest.raises(ValueError, match="holds no subnet.json: it was not written by us"):
        with atomic_directory(foreign, overwrite=True, marker="subnet.json"):
            pytest.fail("the block must not run")
    assert (foreign / "thesis.tex").read_text() == "years of work"

    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="exists and is a directory, not a regular file"):
        check_output_path(tmp_path)
    with pytest.raises(ValueError, match="exists and is a regular file, not a folder"):
        with atomic_directory(tmp_path / "file", overwrite=True):
            pass


def test_stale_temporaries_of_dead_processes_are_cleaned(tmp_path):
    pid = dead_pid()
    stale_dir = tmp_path / f".bundle.tmp-{pid}-0a1b2c3d"
    stale_dir.mkdir()
    (stale_dir / "model.pt2").write_bytes(b"half")
    stale_file = tmp_path / f".bundle.tmp-{pid}-00ff00ff"
    stale_file.write_bytes(b"half")
    live = tmp_path / f".bundle.tmp-{os.getpid()}-deadbeef"  # ours, in progress: kept
    live.mkdir()
    other = tmp_path / f".other.tmp-{pid}-12345678"  # another output's: kept
    other.mkdir()
    removed = clean_stale_temps(tmp_path, "bundle")
    assert sorted(removed) == sorted([stale_dir, stale_file])
    assert live.exists() and other.exists()


def test_a_folder_set_aside_before_a_kill_is_put_back(tmp_path):
    old = tmp_path / f".bundle.old-{dead_pid()}-0a1b2c3d"
    old.mkdir()
    (old / "subnet.json").write_text("previous")
    clean_stale_temps(tmp_path, "bundle")
    assert (tmp_path / "bundle" / "subnet.json").read_text() == "previous"


def test_sigkill_inside_atomic_directory_then_rerun_cleans(tmp_path):
    script = textwrap.dedent(f"""
        import os, signal
        from hwmodel.atomic import atomic_directory
        with atomic_directory({str(tmp_path / 'bundle')!r}) as tmp:
            (tmp / "model.pt2").write_bytes(b"x" * 1000)
            os.kill(os.getpid(), signal.SIGKILL)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == -9
    assert not (tmp_path / "bundle").exists() and len(leftovers(tmp_path)) == 1
    with atomic_directory(tmp_path / "bundle") as tmp:
        (tmp / "model.pt2").write_bytes(b"y")
    assert leftovers(tmp_path) == [] and (tmp_path / "bundle" / "model.pt2").read_bytes() == b"y"
