"""Recordings: one file that holds a whole run, written as the run goes.

A recording is a gzip stream of JSON lines (``zcat run.csrec | head`` shows it):

* line 1, the header: ``{"type": "header", "format": "cachestudio-recording", "version": 2,
  "app", "created", "machine", "scenario", "title", "description", "plan", "lanes"}``
  (``lanes``: every lane's knobs, as ``dataclasses.asdict(LaneConfig)``);
* the history records, verbatim as the labs wrote them (DESIGN.md §4; they have no
  ``type``);
* ``{"type": "event", ...}``: the fault and knob events (the same records as the history's);
* ``{"type": "tick", "t", "paused", "outage_on", "slow_db_ms", "slow_cache_ms", "lanes":
  [{"state", "health", "inc", "totals", "queue_depth", "max_depth", "burst"}]}`` every
  ``TICK_S`` of lab time: what the labs' gauges said (the history does not carry them); a
  lane of several app nodes adds ``"nodes": [{"db_reads", "db_writes", "queue_depth"}]``,
  one per node (the charts' lines per node);
* ``{"type": "anomalies", "lane": i, "t", "items": [Anomaly.as_dict()]}``: the auditor's
  verdicts as it reached them (at the kill of a node, at the end-of-run audit …);
* at the end, ``{"type": "final", ...}``: what only the end of a run knows (status,
  drained queues, incarnations, failures, the knobs as they ended), then ``{"type": "end"}``.

It is compressed with zlib level 1 (measured here on a three-lane run: 26 MB per million
operations, against 156 MB as JSON Lines, at 0.84 million records per CPU-second), one
gzip member per flush (every ``FLUSH_S`` of wall time; ``zcat`` reads the members as one
stream), so a writer killed halfway leaves a file that reads up to its last flush, and a
damaged byte costs one member: :func:`read_recording` drops that member, goes on at the
next, and says how much it skipped and where the file ends early (older files, one
member flushed with ``Z_SYNC_FLUSH``, read up to their damage). Everything read is
bounded (``MAX_LINE``, the inflation ratio, ``MAX_DEPTH``, ``MAX_LANES``, ``MAX_EVENTS``,
times finite and within the plan). A file that is not a recording, or one written by a
newer format, is refused in one line (:class:`RecordingError`).

The replay needs no lab: :func:`replay_summary` rebuilds, from the recording alone, the
summary that the live run printed (DESIGN.md §6), recomputing every figure the history
gives (operations, latencies, hit ratios, what each fault did) and taking from the
recording what only the labs knew (DB counters, queue depths) and what the auditor
decided (its verdicts need the store files, which a recording does not carry).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import json
import math
import os
import platform
import stat
import time
import zlib

from .config import MAX_DURATION_S, MAX_LANES, SECTIONS, ConfigError, LaneConfig, validate
from .faultkinds import FIELDS

FORMAT = "cachestudio-recording"
VERSION = 2  # 2: one gzip member per flush (1: one member; still read)
SUFFIX = ".csrec"
FLUSH_S = 0.5  # a killed writer loses at most this much of the run
TICK_S = 0.25  # lab time between two tick lines (the charts' bin width)
LEVEL = 1
_CHUNK = 1 << 20


class RecordingError(ConfigError):
    """A file that cannot be read as a recording; the message is one line (exit 2)."""


# -- writing --------------------------------------------------------------------------


def machine_info() -> dict:
    return {
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
    }


def app_version() -> str:
    from .. import __version__

    return f"cachestudio {__version__}"


def plan_header(plan, scenario=None) -> dict:
    """The header's description of a run: its plan, its lanes' knobs, the scenario."""
    return {
        "type": "header",
        "format": FORMAT,
        "version": VERSION,
        "app": app_version(),
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": machine_info(),
        "scenario": getattr(scenario, "name", None),
        "title": getattr(scenario, "title", None),
        "description": getattr(scenario, "description", None),
        "plan": {
            "duration_s": plan.duration_s,
            "seed": plan.seed,
            "restart_delay_s": plan.restart_delay_s,
            # every fault kind's timeline field (faultkinds.FIELDS); an entry with parameters as a list
            **{f: [list(x) if isinstance(x, tuple) else x for x in getattr(plan, f)] for f in FIELDS},
        },
        "lanes": [dataclasses.asdict(cfg) for cfg in plan.lanes],
    }


def lane_config(d: dict) -> LaneConfig:
    """A lane's knobs from a header (unknown knobs, from a later version, are left out)."""
    kw = {}
    for section in SECTIONS:
        cls = SECTIONS[section]
        fields = {f.name for f in dataclasses.fields(cls)}
        kw[section] = cls(**{k: v for k, v in (d.get(section) or {}).items() if k in fields})
    return LaneConfig(strategy=d["strategy"], seed=d.get("seed", 1), name=d.get("name") or "", **kw)


