"""Output files the user asked for (``--json``, ``--history``, ``--chart`` …): only our own files are written.

An :class:`Output` is checked and opened *before* the run (a bad path is an
:class:`OutputError`, a :class:`~.config.ConfigError`: one line, exit status 2) and committed
*after* it (a failure then is an :class:`OutputWriteError`: one line, the original left alone).
:func:`open_outputs` opens several at once and refuses the same target twice.

Decisions (DESIGN.md §6: written atomically when regular files, streamed when pipes or
devices, never replace what is not ours, follow the user's umask):

* ``-`` is standard output (``sys.stdout``): a stream we write to and flush, never close.
* ``/dev/stdout``, ``/dev/stderr``, ``/dev/fd/N`` and ``/proc/self/fd/N`` (also
  ``/proc/thread-self/fd/N`` and ``/proc/<our pid>/fd/N``) mean *our file descriptor N*: it is
  duplicated and written through, sharing its offset, whatever it is (a tty, a pipe, a socket,
  a regular file the shell opened with ``>`` or ``>>``). It is never reopened, truncated or
  replaced, so ``--json /dev/stdout >out.txt`` appends to what was already printed there.
  An fd that is not open, or open read-only, is an OutputError.
* A path that does not exist is created atomically: the data goes to a temp file in the same
  directory, made visible under its final name only at commit (``os.replace``). The temp file
  is anonymous (``O_TMPFILE``) while the run lasts and gets a name, ``.NAME.XXXXXXXX.tmp``,
  only for the instant between fsync and rename, so even a ``kill -9`` during the run leaves
  nothing behind; where the filesystem has no ``O_TMPFILE`` it is a named temp file from the
  start. It is created with mode ``0o666`` and the kernel applies the umask (and a default
  ACL of the directory, if any) exactly as for ``open(…, "w")``: the umask is never read or
  changed. Parent directory missing, not a directory, or not writable → OutputError.
* An existing regular file is replaced atomically (same temp-file dance in its directory),
  keeping its permission bits and its owner and group (``fchown`` of the temp file, before
  ``fchmod``, so setuid/setgid bits survive where the kernel allows them). It must be
  writable by us (opened ``O_WRONLY`` without truncation at ``open()``, like the shell's
  ``>``), even though the directory would let us replace it. It is written *in place*
  instead (same inode: the data is staged in an anonymous temp file during the run, then at
  commit the target's space is reserved with ``posix_fallocate``, the bytes copied over, the
  file truncated to length and fsynced) when:
  it has more than one hard link (so the other names see the new content), its owner or
  group cannot be kept (not root, somebody else's file: we never make it ours), its
  directory is not writable by us (we cannot create the temp file there), or it was reached
  through a magic link (``/proc/PID/fd/N`` of another process). In place is not atomic: a
  failure before the copy starts (ENOSPC while staging or reserving) leaves the file as it
  was; a failure during the copy (EIO) may leave it incomplete, and the message says so.
  Extended attributes and ACLs of a replaced file are not carried over (limitation).
* A symlink is followed to its target (our own resolution of the last component, at most
  40 hops, so that we know the path to replace), and the target is handled by its kind: a
  regular file target is replaced at the target's path, the link stays a link. A dangling
  symlink (we do not create its target) or a symlink loop → OutputError.
* A character device (``/dev/null``, a tty) or a FIFO is written through as a stream,
  opened at ``open()`` with ``O_WRONLY | O_NOCTTY | O_NONBLOCK`` (never ``O_CREAT`` or
  ``O_TRUNC``) so that a FIFO with no reader is refused at once (ENXIO) instead of hanging;
  ``O_NONBLOCK`` is then cleared. The opened file is checked (``fstat``) to be the very inode
  that was examined. Streams are buffered 64 KiB (written at once for fds 1 and 2, after
  flushing ``sys.stdout``/``sys.stderr``, to keep the order of what is printed).
* A directory, a socket, a block device (or anything else) → OutputError, e.g.
  ``--json /dev/sda is a block device; give a file name``.
* Any OSError while writing or committing (EPIPE, ENOSPC, EDQUOT, EIO …) → OutputWriteError
  with one line; the temp file is removed and the original target is untouched (see in
  place above). ``write()`` never raises it: the first failure is kept (temp file removed
  and descriptors closed at once, later writes dropped, ``error`` holds the line) and
  ``commit()`` raises it. So a failing output never aborts the run or costs another
  output; the caller reports it after the run, where it reports the others.
* At commit, just before the rename, the target path is looked at again: if something other
  than a regular file has appeared there during the run (a symlink, a FIFO, a device, a
  directory), nothing is replaced: OutputWriteError.
* The same target twice is refused by :func:`open_outputs` with one line naming both
  options: regular files, FIFOs, pipes and sockets are compared by ``(st_dev, st_ino)``
  after following symlinks (so a hard link or a symlink to the same file is the same
  target), new files by their directory's ``(st_dev, st_ino)`` and name, device nodes
  opened by path by their node's inode (``/dev/null`` twice is refused), terminals reached
  through a file descriptor by the descriptor number (``-`` and ``/dev/stdout`` are both
  fd 1; ``/dev/stdout`` and ``/dev/stderr`` on one terminal are two targets).

Nothing here ever replaces, truncates, chmods or chowns something that is not a regular
file (the temp files we create are regular files). Linux only (``/proc``, ``O_TMPFILE``);
stdlib only; no Qt.
"""

