"""The history: one JSON line per operation or fault event (DESIGN.md §4).

The lab appends each record as the operation completes, before the client takes its
next operation: copied into a shared memory map of the file (:class:`MappedHistoryWriter`;
one ``os.write`` each before issue 15). A SIGKILL cannot take back what is in the kernel's
page cache, so every acknowledged operation that a client saw is in the history, even when
the lab is killed the next instant. The observer tails the files;
this is the telemetry stream of operations (gauges travel on the lab's pipe).

Record fields: ``id`` ("wb#12": lane code and sequence number), ``lane`` (strategy),
``kind`` (read | write, or a fault event kind), ``key``, ``version`` (written, or
returned by a read; null for a read that found nothing), ``start`` and ``end``
(seconds since run start, monotonic clock), ``outcome`` (hit | miss | ok | error |
rejected | indeterminate), ``acked`` (the client got a success reply: a write
acknowledged, a read answered), and ``inc`` (which incarnation of the lab ran it). Errors
carry ``detail``. ``indeterminate``: a write that reported an error after the step that
applies it (DESIGN.md §4; :mod:`strategies`): never acknowledged, never a failed write.
"""

from __future__ import annotations

import json
import mmap
import os
import threading
from collections.abc import Iterable
from pathlib import Path

#: A write that reported an error after the step that applies it: it may have applied.
INDETERMINATE = "indeterminate"
OUTCOMES = ("hit", "miss", "ok", "error", "rejected", INDETERMINATE)


def op_line(code, seq, lane, kind, key, version, start, end, outcome, acked, inc, detail=None, node=None) -> str:
    """Format one operation record. Hand-written JSON: this runs once per operation.
    ``node``: the app node of a lane with several (left out with one)."""
    v = "null" if version is None else version
    tail = "" if detail is None else f',"detail":{json.dumps(detail)}'
    if node is not None:
        tail += f',"node":{node}'
    return (
        f'{{"id":"{code}#{seq}","lane":"{lane}","kind":"{kind}","key":"{key}","version":{v},'
        f'"start":{start:.9f},"end":{end:.9f},"outcome":"{outcome}",'
        f'"acked":{"true" if acked else "false"},"inc":{inc}{tail}}}\n'
    )


class MappedHistoryWriter:
    """Appends lines to a file through a shared memory map: one copy into the page cache
    per record, no system call (issue 15). A SIGKILL of the writer cannot take back a copy
    that is done — the bytes are in the kernel's page cache, as a ``write(2)``'s are — so a
    record copied before its acknowledgement is in the file, whatever happens next.

    The file grows by what it holds already (from ``FIRST`` bytes, by at most ``CHUNK``: a
    short lab keeps a small file, a long one grows a few times a minute), allocated first
    (``posix_fallocate``: a full disk is an ``OSError`` here, never a SIGBUS on a page of
    the map). Beyond the last
    record the file holds zeros; a record is complete when it ends in a newline and holds
    no zero byte (JSON text never does), whatever order the copy's bytes become visible in.
    ``close`` cuts the zeros off; after a kill the runner does (:func:`trim_history`)."""

    FIRST = 256 << 10
    CHUNK = 4 << 20

    def __init__(self, path: Path):
        self._lock = threading.Lock()
        self.fd = os.open(str(path), os.O_RDWR | os.O_CREAT, 0o666)  # umask applies
        try:
            size = os.fstat(self.fd).st_size
            self.pos = _data_end(self.fd, size)
            self.cap = 0
            self.mm: mmap.mmap | None = None
            self._grow(self.pos + 1)
        except BaseException:
            os.close(self.fd)
            self.fd = -1
            raise

    def _grow(self, need: int) -> None:
        step = min(max(self.cap, self.FIRST), self.CHUNK)
        cap = max(need, self.cap) + step
        cap -= cap % mmap.PAGESIZE
        os.posix_fallocate(self.fd, self.cap, cap - self.cap)  # ENOSPC now, not SIGBUS later
        if self.mm is None:
            self.mm = mmap.mmap(self.fd, cap)
        else:
            self.mm.resize(cap)
        self.cap = cap

    def write(self, line: str) -> None:
        """Append one record; safe from several client threads (a lock: ``os.write`` with
        ``O_APPEND`` was atomic by itself, a place in the map is taken under the lock)."""
        data = line.encode()
        with self._lock:
            start = self.pos
            end = start + len(data)
            if end > self.cap:
                self._grow(end)
            self.mm[start:end] = data
            self.pos = end

    def close(self) -> None:
        if self.fd >= 0:
            try:
                if self.mm is not None:
                    self.mm.close()
                os.ftruncate(self.fd, self.pos)
            finally:
                os.close(self.fd)
                self.fd = -1