def check_target(path: str | os.PathLike, what: str = "--record"):
    """Open where a recording goes, before the run (a bad target is one line, exit 2).

    A recording is written under its own name as the run goes (so that a killed run
    leaves what it recorded), never over another file: a path that exists as a regular
    file is refused. Pipes, character devices and ``-`` are streamed through
    :class:`~.outputs.Output`."""
    from .outputs import Output

    p = os.fspath(path)
    if p == "-" or p.startswith(("/dev/fd/", "/dev/std", "/proc/")):
        return Output(p, what).open()
    try:
        st = os.stat(p)
    except FileNotFoundError:
        if os.path.islink(p):
            raise RecordingError(f"{what} {p} is a dangling symlink; give a file name") from None
        parent = os.path.dirname(os.path.abspath(p))
        if not os.path.isdir(parent):
            raise RecordingError(f"{what} {p}: the directory {parent} does not exist") from None
        try:
            fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)  # umask applies
        except OSError as exc:
            raise RecordingError(f"{what} {p} cannot be created ({exc.strerror or exc})") from None
        return _FileTarget(fd, p)
    except OSError as exc:
        raise RecordingError(f"{what} {p} cannot be used ({exc.strerror or exc})") from None
    if stat.S_ISREG(st.st_mode):
        raise RecordingError(f"{what} {p} already exists; give a new file name (a recording never replaces a file)")
    if stat.S_ISCHR(st.st_mode) or stat.S_ISFIFO(st.st_mode):
        return Output(p, what).open()
    raise RecordingError(f"{what} {p} is not a file name (a directory or a special file)")