from __future__ import annotations

import errno
import fcntl
import os
import re
import secrets
import stat
import sys
import tempfile
from typing import TextIO

from .config import ConfigError

__all__ = ["Output", "OutputError", "OutputWriteError", "check_files", "identity", "open_outputs", "write_output"]

BUFFER_BYTES = 1 << 16
MAX_SYMLINK_HOPS = 40
_COPY_CHUNK = 1 << 20


class OutputError(ConfigError):
    """An output path that cannot be used, found before the run. One line for the user."""


class OutputWriteError(Exception):
    """Writing an output failed after the run (ENOSPC, EIO, the reader went away). One line."""


def _kind_name(mode: int) -> str:
    for test, name in (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISLNK, "a symlink"),
        (stat.S_ISREG, "a regular file"),
    ):
        if test(mode):
            return name
    return "a special file"


def _fd_number(path: str) -> int | None:
    """The file descriptor a path like /dev/stdout or /proc/self/fd/3 names, if it names one."""
    if not path.startswith("/"):
        return None
    norm = os.path.normpath(path)
    named = {"/dev/stdin": 0, "/dev/stdout": 1, "/dev/stderr": 2}
    if norm in named:
        return named[norm]
    m = re.fullmatch(rf"/dev/fd/(\d+)|/proc/(?:self|thread-self|{os.getpid()})/fd/(\d+)", norm)
    if m:
        return int(m.group(1) or m.group(2))
    return None


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError):
        if exc.errno == errno.EPIPE:
            return "the reader went away (broken pipe)"
        if exc.errno == errno.ENOSPC:
            return "no space left on device"
        if exc.errno == errno.EDQUOT:
            return "disk quota exceeded"
        if exc.strerror:
            return exc.strerror
    return str(exc) or type(exc).__name__


def _stdout_key() -> tuple:
    """What ``-`` stands for, in the terms of Output.key."""
    try:
        fd = sys.stdout.fileno()
        st = os.fstat(fd)
    except (OSError, ValueError, AttributeError):
        return ("stdout",)
    return ("fd", fd) if stat.S_ISCHR(st.st_mode) else (st.st_dev, st.st_ino)


class _Refused(Exception):
    """Commit-time refusal (the target changed kind during the run)."""


