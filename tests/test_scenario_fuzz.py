"""Scenario files from anyone: whatever a file holds, ``load`` returns a scenario whose every
value is usable, or refuses it in one line naming the file and the line. And the fault
timeline: overlaps are merged or refused, never dropped.

The documents are generated (hypothesis) as TOML text, written to real files and read by the
real loader: values of every TOML type (strings, integers including ones beyond 64 bits,
floats including inf, nan, -0.0 and 1e308, booleans, dates and times, arrays, inline tables)
at the top, in every section and in ``[[faults]]``; wrong shapes; deep nesting; raw text and
bytes; and the built-in scenarios with one value changed. ``CACHESTUDIO_FUZZ_EXAMPLES`` sets
the number of examples of each generator (300 by default, modest for CI); a short sample
also goes through the real command line.
"""

from __future__ import annotations

import datetime
import itertools
import math
import os
import re
import tempfile
import tomllib
from collections import Counter
from dataclasses import fields
from fractions import Fraction
from pathlib import Path

import pytest
from helpers import cli
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cachestudio.engine import config
from cachestudio.engine.config import validate
from cachestudio.engine.scenario import (
    FAULT_KINDS,
    SECTIONS,
    Scenario,
    ScenarioError,
    builtin_dir,
    load,
)
from cachestudio.engine.timeline import (
    FIELDS,
    MAX_BURST,
    MAX_FAULTS,
    MAX_READERS,
    MAX_WINDOW_S,
    TimelineConflict,
    check_count,
    normalize,
)

EXAMPLES = int(os.environ.get("CACHESTUDIO_FUZZ_EXAMPLES", "300"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
#: Files tried and what became of them (printed at the end with ``-s``).
TALLY: Counter = Counter()
_DIR = tempfile.TemporaryDirectory(prefix="cachestudio-fuzz-")
_NAMES = itertools.count()


@pytest.fixture(scope="module", autouse=True)
def _report():
    yield
    print(f"\nscenario fuzz: {sum(TALLY.values())} files: " + ", ".join(f"{k} {v}" for k, v in sorted(TALLY.items())))
    _DIR.cleanup()


# ------------------------------------------------------------------------ a TOML writer
# Written here rather than taken from tomli-w: it must write what tomli-w refuses (nan, inf,
# integers beyond 64 bits) and choose between inline and [table] forms.


def toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else toml_string(key)


def toml_string(s: str) -> str:
    out = []
    for ch in s:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v) if v.bit_length() < 4000 else hex(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, str):
        return toml_string(v)
    if isinstance(v, (datetime.datetime, datetime.date, datetime.time)):
        return v.isoformat()
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{toml_key(k)} = {toml_value(x)}" for k, x in v.items()) + "}"
    raise TypeError(v)


def toml_document(doc: dict, inline: bool = False) -> str:
    """``doc`` as TOML: dicts as ``[tables]`` and lists of dicts as ``[[arrays]]`` (or all
    inline when ``inline``)."""
    lines, tables = [], []
    for k, v in doc.items():
        if not inline and isinstance(v, dict):
            tables.append(f"[{toml_key(k)}]")
            tables += [f"{toml_key(kk)} = {toml_value(vv)}" for kk, vv in v.items()]
        elif not inline and isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
            for item in v:
                tables.append(f"[[{toml_key(k)}]]")
                tables += [f"{toml_key(kk)} = {toml_value(vv)}" for kk, vv in item.items()]
        else:
            lines.append(f"{toml_key(k)} = {toml_value(v)}")
    return "\n".join(lines + tables) + "\n"


# ------------------------------------------------------------------------ values and documents

