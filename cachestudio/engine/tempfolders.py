"""Temp folders that name their owner, and the one way orphans are removed.

Every temp folder Cache Studio makes (a run's, a window's, the bench's) is a
``cachestudio-<kind>-*`` directory holding ``owner.pid``: ``"<pid> <start time>"`` of the
process that made it (the start time is /proc's, so a reused pid is not mistaken for the
owner). A process killed with SIGKILL cannot remove its folder (a run with its own
PostgreSQL leaves 40-47 MB); every command calls :func:`remove_orphans` at its start, which
removes the folders whose owner is gone — never a live owner's, never one without the
marker, never a symlink or someone else's.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

PREFIX = "cachestudio-"
OWNER_FILE = "owner.pid"  # "<pid> <start time>" of the process that made the folder


def start_time(pid: int) -> str:
    """The process's start time (clock ticks since boot, /proc/<pid>/stat field 22), or ""
    where /proc is not there: with the pid it names one process, even after pid reuse."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            text = fh.read().decode("ascii", "replace")
        return text[text.rindex(")") + 2 :].split()[19]
    except (OSError, ValueError, IndexError):
        return ""


def alive(pid: int, started: str) -> bool:
    """Whether the process ``pid`` that started at ``started`` is still there."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # someone else's process: alive, and not ours to judge
    now = start_time(pid)
    return not (started and now and now != started)  # the pid was reused: the owner is gone


def make_folder(kind: str) -> str:
    """A new temp folder ``cachestudio-<kind>-*``, marked with its owner (this process)."""
    path = tempfile.mkdtemp(prefix=f"{PREFIX}{kind}-")
    pid = os.getpid()
    with open(os.path.join(path, OWNER_FILE), "w", encoding="ascii") as fh:
        fh.write(f"{pid} {start_time(pid)}\n")
    return path


@contextmanager
def temp_folder(kind: str) -> Iterator[str]:
    """:func:`make_folder`, removed when the block ends (however it ends)."""
    path = make_folder(kind)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _owner(path: str) -> tuple[int, str] | None:
    """The owner named in ``path``'s marker, or None (no marker, not ours, not readable)."""
    try:
        owner = os.path.join(path, OWNER_FILE)
        st = os.lstat(owner)
        if not stat.S_ISREG(st.st_mode) or st.st_size > 100:
            return None
        with open(owner, encoding="ascii") as fh:
            fields = fh.read().split()
        return int(fields[0]), (fields[1] if len(fields) > 1 else "")
    except (OSError, ValueError, IndexError, UnicodeDecodeError):
        return None


def remove_orphans(directory: str | None = None) -> list[str]:
    """Remove the temp folders of owners that are gone (killed with SIGKILL, say): only
    ``cachestudio-*`` directories of this user that hold an ``owner.pid`` naming a dead
    process. Anything else is left alone. Returns the folders removed."""
    directory = directory or tempfile.gettempdir()
    removed: list[str] = []
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return removed
    for entry in entries:
        if not entry.name.startswith(PREFIX):
            continue
        try:
            if not entry.is_dir(follow_symlinks=False) or entry.stat(follow_symlinks=False).st_uid != os.getuid():
                continue
        except OSError:
            continue
        owner = _owner(entry.path)
        if owner is None or owner[0] == os.getpid() or alive(*owner):
            continue
        shutil.rmtree(entry.path, ignore_errors=True)
        removed.append(entry.path)
    return removed
