"""The history: one JSON line per operation or fault event (DESIGN.md §4).

The lab appends each record with one ``os.write`` as the operation completes, before
the client takes its next operation. A SIGKILL cannot take back what ``write`` has
handed to the kernel, so every acknowledged operation that a client saw is in the
history, even when the lab is killed the next instant. The observer tails the files;
this is the telemetry stream of operations (gauges travel on the lab's pipe).

Record fields: ``id`` ("wb#12": lane code and sequence number), ``lane`` (strategy),
``kind`` (read | write, or a fault event kind), ``key``, ``version`` (written, or
returned by a read; null for a read that found nothing), ``start`` and ``end``
(seconds since run start, monotonic clock), ``outcome`` (hit | miss | ok | error |
rejected), ``acked`` (the client got a success reply: a write acknowledged, a read
answered), and ``inc`` (which incarnation of the lab ran it). Errors carry ``detail``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterable

OP_KINDS = ("read", "write")
FAULT_KINDS = ("crash", "restart", "outage-start", "outage-end", "lab-died", "drain")
OUTCOMES = ("hit", "miss", "ok", "error", "rejected")


def op_line(code, seq, lane, kind, key, version, start, end, outcome, acked, inc, detail=None) -> str:
    """Format one operation record. Hand-written JSON: this runs once per operation."""
    v = "null" if version is None else version
    tail = "" if detail is None else f',"detail":{json.dumps(detail)}'
    return (
        f'{{"id":"{code}#{seq}","lane":"{lane}","kind":"{kind}","key":"{key}","version":{v},'
        f'"start":{start:.9f},"end":{end:.9f},"outcome":"{outcome}",'
        f'"acked":{"true" if acked else "false"},"inc":{inc}{tail}}}\n'
    )


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

    def __init__(self, path: Path):
        self.path = Path(path)
        self.offset = 0
        self._partial = b""
        self.raw = b""  # the complete lines of the last read_new, as written (for a recording)

    def read_new(self) -> list[dict]:
        try:
            with open(self.path, "rb") as fh:
                fh.seek(self.offset)
                chunk = fh.read()
        except FileNotFoundError:
            return []
        self.raw = b""
        if not chunk:
            return []
        self.offset += len(chunk)
        data = self._partial + chunk
        cut = data.rfind(b"\n") + 1
        self._partial = data[cut:]
        self.raw = data[:cut]
        if not cut:
            return []
        # One json.loads for the whole chunk is several times faster than one per line.
        return json.loads(b"[" + data[: cut - 1].replace(b"\n", b",") + b"]")


def read_history(path: Path) -> list[dict]:
    """Every record of a JSON Lines history file: its complete lines. A last line without
    its newline is a record a killed lab was writing: a SIGKILL can cut a write(2) short
    where it crosses a page (seen: a file ending in a lone "{"); that operation was never
    acknowledged (a record is written before its acknowledgement), so it is not read."""
    with open(path, "rb") as fh:
        return [json.loads(line) for line in fh if line.endswith(b"\n") and line.strip()]


def write_history(out, records: Iterable[dict]) -> None:
    """Write records as JSON Lines to ``out``: a path, or a text stream with ``write``."""
    if hasattr(out, "write"):
        for rec in records:
            out.write(json.dumps(rec, separators=(",", ":")) + "\n")
        return
    with open(out, "w", encoding="utf-8") as fh:
        write_history(fh, records)