FLOATS = st.one_of(
    st.floats(),
    st.sampled_from([math.inf, -math.inf, math.nan, -0.0, 0.0, 1e308, -1e308, 5e-324, 0.001, 1.5, 2.0]),
)
INTS = st.one_of(
    st.integers(-10, 3000),
    st.integers(),
    st.sampled_from([2**63 - 1, 2**63, 2**64, -(2**63) - 1, 2**70, 10**30, 10**99, 10**150]),
    st.builds(lambda: 2**20000),  # beyond Python's 4,300 digits (written in hex)
)
TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=30)
KEYS = st.one_of(st.sampled_from(["at", "kind", "rate", "x", "name", "faults", "workload"]), TEXT)
SCALARS = st.one_of(
    st.booleans(),
    INTS,
    FLOATS,
    TEXT,
    st.dates(),
    st.datetimes(timezones=st.sampled_from([None, datetime.UTC])),
    st.times(),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(KEYS, inner, max_size=4)),
    max_leaves=12,
)
CHOICES = {
    "distribution": config.DISTRIBUTIONS,
    "eviction": config.EVICTION_POLICIES,
    "stampede": config.STAMPEDE,
    "journal_mode": config.JOURNAL_MODES,
    "synchronous": config.SYNCHRONOUS,
    "backpressure": config.BACKPRESSURE,
    "cache": config.CACHE_BACKENDS,
    "store": config.STORE_BACKENDS,
}


def plausible(name: str, default):
    """Values of the knob's own type that every knob of that type accepts (so that documents
    load unless something wild was put in)."""
    if isinstance(default, bool):
        return st.booleans()
    if name == "nodes":
        return st.integers(1, config.MAX_NODES)
    if isinstance(default, int):
        return st.integers(1, 64)
    if isinstance(default, float):
        return st.one_of(st.floats(0.01, 1), st.integers(1, 1))
    return st.sampled_from(CHOICES[name])


@st.composite
def maybe_wild(draw, good, wild: int):
    """``good``, or any TOML value once in a while (``wild`` in 30)."""
    return draw(VALUES) if draw(st.integers(0, 29)) < wild else draw(good)


@st.composite
def faults(draw, duration: float, wild: int):
    kind = draw(maybe_wild(st.sampled_from(list(FAULT_KINDS)), wild))
    fault = {
        "at": draw(
            maybe_wild(
                st.one_of(st.floats(0, duration, exclude_max=True), st.integers(0, math.ceil(duration) - 1)), wild
            )
        ),
        "kind": kind,
    }
    spec = FAULT_KINDS.get(kind, {}) if isinstance(kind, str) else {}
    plausible_values = {
        "duration": st.floats(0.001, 8),
        "ms": st.sampled_from([20, 50.0, 80.0]),
        "op": st.sampled_from(["read", "write"]),
        "count": st.integers(1, 5000),
        "readers": st.integers(2, 300),
        "node": st.integers(0, config.MAX_NODES - 1),
    }
    for key in spec:
        if draw(st.integers(0, 5)):
            fault[key] = draw(maybe_wild(plausible_values[key], wild))
    if not draw(st.integers(0, 15)):
        fault[draw(KEYS)] = draw(VALUES)
    if not draw(st.integers(0, 15)):
        del fault[draw(st.sampled_from(sorted(fault)))]
    return fault


@st.composite
def documents(draw) -> dict:
    doc: dict = {}
    wild = draw(st.sampled_from([0, 0, 1, 3, 10, 30]))
    names = st.text(st.characters(whitelist_categories=("L", "Nd", "Zs")), min_size=1, max_size=30)
    top = {
        "name": names,
        "title": names,
        "description": TEXT,
        "seed": st.integers(0, 100),
        "duration": st.one_of(st.floats(0.5, 40), st.integers(1, 40)),
        "strategy": st.sampled_from(["all", *config.STRATEGIES]),
        "restart_delay": st.floats(0, 3),
    }
    for key, good in top.items():
        if draw(st.booleans()):
            doc[key] = draw(maybe_wild(good, wild))
    for section, cls in SECTIONS.items():
        if draw(st.booleans()):
            if draw(st.integers(0, 29)) < wild // 3:
                doc[section] = draw(VALUES)  # a section that is not a table, most of the time
                continue
            names = [f.name for f in fields(cls)]
            chosen = draw(st.lists(st.sampled_from(names), unique=True, max_size=len(names)))
            defaults = cls()
            doc[section] = {n: draw(maybe_wild(plausible(n, getattr(defaults, n)), wild)) for n in chosen}
            if draw(st.integers(0, 29)) < wild // 3:
                doc[section][draw(KEYS)] = draw(VALUES)
    duration = doc.get("duration", 10)
    duration = duration if isinstance(duration, (int, float)) and 0 < duration < 100 else 10
    shape = draw(st.integers(0, 29))
    if shape < wild // 3:
        doc["faults"] = draw(VALUES)  # wrong shapes: faults = 3, faults = [1, 2], ...
    elif shape < 22:
        doc["faults"] = draw(st.lists(faults(duration, wild), max_size=8))
    if draw(st.integers(0, 29)) < wild // 3:
        doc[draw(KEYS)] = draw(VALUES)
    return doc