class StagedFile:
    """The next version of a regular file (``create``, ``replace``), staged beside it: a temp
    file in the target's directory, anonymous (``O_TMPFILE``) where the filesystem has it,
    else named ``.NAME.XXXXXXXX.tmp``; :meth:`publish` renames it onto the target.

    Everything goes through a descriptor of the directory, held from staging to publishing:
    a chdir or a renamed directory during the run cannot send the temp file or the rename
    elsewhere. Raises OSError; a failed constructor leaves nothing behind."""

    def __init__(self, d: str, base: str, mode: int, anonymous: bool):
        self.dir_fd = os.open(d, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        self.base = base
        self.tmp_base = base[:200]
        self.tmp_name: str | None = None  # a named temp file that exists in that directory
        self.dropped = False
        try:
            self.fd = self._make(mode, anonymous)
        except BaseException:
            os.close(self.dir_fd)
            raise

    def _make(self, mode: int, anonymous: bool) -> int:
        if anonymous and hasattr(os, "O_TMPFILE") and os.path.isdir("/proc/self/fd"):
            try:
                return os.open(".", os.O_TMPFILE | os.O_WRONLY | os.O_CLOEXEC, mode, dir_fd=self.dir_fd)
            except OSError as exc:
                if exc.errno not in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL):
                    raise
        self.tmp_name, fd = self._named(
            lambda name: os.open(
                name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=self.dir_fd
            )
        )
        return fd

    def _named(self, make):
        """Call make(name) with fresh names ``.NAME.XXXXXXXX.tmp`` until one is free."""
        for _ in range(100):
            name = f".{self.tmp_base}.{secrets.token_hex(4)}.tmp"
            try:
                return name, make(name)
            except FileExistsError:
                continue
        raise FileExistsError(errno.EEXIST, "no free temp file name")

    def publish(self, target: str) -> None:
        """fsync, then rename onto ``target`` (its name in the directory); refused
        (:class:`_Refused`) if something other than a regular file is there now."""
        os.fsync(self.fd)
        dfd = self.dir_fd
        try:
            now = os.lstat(self.base, dir_fd=dfd)
        except FileNotFoundError:
            now = None
        if now is not None and not stat.S_ISREG(now.st_mode):
            raise _Refused(f"{target} became {_kind_name(now.st_mode)} during the run; it was left alone")
        if self.tmp_name is None:  # anonymous O_TMPFILE: give it a name for the rename
            # (a dst_dir_fd makes os.link use linkat(AT_SYMLINK_FOLLOW), which links the open
            # file /proc/self/fd/N stands for, not the magic link itself)
            self.tmp_name, _ = self._named(
                lambda name: os.link(f"/proc/self/fd/{self.fd}", name, dst_dir_fd=dfd, follow_symlinks=True)
            )
        os.replace(self.tmp_name, self.base, src_dir_fd=dfd, dst_dir_fd=dfd)
        self.tmp_name = None
        try:  # best effort: make the rename itself durable
            rfd = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=dfd)
            try:
                os.fsync(rfd)
            finally:
                os.close(rfd)
        except OSError:
            pass

    def drop(self) -> None:
        """Remove the temp file (if it has a name) and close it and the directory, once.
        Never raises."""
        if self.dropped:
            return
        self.dropped = True
        if self.tmp_name is not None:
            try:
                os.unlink(self.tmp_name, dir_fd=self.dir_fd)
            except OSError:
                pass
            self.tmp_name = None
        for fd in (self.fd, self.dir_fd):
            try:
                os.close(fd)
            except OSError:
                pass