class _FileTarget:
    """A new file of ours, written in place (a killed run leaves what was flushed)."""

    def __init__(self, fd: int, path: str):
        self.fd, self.path = fd, path
        self._error: str | None = None

    @property
    def error(self) -> str | None:
        return self._error

    def write(self, data: bytes) -> None:
        if self._error is not None:
            return
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(self.fd, view) :]
        except OSError as exc:
            self._error = f"the recording {self.path} could not be written ({exc.strerror or exc}); it ends early"

    def commit(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        if self._error is not None:
            from .outputs import OutputWriteError

            raise OutputWriteError(self._error)

    def discard(self) -> None:
        """The run never started: the file (ours, new) goes."""
        self.commit_quietly()
        try:
            os.unlink(self.path)
        except OSError:
            pass

    def commit_quietly(self) -> None:
        """Close what was recorded so far, as it is (readable up to its last flush)."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class RecordingWriter:
    """Streams a run into a recording. Fed by :class:`~.runner.Run` (``ops``, ``event``,
    ``anomalies``, ``tick``, ``final``); ``close`` ends the gzip stream."""

    def __init__(self, target, header: dict):
        self.target = target
        self._z = zlib.compressobj(LEVEL, zlib.DEFLATED, 31)  # gzip framing
        self._flushed = time.monotonic()
        self._next_tick = 0.0
        self._pending = False  # bytes given to the member not yet ended
        self.bytes_in = 0
        self.ops_written = 0
        self.closed = False
        self.line(header)
        self.flush()

    def _put(self, data: bytes) -> None:
        self.bytes_in += len(data)
        self._pending = True
        out = self._z.compress(data)
        if out:
            self.target.write(out)
        if time.monotonic() - self._flushed >= FLUSH_S:
            self.flush()

    def flush(self) -> None:
        """End the gzip member: each flush is a member of its own, so a damaged byte costs
        that member alone (the reader goes on at the next one)."""
        if self._pending:
            self.target.write(self._z.flush(zlib.Z_FINISH))
            self._z = zlib.compressobj(LEVEL, zlib.DEFLATED, 31)
            self._pending = False
        self._flushed = time.monotonic()

    def line(self, obj: dict) -> None:
        self._put(json.dumps(obj, separators=(",", ":")).encode() + b"\n")

    def ops(self, raw: bytes, count: int = 0) -> None:
        """Complete history lines, as the labs wrote them."""
        if raw:
            self.ops_written += count
            self._put(raw if raw.endswith(b"\n") else raw + b"\n")

    def event(self, ev: dict) -> None:
        self.line({"type": "event", **ev})

    def anomalies(self, lane: int, at: float, items: list) -> None:
        if items:
            self.line(
                {
                    "type": "anomalies",
                    "lane": lane,
                    "t": round(at, 6),
                    "items": [a.as_dict() if hasattr(a, "as_dict") else a for a in items],
                }
            )

    def due(self, now: float) -> bool:
        return now >= self._next_tick

    def tick(self, now: float, state: dict) -> None:
        self._next_tick = (int(now / TICK_S) + 1) * TICK_S
        self.line({"type": "tick", "t": round(now, 6), **state})

    def final(self, info: dict) -> None:
        self.line({"type": "final", **info})

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.line({"type": "end"})
        self.flush()


# -- reading --------------------------------------------------------------------------


@dataclasses.dataclass
class Recording:
    path: str
    header: dict
    ops: list[list[dict]]  # per lane, in the order the labs wrote them
    events: list[dict]
    ticks: list[dict]
    anomalies: list[list[dict]]  # per lane, each with "t": when the auditor reached it
    final: dict | None
    complete: bool  # the writer ended the file ("end"); else it was cut short
    note: str  # why it is incomplete, one line ("" when complete)

    @property
    def lane_names(self) -> list[str]:
        return [lane.get("name") or lane["strategy"] for lane in self.header["lanes"]]

    @property
    def configs(self) -> list[LaneConfig]:
        return [lane_config(d) for d in self.header["lanes"]]

    @property
    def end_time(self) -> float:
        """The last lab time the recording knows."""
        if self.final is not None and self.final.get("ended_at") is not None:
            return float(self.final["ended_at"])
        times = [self.ticks[-1]["t"]] if self.ticks else []
        times += [r[-1]["end"] for r in self.ops if r]
        times += [self.events[-1]["start"]] if self.events else []
        return max(times, default=0.0)


#: Bounds on what a recording may hold (a file comes from anyone; each bound is far above
#: what a run writes): one line, the text it inflates to (as a multiple of the bytes read,
#: plus a floor), the nesting of a line, the events, the anomalies, and the lab times.
MAX_LINE = 16 << 20
MAX_RATIO = 64  # the deflate ratio of a recording is about 6; a bomb's is up to 1,032
RATIO_FLOOR = 256 << 20
MAX_DEPTH = 32
MAX_EVENTS = 100_000
MAX_ANOMALIES = 1_000_000
TIME_SLACK_S = 3_600.0  # a drain may run past the plan's end; not by more than an hour
_OUT = 1 << 20  # inflated bytes per step (a bomb never inflates more than this at once)
_IN = 4 << 10  # compressed bytes per step


def _open(path: str) -> int:
    """A descriptor to read; a FIFO is opened without waiting for a writer (none: it reads
    as empty), and a pipe or a FIFO is read as a stream (nothing here seeks)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise RecordingError(f"{path} cannot be read ({exc.strerror or exc})") from None
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise RecordingError(f"{path} is a directory, not a recording")
        if not (stat.S_ISREG(mode) or stat.S_ISFIFO(mode) or stat.S_ISCHR(mode) or stat.S_ISSOCK(mode)):
            raise RecordingError(f"{path} is not a file (a device or a special file)")
        os.set_blocking(fd, True)  # a writer that is there is waited for; none gives end of file
    except BaseException:
        os.close(fd)
        raise
    return fd


def _chunks(fd: int, path: str):
    while True:
        try:
            chunk = os.read(fd, _CHUNK)
        except OSError as exc:
            raise RecordingError(f"{path} cannot be read ({exc.strerror or exc})") from None
        if not chunk:
            return
        yield chunk


class _Inflater:
    """The gzip members of a file, inflated in steps of at most ``_OUT`` bytes.

    The writer ends a member at each flush; a member that fails (a bad byte, a wrong
    check sum) is dropped whole and reading goes on at the next member's header."""

    def __init__(self, path: str):
        self.path = path
        self.z = zlib.decompressobj(31)
        self.read = 0  # compressed bytes read
        self.out = 0  # inflated bytes
        self.skipped = 0  # compressed bytes dropped (damaged members)
        self.lost_members = 0
        self.started = False  # the file begins as gzip data
        self.open_member = False  # a member began and has not ended yet
        self.members = 0  # good members
        self.seeking = False  # after a failed member, until the next header

    def bound(self) -> None:
        if self.out > RATIO_FLOOR + MAX_RATIO * self.read:
            raise RecordingError(
                f"{self.path} inflates to more than {MAX_RATIO} times its size "
                f"({self.out:,} bytes from {self.read:,}); not a recording (a decompression bomb?)"
            )

    def pieces(self, chunks):
        """Yield inflated bytes; ``None`` marks the end of a good member, ``False`` a member lost.

        The input goes in by ``_IN`` bytes (zlib gives nothing of a step that fails, so a
        damaged stream loses at most one step before its damage)."""
        buf, pos = b"", 0
        for chunk in chunks:
            self.read += len(chunk)
            buf = buf[pos:] + chunk
            pos = 0
            if not self.started:
                if len(buf) < 2:
                    continue
                if buf[:2] != b"\x1f\x8b":
                    raise RecordingError(f"{self.path} is not a Cache Studio recording (not gzip data)")
                self.started = True
            view = memoryview(buf)
            while pos < len(buf):
                if self.seeking:
                    pos = self._seek(buf, pos)
                    if self.seeking:
                        break
                if not self.open_member:
                    while pos < len(buf) and buf[pos] == 0:  # padding after a member
                        pos += 1
                    if pos == len(buf):
                        break
                    self.open_member = True
                step = view[pos : pos + _IN]
                try:
                    data = self.z.decompress(step, _OUT)
                    while True:
                        if data:
                            self.out += len(data)
                            self.bound()
                            yield data
                        if self.z.eof or not self.z.unconsumed_tail:
                            break
                        data = self.z.decompress(self.z.unconsumed_tail, _OUT)
                except zlib.error:
                    yield False
                    pos = self._resync(buf, pos + 1)
                    continue
                if self.z.eof:
                    pos += len(step) - len(self.z.unused_data)
                    yield None
                    self.z = zlib.decompressobj(31)
                    self.open_member = False
                    self.members += 1
                else:
                    pos += len(step)

    def _resync(self, buf: bytes, pos: int) -> int:
        """A member failed: look for the next one's header from ``pos`` on."""
        self.lost_members += 1
        self.z = zlib.decompressobj(31)
        self.open_member = False
        self.seeking = True
        return self._seek(buf, pos)

    def _seek(self, buf: bytes, pos: int) -> int:
        """Where the next member's header is (or the end, less two bytes that may begin one)."""
        at = buf.find(b"\x1f\x8b\x08", pos)
        if at < 0:
            at = max(pos, len(buf) - 2)
        else:
            self.seeking = False
        self.skipped += at - pos
        return at


def _depth(line: bytes) -> int:
    """How deep a line nests (strings' contents are not counted)."""
    if line.count(b"[") + line.count(b"{") <= MAX_DEPTH:
        return 0
    depth = top = 0
    in_str = esc = False
    for c in line:
        if in_str:
            if esc:
                esc = False
            elif c == 0x5C:
                esc = True
            elif c == 0x22:
                in_str = False
        elif c == 0x22:
            in_str = True
        elif c in (0x5B, 0x7B):
            depth += 1
            top = max(top, depth)
            if top > MAX_DEPTH:
                return top
        elif c in (0x5D, 0x7D):
            depth -= 1
    return top


def _no_constant(name: str):
    raise ValueError(f"{name} is not a number here")


def _load(line: bytes):
    if len(line) > MAX_LINE or _depth(line) > MAX_DEPTH:
        return _NOT_JSON
    try:
        return json.loads(line, parse_constant=_no_constant)
    except (ValueError, RecursionError):
        return _NOT_JSON


def _batch(data: bytes) -> list:
    """The lines of ``data`` (complete lines), parsed; one that is not JSON is ``_NOT_JSON``."""
    if not data:
        return []
    try:
        return json.loads(b"[" + data[:-1].replace(b"\n", b",") + b"]", parse_constant=_no_constant)
    except (ValueError, RecursionError):
        return [_load(line) for line in data[:-1].split(b"\n")]


def _lines(path: str):
    """Yield ("line", obj) per line of each good member, ("lost", None) per member lost;
    finally ("end", why): "" for a file that ends where a member ends, or why not."""
    fd = _open(path)
    try:
        inf = _Inflater(path)
        pending: list = []  # a member's lines, given out when its check sum holds
        size = 0
        rest = b""
        for piece in inf.pieces(_chunks(fd, path)):
            if piece is None or piece is False:
                if piece is None and not rest:
                    yield from (("line", obj) for obj in pending)
                elif inf.members == 0:  # one stream (format 1) damaged: read up to the damage
                    yield from (("line", obj) for obj in pending if obj is not _NOT_JSON)
                    yield ("lost", None)
                else:
                    yield ("lost", None)
                pending, size, rest = [], 0, b""
                continue
            data = rest + piece
            cut = data.rfind(b"\n") + 1
            rest = data[cut:]
            if len(rest) > MAX_LINE:
                raise RecordingError(f"{path} has a line longer than {MAX_LINE >> 20} MiB; not a recording")
            pending += _batch(data[:cut])
            size += cut
            if size > 8 << 20:  # a long member (an older, single-stream file): give out as it comes
                yield from (("line", obj) for obj in pending)
                pending, size = [], 0
        if not inf.started:
            if not inf.read and stat.S_ISFIFO(os.fstat(fd).st_mode):
                raise RecordingError(f"{path} is a FIFO with nothing written to it (no writer); give a recording")
            raise RecordingError(f"{path} is not a Cache Studio recording (empty, or not gzip data)")
        ended = not inf.open_member and inf.members > 0
        if ended:
            yield from (("line", obj) for obj in pending)
        elif pending:  # a member cut short: its complete lines are read (its check sum never came)
            yield from (("line", obj) for obj in pending if obj is not _NOT_JSON)
        why = "" if ended else "the file ends early (its writer was stopped or killed)"
        if inf.lost_members:
            what = f"{inf.lost_members} damaged part{'s' if inf.lost_members > 1 else ''}"
            why = f"the file is damaged: {what} skipped ({inf.skipped:,} bytes)" + (f"; {why}" if why else "")
        yield ("end", why)
    finally:
        os.close(fd)


_OP_KEYS = ("id", "lane", "kind", "key", "start", "end", "outcome", "acked")
_NOT_JSON = object()


def _number(x) -> bool:
    """A finite number (a huge integer is not one: it cannot become a time)."""
    if isinstance(x, float):
        return math.isfinite(x)
    return isinstance(x, int) and not isinstance(x, bool) and -(10**15) < x < 10**15


def _damage(obj, lanes: int, limit: float) -> str:
    """Why a line after the header is not one a recording holds ("" when it is)."""
    if obj is _NOT_JSON:
        return "a line is not JSON, too long or too deeply nested"
    if not isinstance(obj, dict):
        return "a line is not an object"
    kind = obj.get("type")
    times: tuple = ()
    if kind is None:
        if (
            any(k not in obj for k in _OP_KEYS)
            or not isinstance(obj["id"], str)
            or not obj["id"].rpartition("#")[2].isdecimal()
            or not isinstance(obj["kind"], str)
            or not isinstance(obj["outcome"], str)
            or not isinstance(obj["lane"], str)
        ):
            return "an operation record lacks its fields"
        times = (obj["start"], obj["end"])
    elif kind == "event":
        if not isinstance(obj.get("kind"), str):
            return "an event lacks its fields"
        times = (obj.get("start"),)
    elif kind == "tick":
        if (
            not isinstance(obj.get("lanes"), list)
            or len(obj["lanes"]) > lanes
            or not all(isinstance(x, dict) for x in obj["lanes"])
        ):
            return "a tick lacks its fields"
        times = (obj.get("t"),)
    elif kind == "anomalies":
        if (
            not isinstance(obj.get("lane"), int)
            or not 0 <= obj["lane"] < lanes
            or not isinstance(obj.get("items"), list)
            or not all(isinstance(a, dict) and isinstance(a.get("kind"), str) for a in obj["items"])
        ):
            return "an anomaly line lacks its fields"
        times = (obj.get("t"),)
    elif kind == "final":
        if obj.get("ended_at") is not None:
            times = (obj["ended_at"],)
    elif kind != "end":
        return f"an unknown line type {_show(kind)}"
    if not all(_number(t) and -TIME_SLACK_S <= t <= limit for t in times):
        return f"a {kind or 'operation'} line has a time that is not a number within the run (0 to {limit:g} s)"
    return ""


def _show(x) -> str:
    """A value from a file, shown safely in one line (no control characters, short)."""
    text = repr(x)[:40]
    return "".join(c if c.isprintable() else "?" for c in text)


def _header(obj, p: str) -> dict:
    """The header, checked: a recording's first line (else the file is refused, one line)."""
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise RecordingError(f"{p} is not a Cache Studio recording (no header)")
    version = obj.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise RecordingError(f"{p} is not a Cache Studio recording (its format version is {_show(version)})")
    if version > VERSION:
        raise RecordingError(
            f"{p} was written by a newer Cache Studio (recording format {version}; this one reads up to {VERSION})"
        )
    lanes, plan = obj.get("lanes"), obj.get("plan")
    if (
        not isinstance(lanes, list)
        or not lanes
        or not all(
            isinstance(x, dict) and isinstance(x.get("strategy"), str) and isinstance(x.get("name") or "", str)
            for x in lanes
        )
        or not isinstance(plan, dict)
    ):
        raise RecordingError(f"{p} is not a Cache Studio recording (its header names no lane)")
    if len(lanes) > MAX_LANES:
        raise RecordingError(f"{p}: its header lists {len(lanes):,} lanes; a run has at most {MAX_LANES}")
    names = [x.get("name") or x["strategy"] for x in lanes]
    if len(set(names)) != len(names):
        raise RecordingError(f"{p}: its header names a lane twice")
    duration = plan.get("duration_s")
    if not _number(duration) or not 0 < duration <= MAX_DURATION_S:
        raise RecordingError(f"{p}: its plan's duration {_show(duration)} is not within 0 to {MAX_DURATION_S} s")
    if not isinstance(plan.get("seed"), int):
        raise RecordingError(f"{p}: its plan's seed {_show(plan.get('seed'))} is not an integer")
    for x in lanes:
        try:
            validate(lane_config(x))
        except (ConfigError, TypeError, ValueError, KeyError, AttributeError) as exc:
            why = _show(str(exc))
            raise RecordingError(f"{p}: a lane in its header is not one Cache Studio runs ({why})") from None
    return obj


#: What a value of the wrong kind, missing or out of range makes the code that reads it raise.
_CONTENT_ERRORS = (
    KeyError,
    TypeError,
    ValueError,
    AttributeError,
    IndexError,
    ArithmeticError,
    RecursionError,
    RuntimeWarning,
)


@contextlib.contextmanager
def reading(path: str | os.PathLike):
    """Work on what a recording says: whatever its content makes fail there is the file's
    fault, refused in one line (exit 2) with no exception name; a numeric warning too."""
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", RuntimeWarning)
            yield
    except ConfigError:
        raise
    except _CONTENT_ERRORS:
        raise RecordingError(
            f"{os.fspath(path)} is not a recording Cache Studio can read (a value in it is missing, "
            "of the wrong kind or out of range)"
        ) from None


def read_recording(path: str | os.PathLike) -> Recording:
    """Read a recording: everything up to its end, or to where it was cut short, skipping
    damaged parts (and saying so in ``note``)."""
    p = os.fspath(path)
    rec = None
    lane_of: dict[str, int] = {}
    note = ""
    bad_lines, why_bad = 0, ""
    anomalies = 0
    limit = 0.0
    for what, obj in _lines(p):
        if what == "end":
            note = obj
            break
        if what == "lost" or rec is None and obj is _NOT_JSON:
            continue
        if rec is None:
            h = _header(obj, p)
            rec = Recording(p, h, [[] for _ in h["lanes"]], [], [], [[] for _ in h["lanes"]], None, False, "")
            lane_of = {name: i for i, name in enumerate(rec.lane_names)}
            limit = h["plan"]["duration_s"] + TIME_SLACK_S
            continue
        why = _damage(obj, len(rec.ops), limit)
        if why:
            bad_lines, why_bad = bad_lines + 1, why_bad or why
            continue
        kind = obj.get("type")
        if kind is None:
            i = lane_of.get(obj["lane"])
            if i is not None:
                rec.ops[i].append(obj)
        elif kind == "event":
            del obj["type"]
            rec.events.append(obj)
            if len(rec.events) > MAX_EVENTS:
                raise RecordingError(f"{p} holds more than {MAX_EVENTS:,} events; not a recording of a run")
        elif kind == "tick":
            rec.ticks.append(obj)
            if len(rec.ticks) > limit / TICK_S * 2 + 1_000:
                raise RecordingError(f"{p} holds more ticks than its run's duration allows")
        elif kind == "anomalies":
            anomalies += len(obj["items"])
            if anomalies > MAX_ANOMALIES:
                raise RecordingError(f"{p} holds more than {MAX_ANOMALIES:,} anomalies; not a recording of a run")
            rec.anomalies[obj["lane"]].extend({**a, "t": obj["t"]} for a in obj["items"])
        elif kind == "final":
            rec.final = obj
        elif kind == "end":
            rec.complete = True
    if rec is None:
        raise RecordingError(f"{p} is not a Cache Studio recording (empty, damaged or cut before its header)")
    if bad_lines:
        s = "s" if bad_lines > 1 else ""
        note = f"{bad_lines:,} damaged line{s} skipped ({why_bad})" + (f"; {note}" if note else "")
    if note:
        rec.complete = False
    rec.note = note if not rec.complete else ""
    if not rec.complete and not rec.note:
        rec.note = "the file ends early (its writer was stopped or killed)"
    return rec


# -- the replayed summary -------------------------------------------------------------


def replay_summary(rec: Recording) -> dict:
    """The summary the live run printed (DESIGN.md §6), rebuilt from the recording."""
    from .auditor import ANOMALY_KINDS
    from .plan import durability
    from .report import fault_report_records
    from .summary import SUMMARY_NAMES, lane_summary
    from .telemetry import LaneStats

    final = rec.final or {}
    fl = final.get("lanes") or []
    end = rec.end_time
    duration = rec.header["plan"]["duration_s"]
    last = rec.ticks[-1]["lanes"] if rec.ticks else []
    lanes = []
    for i, name in enumerate(rec.lane_names):
        stats = LaneStats(name)
        stats.add(rec.ops[i])
        info = fl[i] if i < len(fl) else {}
        tick = last[i] if i < len(last) else {}
        cfg = lane_config(info["cfg"]) if info.get("cfg") else rec.configs[i]
        counts = dict.fromkeys(ANOMALY_KINDS, 0)
        for a in rec.anomalies[i]:
            counts[a["kind"]] = counts.get(a["kind"], 0) + 1
        kept = [{k: v for k, v in a.items() if k != "t"} for a in rec.anomalies[i][:200]]
        lanes.append(
            lane_summary(
                cfg,
                stats,
                duration,
                totals=info.get("totals") or tick.get("totals") or {},
                gauges=info.get("gauges") or {"queue_depth": tick.get("queue_depth", 0)},
                max_depth=info.get("max_depth", tick.get("max_depth", 0)),
                anomalies={SUMMARY_NAMES[k]: counts.get(k, 0) for k in ANOMALY_KINDS},
                anomaly_list=kept,
                incarnations=info.get("incarnations", (tick.get("inc", 0) or 0) + 1),
                failures=info.get("failures", []),
                audited=info.get("audited", False),
                drained=info.get("drained", False),
                durability_info=durability(cfg),
                backends=info.get("backends") or cfg.backends.label(),
            )
        )
    kept_all = [
        [{**a, "found_at": a.get("found_at")} for a in rec.anomalies[i][:10_000]] for i in range(len(rec.lane_names))
    ]
    faults = fault_report_records(rec.lane_names, rec.ops, kept_all, rec.events, end)
    status = final.get("status") or "recording-cut"
    return {
        "seed": rec.header["plan"]["seed"],
        "duration_s": duration,
        "status": status,
        "interrupted": final.get("interrupted"),
        "ended_at_s": round(end, 3),
        "failures": final.get("failures", []),
        "lanes": lanes,
        "faults": faults,
        "events": rec.events,
        "run_dir": final.get("run_dir"),
        "history_records": sum(len(ops) for ops in rec.ops) + len(rec.events),
        **({} if rec.complete else {"recording": {"complete": False, "note": rec.note}}),
    }


def describe(rec: Recording) -> str:
    """One line about a recording, for the command line."""
    n = sum(len(ops) for ops in rec.ops)
    what = rec.header.get("scenario") or ", ".join(rec.lane_names)
    tail = "" if rec.complete else f"; {rec.note}, read up to {rec.end_time:.1f} s"
    return (
        f"recording of {what}: {rec.end_time:.1f} s of lab time, {n:,} operations, "
        f"{len(rec.events)} events, made by {rec.header.get('app', '?')} on {rec.header.get('created', '?')}{tail}"
    )


def size_note(path: str | os.PathLike, ops: int) -> str:
    size = os.path.getsize(path)
    per = f", {size / ops * 1e6 / 1e6:.1f} MB per million operations" if ops else ""
    return f"{size / 1e6:.1f} MB{per}"