@st.composite
def raw_texts(draw) -> bytes:
    """Text no dict can produce: deep nesting, long dotted keys and numbers, broken TOML."""
    n = draw(st.integers(1, 3000))
    where = draw(st.sampled_from(["", "[workload]\n", "[[faults]]\nkind = 'crash'\n"]))
    key = draw(st.sampled_from(["a", "rate", "at", "seed"]))
    text = draw(
        st.sampled_from(
            [
                f"{where}{key} = {'[' * n}1{']' * n}\n",
                f"{where}{key} = {'{a = ' * n}1{'}' * n}\n",
                f"{where}{key} = {'[' * n}\n",
                f"{where}{'a.' * n}a = 1\n",
                f"{where}[{'a.' * n}a]\n",
                f"{where}{key} = {'9' * n}\n",
                f"{where}{key} = 0.{'1' * n}\n",
                f"{where}{key} = {toml_string('x' * n)}\n",
                f'{where}{key} = """{"a" * n}\n',
            ]
        )
    )
    if draw(st.booleans()):
        alphabet = st.sampled_from(list("[]{}\"'=.,#\n\\ 0123456789abeinftrux_-+:TZ") + ["\r\n", "\t", "é", "\x00"])
        noise = "".join(draw(st.lists(alphabet, max_size=60)))
        at = draw(st.integers(0, len(text)))
        text = text[:at] + noise + text[at:]
    data = text.encode("utf-8")
    if not draw(st.integers(0, 10)):
        data += draw(st.binary(max_size=20))
    return data


def _builtin_docs() -> list[tuple[str, dict]]:
    return [(p.stem, tomllib.loads(p.read_text(encoding="utf-8"))) for p in sorted(builtin_dir().glob("*.toml"))]


BUILTINS = _builtin_docs()


@st.composite
def mutated_builtins(draw) -> tuple[dict, bool]:
    """A built-in scenario with one value replaced (or removed, or a key added)."""
    _, doc = draw(st.sampled_from(BUILTINS))
    doc = {k: ({**v} if isinstance(v, dict) else [dict(f) for f in v] if k == "faults" else v) for k, v in doc.items()}
    places = [(None, k) for k in doc if not isinstance(doc[k], (dict, list))]
    places += [(s, k) for s in SECTIONS if isinstance(doc.get(s), dict) for k in doc[s]]
    places += [(i, k) for i, f in enumerate(doc.get("faults", [])) for k in f]
    section, key = draw(st.sampled_from(places))
    target = doc if section is None else doc[section] if isinstance(section, str) else doc["faults"][section]
    action = draw(st.sampled_from(["replace", "replace", "replace", "delete", "add"]))
    if action == "replace":
        old = target[key]
        same_type = (
            st.one_of(INTS, FLOATS)
            if isinstance(old, (int, float)) and not isinstance(old, bool)
            else TEXT
            if isinstance(old, str)
            else st.booleans()
        )
        target[key] = draw(st.one_of(VALUES, same_type))
    elif action == "delete":
        del target[key]
    else:
        target[draw(KEYS)] = draw(VALUES)
    return doc, draw(st.booleans())


# ------------------------------------------------------------------------ the property


def write(data: str | bytes) -> Path:
    path = Path(_DIR.name) / f"fuzz-{next(_NAMES)}.toml"
    path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return path