class InPlaceCopy:
    """A regular file written in place (same inode): the bytes are staged in an anonymous
    temp file (beside the target, else in the temp directory) during the run, and
    :meth:`copy` puts them over the target's at commit. Takes ``target_fd`` (opened
    O_WRONLY) and closes it; raises OSError when there is no room for the staging file."""

    def __init__(self, target: str, target_fd: int):
        self.target_fd = target_fd
        self.touched = False  # the target's bytes have been changed
        self.closed = False
        for where in (os.path.dirname(target) or ".", None):
            try:
                self.stage = tempfile.TemporaryFile(dir=where, buffering=0)
                break
            except OSError:
                continue
        else:
            os.close(target_fd)
            raise OSError(errno.ENOSPC, "no room for a staging file")
        self.fd = self.stage.fileno()

    def copy(self) -> None:
        """Reserve the space, copy the staged bytes over the target's, truncate, fsync."""
        src, dst = self.fd, self.target_fd
        size = os.fstat(src).st_size
        if size:
            old = os.fstat(dst).st_size
            try:
                os.posix_fallocate(dst, 0, size)
            except OSError as exc:
                if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS, errno.ENODEV):
                    if os.fstat(dst).st_size != old:
                        os.ftruncate(dst, old)
                    raise
        self.touched = True
        off = 0
        while off < size:
            chunk = os.pread(src, min(_COPY_CHUNK, size - off), off)
            if not chunk:
                break
            view = memoryview(chunk)
            while view:
                n = os.pwrite(dst, view, off)
                view, off = view[n:], off + n
        os.ftruncate(dst, size)
        os.fsync(dst)

    def close(self) -> None:
        """Close the staging file and the target (once). Never raises."""
        if self.closed:
            return
        self.closed = True
        for close in (self.stage.close, lambda: os.close(self.target_fd)):
            try:
                close()
            except OSError:
                pass