def _data_end(fd: int, size: int) -> int:
    """Where a history file's records end: its size, or its first zero byte (a mapped
    writer's unused room)."""
    offset = 0
    while offset < size:
        chunk = os.pread(fd, 1 << 20, offset)
        if not chunk:
            break
        zero = chunk.find(b"\0")
        if zero >= 0:
            return offset + zero
        offset += len(chunk)
    return size


def trim_history(path: Path) -> None:
    """Cut the zeros a killed mapped writer left after its records (its process is dead:
    nobody writes the file any more). A record it was copying when killed stays cut short,
    as a killed ``write(2)`` leaves it: readers skip a last line without its newline."""
    try:
        fd = os.open(str(path), os.O_RDWR)
    except FileNotFoundError:
        return
    try:
        size = os.fstat(fd).st_size
        end = _data_end(fd, size)
        if end < size:
            os.ftruncate(fd, end)
    finally:
        os.close(fd)


class HistoryWriter:
    """Appends lines to a file with one ``write`` system call each (crash-safe)."""

    def __init__(self, path: Path):
        self.fd = os.open(str(path), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o666)  # umask applies

    def write(self, line: str) -> None:
        os.write(self.fd, line.encode())

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class HistoryTail:
    """Reads the complete lines appended to a file since the last call."""

    READ = 1 << 20

    def __init__(self, path: Path):
        self.path = Path(path)
        self.offset = 0  # the start of the first line not read yet
        self.raw = b""  # the complete lines of the last read_new, as written (for a recording)
        self.more = False  # the last read_new stopped at its limit with lines left

    def read_new(self, limit: int | None = None) -> list[dict]:
        """The lines completed since the last call. A mapped writer's file holds zeros
        beyond its records: reading stops at the first zero, and a line is complete when it
        ends in a newline before it (a line being copied is read again next time).
        ``limit``: read at most about that many bytes (whole lines; :attr:`more` says whether
        some are left), so that a caller can do other things between slices."""
        parts = []
        size = self.READ if limit is None else min(self.READ, max(limit, 1))
        self.more = False
        try:
            with open(self.path, "rb") as fh:
                fh.seek(self.offset)
                got = 0
                while True:
                    chunk = fh.read(size)
                    zero = chunk.find(b"\0")
                    if zero >= 0:
                        parts.append(chunk[:zero])
                        break
                    parts.append(chunk)
                    got += len(chunk)
                    if len(chunk) < size:
                        break
                    if limit is not None and got >= limit and b"\n" in chunk:
                        self.more = True  # a whole line at least, and more behind it
                        break
        except FileNotFoundError:
            return []
        self.raw = b""
        data = b"".join(parts)
        cut = data.rfind(b"\n") + 1
        if not cut:
            return []
        self.offset += cut
        self.raw = data[:cut]
        # One json.loads for the whole chunk is several times faster than one per line.
        return json.loads(b"[" + data[: cut - 1].replace(b"\n", b",") + b"]")


def read_history(path: Path) -> list[dict]:
    """Every record of a JSON Lines history file: its complete lines. A last line without
    its newline is a record a killed lab was writing: a SIGKILL can cut a write(2) short
    where it crosses a page (seen: a file ending in a lone "{"); that operation was never
    acknowledged (a record is written before its acknowledgement), so it is not read."""
    with open(path, "rb") as fh:
        return [json.loads(line) for line in fh if line.endswith(b"\n") and line.strip() and b"\0" not in line]


def write_history(out, records: Iterable[dict]) -> None:
    """Write records as JSON Lines to ``out``: a path, or a text stream with ``write``."""
    if hasattr(out, "write"):
        for rec in records:
            out.write(json.dumps(rec, separators=(",", ":")) + "\n")
        return
    with open(out, "w", encoding="utf-8") as fh:
        write_history(fh, records)