def assert_usable(sc: Scenario) -> None:
    """Every value of a loaded scenario is of its type, finite and in range."""
    assert isinstance(sc.name, str) and sc.name and "\n" not in sc.name
    assert isinstance(sc.title, str) and "\n" not in sc.title and isinstance(sc.description, str)
    assert type(sc.duration_s) is float and 0 < sc.duration_s <= 86_400
    assert type(sc.restart_delay_s) is float and 0 <= sc.restart_delay_s <= 600
    assert sc.lanes
    for lane in sc.lanes:
        validate(lane)
        for section in SECTIONS:
            knobs, defaults = getattr(lane, section), type(getattr(lane, section))()
            for f in fields(knobs):
                value = getattr(knobs, f.name)
                assert type(value) is type(getattr(defaults, f.name)), (section, f.name, value)
                if isinstance(value, float):
                    assert math.isfinite(value)
        assert type(lane.seed) is int and 0 <= lane.seed < 2**63
    tl = sc.timeline
    assert set(tl) == set(FIELDS)
    assert sc.fault_count() <= MAX_FAULTS
    check_count(tl)
    instants = ("crash_at", "cold_at", "server_crashes")
    times = [t for f in instants for t in tl[f]] + [e[0] for f in FIELDS if f not in instants for e in tl[f]]
    for t in times:
        assert type(t) is float and 0 <= t < sc.duration_s and math.copysign(1, t) == 1
    for f in ("outages", "slow_db", "slow_cache"):
        for w in tl[f]:
            assert all(type(x) is float and math.isfinite(x) for x in w)
            assert 0 < w[1] <= MAX_WINDOW_S
            if len(w) == 3:
                assert 0 < w[2] <= 10_000
    for _t, op, count in tl["bursts"]:
        assert op in ("read", "write") and type(count) is int and 1 <= count <= MAX_BURST
    for _t, readers in tl["stampedes"]:
        assert type(readers) is int and 2 <= readers <= MAX_READERS
    assert normalize(tl) == (tl, [])  # loaded timelines are already normalized


def check_file(path: Path, kind: str) -> None:
    """``load`` returns a usable scenario or raises ScenarioError ``FILE line N: ...``;
    any other exception fails the test as it propagates."""
    try:
        sc = load(path)
    except ScenarioError as exc:
        message = str(exc)
        lines = path.read_bytes().count(b"\n") + 1
        m = re.match(re.escape(str(path)) + r" line (\d+): \S", message)
        assert m, message
        assert 1 <= int(m.group(1)) <= lines, message
        assert "\n" not in message and "\r" not in message and len(message) < 600, message
        assert "cannot be read as TOML" not in message, message  # the pre-scan found it first, with its line
        TALLY[f"{kind} refused"] += 1
        return
    assert_usable(sc)
    TALLY[f"{kind} loaded"] += 1


@FUZZ
@given(documents(), st.booleans())
def test_generated_documents_load_or_are_refused_in_one_line(doc, inline):
    check_file(write(toml_document(doc, inline)), "generated")


@FUZZ
@given(mutated_builtins())
def test_builtin_scenarios_with_one_value_changed(mutation):
    doc, inline = mutation
    check_file(write(toml_document(doc, inline)), "mutated")


@FUZZ
@given(raw_texts())
def test_raw_text_deep_nesting_and_long_keys(data):
    check_file(write(data), "raw")