class Output:
    """One file the user asked for. Checked and opened before the run; committed after.

    ``kind`` is ``"stdout"`` (``-``), ``"stream"`` (a device, a FIFO, an fd) or ``"file"``
    (a regular file, new or existing); ``how`` is ``"stdout"``, ``"stream"``, ``"create"``,
    ``"replace"`` or ``"in place"``; ``target`` is the path that will be written (symlinks
    followed) for files, else None; ``to_stdout`` says whether it ends up where ``print``
    writes (``-``, ``/dev/stdout``, ``/proc/self/fd/1``, the pipe or file stdout is), so that
    the caller can print its own lines to stderr instead.
    """

    #: use an anonymous O_TMPFILE temp file where the filesystem has it (tests turn it off
    #: to exercise the named temp file that other filesystems get)
    use_tmpfile = True

    def __init__(self, path: str | os.PathLike, what: str):
        self.path = path
        self.what = what
        self.name = os.fspath(path)
        self.kind: str | None = None
        self.how: str | None = None
        self.target: str | None = None
        self.key: tuple | None = None
        self.to_stdout = False  # after open(): it ends up where print() writes
        self._state = "new"  # new, open, committed, discarded, failed
        self._fd: int | None = None  # where write() goes: a stream, a staged or in-place file
        self._stream_fd: int | None = None  # a stream's own descriptor (a dup, or the device opened)
        self._staged: StagedFile | None = None  # create, replace
        self._in_place: InPlaceCopy | None = None  # in place
        self._sync_with: TextIO | None = None  # sys.stdout / sys.stderr for fds 1 and 2
        self._buf = bytearray()
        self._error = ""
        self._cause: BaseException | None = None

    def __repr__(self) -> str:
        return f"Output({self.name!r}, {self.what!r}, kind={self.kind!r}, how={self.how!r}, state={self._state!r})"

    # ------------------------------------------------------------------ open

    def open(self) -> Output:
        """Check the path and prepare the output; raises OutputError with one line."""
        if self._state != "new":
            raise RuntimeError(f"{self!r} was already opened")
        try:
            self._open()
        except BaseException:
            self._release()
            self._state = "discarded"
            raise
        self._state = "open"
        self.to_stdout = self.key == _stdout_key()
        return self

    def _refuse(self, tail: str) -> OutputError:
        return OutputError(f"{self.what} {self.name}{tail}")

    def _os_refusal(self, exc: OSError, doing: str = "") -> OutputError:
        e = exc.errno
        if e == errno.ELOOP:
            return self._refuse(": too many levels of symlinks (a symlink loop)")
        if e == errno.ENOTDIR:
            return self._refuse(": a part of the path is not a directory")
        if e == errno.ENAMETOOLONG:
            return self._refuse(": the name is too long")
        if e in (errno.EACCES, errno.EPERM):
            return self._refuse(f"{doing or ' cannot be written'}: permission denied")
        return self._refuse(f"{doing or ''}: {_reason(exc)}")

    def _open(self) -> None:
        if self.name == "-":
            return self._open_stdout()
        if not self.name:
            raise self._refuse(": empty file name; give a file name")
        p, prev, hops = self.name, None, 0
        while True:
            n = _fd_number(p)
            if n is not None:
                return self._open_fd(n)
            try:
                st = os.lstat(p)
            except FileNotFoundError:
                if prev is None:
                    return self._open_new(p)
                try:  # a link only the kernel can follow (/proc/PID/fd/N of another process)?
                    st = os.stat(prev)
                except OSError:
                    raise self._refuse(
                        f" is a dangling symlink (to {os.readlink(prev)}, which does not exist); give a file name"
                    ) from None
                return self._open_existing(prev, st, magic=True)
            except OSError as exc:
                raise self._os_refusal(exc) from None
            if not stat.S_ISLNK(st.st_mode):
                return self._open_existing(p, st, magic=False)
            hops += 1
            if hops > MAX_SYMLINK_HOPS:
                raise self._refuse(" is a symlink loop (more than 40 links); give a file name")
            try:
                link = os.readlink(p)
            except OSError as exc:
                raise self._os_refusal(exc) from None
            prev, p = p, os.path.join(os.path.dirname(p), link)

    def _open_stdout(self) -> None:
        if sys.stdout is None:
            raise self._refuse(": there is no standard output")
        self.kind = self.how = "stdout"
        self.key = _stdout_key()

    def _open_fd(self, n: int) -> None:
        try:
            fd = fcntl.fcntl(n, fcntl.F_DUPFD_CLOEXEC, 3)
        except OSError as exc:
            if exc.errno == errno.EBADF:
                raise self._refuse(f": file descriptor {n} is not open") from None
            raise self._os_refusal(exc) from None
        self._fd = self._stream_fd = fd
        flags = fcntl.fcntl(fd, fcntl.F_GETFL)
        if flags & getattr(os, "O_PATH", 0) or flags & os.O_ACCMODE == os.O_RDONLY:
            raise self._refuse(f": file descriptor {n} is not open for writing")
        st = os.fstat(fd)
        self.kind = self.how = "stream"
        self.key = ("fd", n) if stat.S_ISCHR(st.st_mode) else (st.st_dev, st.st_ino)
        self._sync_with = {1: sys.stdout, 2: sys.stderr}.get(n)

    def _open_new(self, p: str) -> None:
        d, base = os.path.split(p)
        if not base:
            raise self._refuse(" names a directory; give a file name")
        d = d or "."
        try:
            dst = os.stat(d)
        except FileNotFoundError:
            raise self._refuse(f": directory {d} does not exist") from None
        except OSError as exc:
            raise self._os_refusal(exc) from None
        if not stat.S_ISDIR(dst.st_mode):
            raise self._refuse(f": {d} is not a directory")
        self.kind, self.how, self.target = "file", "create", p
        self.key = ("new", dst.st_dev, dst.st_ino, base)
        try:
            self._stage(d, base, 0o666)
        except OSError as exc:
            raise self._os_refusal(exc, f": cannot create a file in {d}") from None

    def _open_existing(self, p: str, st: os.stat_result, magic: bool) -> None:
        mode = st.st_mode
        if not (stat.S_ISREG(mode) or stat.S_ISCHR(mode) or stat.S_ISFIFO(mode)):
            raise self._refuse(f" is {_kind_name(mode)}; give a file name")
        fd = self._open_wronly(p, st, follow=magic)
        self.key = (st.st_dev, st.st_ino)
        if not stat.S_ISREG(mode):
            self.kind = self.how = "stream"
            self._fd = self._stream_fd = fd
            return
        self.kind, self.target = "file", p
        if st.st_nlink > 1 or magic:
            return self._stage_in_place(p, fd)
        d, base = os.path.split(p)
        try:
            tmp = self._stage(d or ".", base, 0o600)
            tst = os.fstat(tmp)
            if (tst.st_uid, tst.st_gid) != (st.st_uid, st.st_gid):
                os.fchown(tmp, st.st_uid, st.st_gid)
            os.fchmod(tmp, stat.S_IMODE(mode))
        except PermissionError:  # directory not writable, or the owner cannot be kept
            self._drop_staged()
            return self._stage_in_place(p, fd)
        except OSError as exc:
            self._drop_staged()
            os.close(fd)
            raise self._os_refusal(exc, f": cannot create a file in {d or '.'}") from None
        os.close(fd)
        self.how = "replace"

    def _open_wronly(self, p: str, st: os.stat_result, follow: bool) -> int:
        flags = os.O_WRONLY | os.O_NOCTTY | os.O_CLOEXEC | os.O_NONBLOCK | (0 if follow else os.O_NOFOLLOW)
        try:
            fd = os.open(p, flags)
        except OSError as exc:
            if exc.errno == errno.ENXIO and stat.S_ISFIFO(st.st_mode):
                raise self._refuse(" is a FIFO with no reader; start the reader first") from None
            if exc.errno == errno.ENXIO:
                raise self._refuse(" is a device with nothing behind it") from None
            if exc.errno in (errno.ELOOP, errno.ENOENT):
                raise self._refuse(" changed while it was being opened; try again") from None
            if exc.errno == errno.ETXTBSY:
                raise self._refuse(" is a running program") from None
            raise self._os_refusal(exc) from None
        fst = os.fstat(fd)
        if (fst.st_dev, fst.st_ino, stat.S_IFMT(fst.st_mode)) != (st.st_dev, st.st_ino, stat.S_IFMT(st.st_mode)):
            os.close(fd)
            raise self._refuse(" changed while it was being opened; try again")
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
        return fd

    def _stage(self, d: str, base: str, mode: int) -> int:
        """Stage the file beside its target; its descriptor (where write() goes)."""
        self._staged = StagedFile(d, base, mode, self.use_tmpfile)
        self._fd = self._staged.fd
        return self._fd

    def _drop_staged(self) -> None:
        if self._staged is not None:
            self._staged.drop()
            self._staged = self._fd = None

    def _stage_in_place(self, p: str, target_fd: int) -> None:
        self.how = "in place"
        try:
            self._in_place = InPlaceCopy(p, target_fd)
        except OSError:
            raise self._refuse(": no room for a staging file") from None
        self._fd = self._in_place.fd

    # ------------------------------------------------------------------ write

    @property
    def error(self) -> str | None:
        """The one-line message of the first write failure, once there has been one."""
        return self._error if self._state == "failed" else None

    def write(self, data: str | bytes) -> None:
        """Append data (str is UTF-8). May be called many times.

        A failure does not raise here: it is kept (the temp file removed and the descriptors
        closed at once, later writes dropped) and :meth:`commit` raises it as OutputWriteError.
        """
        if self._state == "failed":
            return
        if self._state != "open":
            raise RuntimeError(f"{self!r} is not open")
        b = data.encode("utf-8") if isinstance(data, str) else data
        if self.kind == "stdout":
            return self._write_stdout(data)
        if self._sync_with is not None:
            try:
                self._sync_with.flush()
            except (OSError, ValueError):
                pass
            return self._write_through(b)
        self._buf += b
        if len(self._buf) >= BUFFER_BYTES:
            self._drain()

    def _write_through(self, b) -> None:
        try:
            view = memoryview(b)
            while view:
                view = view[os.write(self._fd, view) :]
        except OSError as exc:
            self._failed(exc)

    def _drain(self) -> None:
        if self._buf:
            data, self._buf = self._buf, bytearray()
            self._write_through(data)

    def _write_stdout(self, data) -> None:
        out = sys.stdout
        try:
            if isinstance(data, str):
                out.write(data)
            else:
                buf = getattr(out, "buffer", None)
                if buf is None:
                    out.write(bytes(data).decode("utf-8", "replace"))
                else:
                    out.flush()
                    buf.write(data)
        except OSError as exc:
            self._failed(exc)

    # ------------------------------------------------------------------ commit / discard

    def commit(self) -> None:
        """Make the output final: a file is fsynced and renamed onto its target (or copied in
        place), a stream flushed. Raises OutputWriteError (also for an earlier write failure),
        and then again on every later call; never leaves a temp file behind."""
        if self._state == "committed":
            return
        if self._state not in ("open", "failed"):
            raise RuntimeError(f"{self!r} is not open")
        if self._state == "open":
            try:
                if self.kind == "stdout":
                    sys.stdout.flush()
                else:
                    self._drain()
                    if self._state == "open" and self._in_place is not None:
                        self._in_place.copy()
                    elif self._state == "open" and self._staged is not None:
                        self._staged.publish(self.name if self.target is None else self.target)
            except (OSError, _Refused) as exc:
                self._failed(exc)
            except BaseException:
                self.discard()
                raise
        if self._state == "failed":
            raise OutputWriteError(self._error) from self._cause
        self._release()
        self._state = "committed"

    def discard(self) -> None:
        """Drop what was written to a file (interrupt, failure); close a stream. Idempotent."""
        if self._state in ("committed", "discarded", "failed"):
            return
        self._release()
        self._state = "discarded"

    def _release(self) -> None:
        """Close every descriptor we opened and remove a named temp file. Never raises."""
        self._buf = bytearray()
        if self._in_place is not None:
            self._in_place.close()
        self._drop_staged()
        if self._stream_fd is not None:
            try:
                os.close(self._stream_fd)
            except OSError:
                pass
            self._stream_fd = None
        self._fd = None

    def _failed(self, exc: BaseException) -> None:
        """Keep the first failure for commit(); free the temp file and descriptors now."""
        self._release()
        self._state, self._cause = "failed", exc
        if isinstance(exc, _Refused):
            tail, reason = "", str(exc)
        else:
            reason = _reason(exc)
            if self.how == "create":
                tail = f"; {self.target} was not created"
            elif self.how == "replace" or (self._in_place is not None and not self._in_place.touched):
                tail = f"; {self.target} was left as it was"
            elif self.how == "in place":
                tail = f"; {self.target} may be incomplete"
            else:
                tail = ""
        self._error = f"{self.what} {self.name}: could not write: {reason}{tail}"

    # ------------------------------------------------------------------ context manager

    def __enter__(self) -> Output:
        if self._state == "new":
            self.open()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.discard()

    def __del__(self):
        try:
            if self._state == "open":
                self.discard()
        except Exception:
            pass


