"""Recordings: one file that holds a whole run, written as the run goes.

A recording is a gzip stream of JSON lines (``zcat run.csrec | head`` shows it):

* line 1, the header: ``{"type": "header", "format": "cachestudio-recording", "version": 1,
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
operations, against 156 MB as JSON Lines, at 0.84 million records per CPU-second) and
flushed (``Z_SYNC_FLUSH``) every ``FLUSH_S`` of wall time, so a writer killed halfway
leaves a file that reads up to its last flush: :func:`read_recording` reads what is
complete and says where the file ends early. A file that is not a recording, or one
written by a newer format, is refused in one line (:class:`RecordingError`).

The replay needs no lab: :func:`replay_summary` rebuilds, from the recording alone, the
summary that the live run printed (DESIGN.md §6), recomputing every figure the history
gives (operations, latencies, hit ratios, what each fault did) and taking from the
recording what only the labs knew (DB counters, queue depths) and what the auditor
decided (its verdicts need the store files, which a recording does not carry).
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import platform
import stat
import time
import zlib

from .config import SECTIONS, ConfigError, LaneConfig
from .faultkinds import FIELDS

FORMAT = "cachestudio-recording"
VERSION = 1
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
        self.bytes_in = 0
        self.ops_written = 0
        self.closed = False
        self.line(header)
        self.flush()

    def _put(self, data: bytes) -> None:
        self.bytes_in += len(data)
        out = self._z.compress(data)
        if out:
            self.target.write(out)
        if time.monotonic() - self._flushed >= FLUSH_S:
            self.flush()

    def flush(self) -> None:
        self.target.write(self._z.flush(zlib.Z_SYNC_FLUSH))
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
        self.target.write(self._z.flush(zlib.Z_FINISH))


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


def _lines(path: str):
    """Yield lists of parsed lines; finally a string: "" (complete stream) or why not."""
    try:
        fh = open(path, "rb")
    except OSError as exc:
        raise RecordingError(f"{path} cannot be read ({exc.strerror or exc})") from None
    with fh:
        head = fh.read(2)
        if head != b"\x1f\x8b":
            raise RecordingError(f"{path} is not a Cache Studio recording (not gzip data)")
        fh.seek(0)
        z = zlib.decompressobj(31)
        rest = b""
        offset = 0
        while True:
            chunk = fh.read(_CHUNK)
            if not chunk:
                yield _parse(rest, path, final=False)
                yield "" if z.eof else "the file ends early (its writer was stopped or killed)"
                return
            try:
                data = z.decompress(chunk)
            except zlib.error as exc:
                yield _parse(rest, path, final=False)
                yield f"the file is damaged after byte {offset:,} ({exc})"
                return
            offset += len(chunk)
            data = rest + data
            cut = data.rfind(b"\n") + 1
            rest = data[cut:]
            if cut:
                yield _parse(data[:cut], path, final=True)
            if z.eof:
                yield _parse(rest, path, final=False)
                yield ""
                return


def _parse(data: bytes, path: str, final: bool) -> list[dict]:
    """Complete lines of ``data`` (a partial last line is dropped when ``final`` is False)."""
    if not final:
        cut = data.rfind(b"\n") + 1
        data = data[:cut]
    if not data:
        return []
    try:
        return json.loads(b"[" + data[:-1].replace(b"\n", b",") + b"]")
    except ValueError:
        out = []
        for line in data.splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                out.append(_NOT_JSON)  # the reader stops here (damage), or refuses the file
                break
        return out


_OP_KEYS = ("id", "lane", "kind", "key", "start", "end", "outcome", "acked")
_NOT_JSON = object()


def _damage(obj, lanes: int) -> str:
    """Why a line after the header is not one a recording holds ("" when it is)."""
    if obj is _NOT_JSON:
        return "a line is not JSON"
    if not isinstance(obj, dict):
        return "a line is not an object"
    kind = obj.get("type")
    if kind is None:
        if (
            any(k not in obj for k in _OP_KEYS)
            or not isinstance(obj["start"], (int, float))
            or not isinstance(obj["end"], (int, float))
            or not isinstance(obj["id"], str)
            or not obj["id"].rpartition("#")[2].isdecimal()
            or not isinstance(obj["kind"], str)
            or not isinstance(obj["outcome"], str)
        ):
            return "an operation record lacks its fields"
    elif kind == "event":
        if not isinstance(obj.get("kind"), str) or not isinstance(obj.get("start"), (int, float)):
            return "an event lacks its fields"
    elif kind == "tick":
        if (
            not isinstance(obj.get("t"), (int, float))
            or not isinstance(obj.get("lanes"), list)
            or not all(isinstance(x, dict) for x in obj["lanes"])
        ):
            return "a tick lacks its fields"
    elif kind == "anomalies":
        if (
            not isinstance(obj.get("lane"), int)
            or not 0 <= obj["lane"] < lanes
            or not isinstance(obj.get("items"), list)
            or not all(isinstance(a, dict) and isinstance(a.get("kind"), str) for a in obj["items"])
        ):
            return "an anomaly line lacks its fields"
    elif kind not in ("final", "end"):
        return f"an unknown line type {str(kind)[:20]!r}"
    return ""


def read_recording(path: str | os.PathLike) -> Recording:
    """Read a recording: everything up to its end, or to where it was cut short."""
    p = os.fspath(path)
    rec = None
    lane_of: dict[str, int] = {}
    note = ""
    damaged = ""
    for batch in _lines(p):
        if isinstance(batch, str):
            note = damaged or batch
            break
        if damaged:
            continue
        for obj in batch:
            if rec is None:
                if not isinstance(obj, dict) or obj.get("format") != FORMAT:
                    raise RecordingError(f"{p} is not a Cache Studio recording (no header)")
                version = obj.get("version")
                if not isinstance(version, int) or version > VERSION:
                    raise RecordingError(
                        f"{p} was written by a newer Cache Studio (recording format "
                        f"{version}; this one reads up to {VERSION})"
                    )
                if (
                    not isinstance(obj.get("lanes"), list)
                    or not obj["lanes"]
                    or not all(
                        isinstance(x, dict)
                        and isinstance(x.get("strategy"), str)
                        and isinstance(x.get("name", ""), str)
                        for x in obj["lanes"]
                    )
                    or not isinstance(obj.get("plan"), dict)
                ):
                    raise RecordingError(f"{p} is not a Cache Studio recording (its header names no lane)")
                rec = Recording(p, obj, [[] for _ in obj["lanes"]], [], [], [[] for _ in obj["lanes"]], None, False, "")
                lane_of = {lane.get("name") or lane["strategy"]: i for i, lane in enumerate(obj["lanes"])}
                continue
            why = _damage(obj, len(rec.ops))
            if why:  # read up to the damage, and say so
                damaged = f"the file is damaged ({why}); read up to there"
                break
            kind = obj.get("type")
            if kind is None:
                i = lane_of.get(obj.get("lane"))
                if i is not None:
                    rec.ops[i].append(obj)
            elif kind == "event":
                del obj["type"]
                rec.events.append(obj)
            elif kind == "tick":
                rec.ticks.append(obj)
            elif kind == "anomalies":
                i = obj.get("lane")
                if isinstance(i, int) and 0 <= i < len(rec.anomalies):
                    t = obj.get("t")
                    rec.anomalies[i].extend({**a, "t": t} for a in obj.get("items", ()))
            elif kind == "final":
                rec.final = obj
            elif kind == "end":
                rec.complete = True
    if rec is None:
        raise RecordingError(f"{p} is not a Cache Studio recording (empty, or cut before its header)")
    if not rec.complete:
        rec.note = note or "the file ends early (its writer was stopped or killed)"
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