def test_a_sample_through_the_real_command_line():
    """15 files, a fixed seed: exit status 0 or 2, one line on stderr, never a traceback."""
    results = Counter()

    @settings(
        max_examples=15,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(st.one_of(documents().map(toml_document), mutated_builtins().map(lambda m: toml_document(*m)), raw_texts()))
    def one(data):
        path = write(data)
        proc = cli("check", str(path), timeout=120)
        assert proc.returncode in (0, 2), proc.stderr
        assert "Traceback" not in proc.stderr
        if proc.returncode == 2:
            assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
            assert f"{path} line " in proc.stderr
        else:
            assert proc.stderr == "" and "ok" in proc.stdout
        results[proc.returncode] += 1
        TALLY[f"command line exit {proc.returncode}"] += 1

    one()
    assert sum(results.values()) == 15


# ------------------------------------------------------------------------ normalize

# Times in eighths of a second: exact in floating point, so coverage can be compared exactly.
EIGHTHS = st.integers(0, 400).map(lambda k: k / 8)
LENGTHS = st.integers(1, 80).map(lambda k: k / 8)


def union(windows) -> list[tuple[Fraction, Fraction]]:
    """Half-open intervals [start, start + duration) merged, with the runner's float end."""
    spans = sorted((Fraction(w[0]), Fraction(w[0] + w[1])) for w in windows)
    out: list[list[Fraction]] = []
    for s, e in spans:
        if out and s <= out[-1][1]:
            out[-1][1] = max(out[-1][1], e)
        else:
            out.append([s, e])
    return [tuple(x) for x in out]


def measure(spans) -> Fraction:
    return sum((e - s for s, e in spans), Fraction(0))


def intersect(a, b) -> list[tuple[Fraction, Fraction]]:
    out = []
    for s1, e1 in a:
        for s2, e2 in b:
            s, e = max(s1, s2), min(e1, e2)
            if s < e:
                out.append((s, e))
    return out


def assert_disjoint(windows, *, touching_ok: bool) -> None:
    ordered = sorted(windows)
    for a, b in zip(ordered, ordered[1:]):
        assert a[0] + a[1] < b[0] or (touching_ok and a[0] + a[1] == b[0]), (a, b)


def run_like_the_runner(windows, kind: str):
    """What the runner does with these windows (runner.Runner: one state per kind; events
    sorted by time, stably, in the order they were scheduled): the spans each ms was on."""
    events = []
    for w in windows:
        events.append((w[0] + 0, "start", w[2] if len(w) == 3 else 1))
        events.append((w[0] + w[1], "end", None))
    events.sort(key=lambda e: e[0])
    on, since = None, None
    result: dict = {}
    for t, what, ms in events:
        if what == "start":
            if kind == "outage" and on is not None:
                continue  # outage_start: ignored while one lasts
            if on is not None:
                result.setdefault(on, []).append((since, t))
            on, since = ms, t
        elif on is not None:
            result.setdefault(on, []).append((since, t))
            on = None
    return {ms: union([(s, e - s) for s, e in v if e > s]) for ms, v in result.items()}


@settings(max_examples=EXAMPLES, deadline=None, database=None)
@given(st.lists(st.tuples(EIGHTHS, LENGTHS), max_size=12))
def test_outages_lose_no_time_and_add_none(outages):
    out, notes = normalize({"outages": outages})
    assert union(out["outages"]) == union(outages)  # every instant, and nothing else
    assert_disjoint(out["outages"], touching_ok=False)
    assert out["outages"] == sorted(out["outages"])
    merged = len(outages) - len(out["outages"])
    assert (merged == 0) == (not notes)
    assert normalize(out) == (out, [])
    # and the runner, given the result, keeps the database down exactly that long
    if out["outages"]:
        assert run_like_the_runner(out["outages"], "outage")[1] == union(outages)


@settings(max_examples=EXAMPLES, deadline=None, database=None)
@given(
    st.lists(st.tuples(EIGHTHS, LENGTHS, st.sampled_from([20.0, 50.0, 80.0])), max_size=10),
    st.sampled_from(["slow_db", "slow_cache"]),
)
def test_slow_windows_merge_same_latency_and_refuse_only_a_different_one(windows, field):
    clash = [
        (a, b)
        for a, b in itertools.combinations(windows, 2)
        if a[2] != b[2] and a[0] < b[0] + b[1] and b[0] < a[0] + a[1]
    ]
    try:
        out, notes = normalize({field: windows})
    except TimelineConflict as exc:
        assert clash, exc  # refused only when two windows with different ms overlap
        first, second = exc.entries
        assert first in windows and second in windows and first[2] != second[2]
        assert first[0] < second[0] + second[1] and second[0] < first[0] + first[1]
        assert "\n" not in str(exc) and f"{second[2]:g} ms" in str(exc) and f"{first[2]:g} ms" in str(exc)
        return
    assert not clash
    result = out[field]
    assert_disjoint(result, touching_ok=True)
    for ms in {w[2] for w in windows}:
        mine = [w for w in result if w[2] == ms]
        assert union(mine) == union([w for w in windows if w[2] == ms])
        assert_disjoint(mine, touching_ok=False)  # same latency: merged when touching
    assert normalize(out) == (out, [])
    assert (len(result) < len(windows)) == bool(notes)
    # the runner, given the result, applies each latency exactly while it was asked for
    applied = run_like_the_runner(result, "slow")
    for ms in {w[2] for w in windows}:
        assert applied.get(ms, []) == union([w for w in windows if w[2] == ms])


@settings(max_examples=EXAMPLES, deadline=None, database=None)
@given(st.lists(st.tuples(st.floats(0, 86_400), st.floats(0.001, 3600)), max_size=8))
def test_outages_at_any_float_time_lose_nothing(outages):
    """Arbitrary floats: a merged end is not always reachable as start + duration; then the
    window lasts a few 1e-16 s longer, never shorter."""
    try:
        out, _ = normalize({"outages": outages})
    except TimelineConflict as exc:
        assert "more than 3600 s" in str(exc)
        assert any(Fraction(e) - Fraction(s) > MAX_WINDOW_S for s, e in union(outages))
        return
    given_, got = union(outages), union(out["outages"])
    assert intersect(given_, got) == given_  # no instant lost
    extra = measure(got) - measure(given_)
    assert 0 <= extra <= sum(Fraction(math.ulp(e)) * 4 for _, e in got)
    assert_disjoint(out["outages"], touching_ok=False)


@settings(max_examples=EXAMPLES, deadline=None, database=None)
@given(
    st.lists(EIGHTHS, max_size=8),
    st.lists(EIGHTHS, max_size=8),
    st.lists(
        st.tuples(st.sampled_from([1.0, 2.0, 3.0]), st.sampled_from(["read", "write"]), st.integers(1, 6_000_000)),
        max_size=6,
    ),
    st.lists(st.tuples(st.sampled_from([1.0, 2.0, 3.0]), st.integers(2, 300)), max_size=6),
)
def test_instant_faults_are_merged_or_kept(crashes, colds, bursts, stampedes):
    """Crashes and cold caches at one instant are one; bursts and stampedes are all kept
    (the lab queues bursts; each stampede has its own readers), in time order."""
    out, notes = normalize({"crash_at": crashes, "cold_at": colds, "bursts": bursts, "stampedes": stampedes})
    assert out["crash_at"] == sorted(set(crashes)) and out["cold_at"] == sorted(set(colds))
    assert Counter(out["bursts"]) == Counter(bursts) and Counter(out["stampedes"]) == Counter(stampedes)
    assert [b[0] for b in out["bursts"]] == sorted(b[0] for b in bursts)
    assert [x[0] for x in out["stampedes"]] == sorted(x[0] for x in stampedes)
    merges = (len(crashes) - len(set(crashes))) + (len(colds) - len(set(colds)))
    assert bool(notes) == bool(merges)
    assert normalize(out) == (out, [])


def test_the_notes_and_refusals_read_as_asked():
    out, notes = normalize({"outages": [(1.0, 2.0), (2.0, 3.0)]})
    assert out["outages"] == [(1.0, 4.0)]
    assert notes == ["outages 1-3 s and 2-5 s overlap: merged into one outage 1-5 s"]
    _, notes = normalize({"outages": [(1.0, 2.0), (3.0, 1.0)]})
    assert notes == ["outages 1-3 s and 3-4 s touch: merged into one outage 1-4 s"]
    out, notes = normalize({"slow_db": [(1.0, 2.0, 50.0), (3.0, 2.0, 80.0)]})  # a step: kept
    assert out["slow_db"] == [(1.0, 2.0, 50.0), (3.0, 2.0, 80.0)] and notes == []
    with pytest.raises(TimelineConflict, match=r"^slow-cache 2-5 s at 80 ms overlaps slow-cache 1-3 s at 50 ms"):
        normalize({"slow_cache": [(2.0, 3.0, 80.0), (1.0, 2.0, 50.0)]})
    with pytest.raises(TimelineConflict, match="more than 3600 s"):
        normalize({"outages": [(0.0, 3600.0), (3000.0, 3600.0)]})
    out, notes = normalize({"bursts": [(1.0, "read", 5), (1.0, "write", 5)]})  # both run, one after the other
    assert out["bursts"] == [(1.0, "read", 5), (1.0, "write", 5)] and notes == []
    with pytest.raises(ValueError, match="not timeline fields"):
        normalize({"outage": []})


def test_check_count_allows_max_faults_and_no_more():
    assert check_count({"crash_at": [1.0] * 500, "cold_at": [2.0] * 500}) == MAX_FAULTS
    with pytest.raises(ValueError, match="1,001 faults in one run: at most 1,000"):
        check_count({"crash_at": [1.0] * 500, "cold_at": [2.0] * 500, "stampedes": [(1.0, 2)]})