def open_outputs(items) -> list[Output | None]:
    """Open every ``(path, what)`` (a None path gives None, in place); refuse one target twice.

    On any error every output already opened is discarded and the OutputError raised.
    """
    outs: list[Output | None] = []
    seen: dict[tuple, Output] = {}
    try:
        for path, what in items:
            if path is None:
                outs.append(None)
                continue
            out = Output(path, what).open()
            outs.append(out)
            first = seen.get(out.key)
            if first is not None:
                if first.name == out.name:
                    shown = "standard output (-)" if out.name == "-" else out.name
                    raise OutputError(f"{first.what} and {out.what} both name {shown}; give each its own file")
                raise OutputError(
                    f"{first.what} {first.name} and {out.what} {out.name} are the same file; give each its own file"
                )
            seen[out.key] = out
    except BaseException:
        for out in outs:
            if out is not None:
                out.discard()
        raise
    return outs


def write_output(path: str | os.PathLike, what: str, data: str | bytes) -> None:
    """Open, write and commit in one go (OutputError before writing, OutputWriteError after)."""
    with Output(path, what) as out:
        out.write(data)


# ------------------------------------------------------------------ inputs against outputs


def identity(path: str | os.PathLike, reading: bool = False) -> tuple | None:
    """What ``path`` names, in the terms of :attr:`Output.key`, found without opening or
    creating anything: ``(st_dev, st_ino)`` of what it resolves to (symlinks and hard links
    give the same), ``("fd", N)`` for a terminal reached through descriptor N (``-`` is fd 1
    written, fd 0 read), ``("new", dir's st_dev, dir's st_ino, name)`` for a file to be
    created. None: nothing to compare (an input that is not there, a descriptor not open —
    the command refuses those itself)."""
    name = os.fspath(path)
    if name == "-":
        if not reading:
            return _stdout_key()
        name = "/dev/stdin"
    n = _fd_number(name)
    if n is not None:
        try:
            st = os.fstat(n)
        except OSError:
            return None
        return ("fd", n) if stat.S_ISCHR(st.st_mode) else (st.st_dev, st.st_ino)
    try:
        st = os.stat(name)
    except (OSError, ValueError):
        if reading:
            return None
        real = os.path.realpath(name)  # a dangling symlink: where it points (refused later)
        d, base = os.path.split(real)
        try:
            dst = os.stat(d or ".")
        except OSError:
            return None
        return ("new", dst.st_dev, dst.st_ino, base)
    return (st.st_dev, st.st_ino)


def _inside(path: str, folder: str) -> bool:
    real = (
        os.path.realpath(path)
        if os.path.exists(path)
        else os.path.join(os.path.realpath(os.path.dirname(path) or "."), os.path.basename(path))
    )
    return os.path.commonpath([real, os.path.realpath(folder)]) == os.path.realpath(folder)


def check_files(reads=(), writes=(), folders=()) -> None:
    """The one check of what a command reads and writes, made before anything is opened,
    created or printed: no output (``writes``: ``(path, what)``) may be an input (``reads``),
    another output, or inside a folder the command fills (``folders``, e.g. ``--run-dir``).
    Compared by :func:`identity`: after links, ``-``, ``/dev/stdout`` and ``/proc/self/fd/N``
    resolved. Raises OutputError (one line; exit status 2)."""

    def shown(path, what):
        p = os.fspath(path)
        return f"{what} (standard output)" if p == "-" else f"{what} {p}"

    inputs = [(identity(p, reading=True), p, what) for p, what in reads if p is not None]
    seen: dict[tuple, tuple] = {}
    for path, what in writes:
        if path is None:
            continue
        key = identity(path)
        for ikey, ipath, iwhat in inputs:
            if key is not None and key == ikey:
                raise OutputError(
                    f"{shown(path, what)} is the input {os.fspath(ipath)} ({iwhat}): writing it would destroy it; "
                    "give another file name"
                )
        if key is not None and key in seen:
            fpath, fwhat = seen[key]
            if os.fspath(fpath) == os.fspath(path):
                both = "standard output (-)" if os.fspath(path) == "-" else os.fspath(path)
                raise OutputError(f"{fwhat} and {what} both name {both}; give each its own file")
            raise OutputError(
                f"{shown(fpath, fwhat)} and {shown(path, what)} are the same file; give each its own file"
            )
        if key is not None:
            seen[key] = (path, what)
        for folder, fwhat in folders:
            if (
                folder is not None
                and os.fspath(path) != "-"
                and _fd_number(os.fspath(path)) is None
                and _inside(os.fspath(path), os.fspath(folder))
            ):
                raise OutputError(f"{shown(path, what)} is inside {fwhat} {os.fspath(folder)}; give a file elsewhere")
