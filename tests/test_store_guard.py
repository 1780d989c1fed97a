"""The store's version guard (DESIGN.md §3), against a real SQLite file.

A store write never replaces a newer version with an older one, so replays and
reordering are harmless: whatever order writes arrive in, through ``Store.write`` or
``Store.write_batch``, the row of each key ends up holding the highest version written
for it, with that write's value.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cachestudio.engine.backends import Store, store_versions
from cachestudio.engine.config import ConfigError, Latency, StoreKnobs

KEYS = ("k0", "k1", "k2", "ключ", "a|b")
SETTINGS = settings(max_examples=60, deadline=None)


# ----------------------------------------------------------------------------- helpers


@pytest.fixture(scope="module")
def fresh_path(tmp_path_factory):
    """A function returning a new, absent store path for every Hypothesis example.

    ``tmp_path`` is function-scoped (one directory for all examples of a test), so each
    example gets its own directory from the session-scoped factory instead.
    """
    return lambda: tmp_path_factory.mktemp("store") / "store.db"


def open_store(path: Path) -> Store:
    return Store(path, StoreKnobs(), Latency())


def value_of(key: str, version: int) -> str:
    """The value a write of (key, version) carries: a replay carries the same one."""
    return f"{key}@v{version}"


def rows(path: Path) -> dict[str, tuple[int, str, float]]:
    """Every row of the items table, read with plain sqlite3."""
    conn = sqlite3.connect(str(path))
    try:
        return {k: (v, val, t) for k, v, val, t in conn.execute("SELECT key, version, value, updated_at FROM items")}
    finally:
        conn.close()


def values(path: Path) -> dict[str, str]:
    return {k: val for k, (_, val, _) in rows(path).items()}


# ----------------------------------------------------------------------------- strategies

versions = st.one_of(st.integers(0, 20), st.integers(0, 2**63 - 1))
pairs = st.tuples(st.sampled_from(KEYS), versions)
single = st.tuples(st.just("write"), pairs)
batch = st.tuples(st.just("batch"), st.lists(pairs, max_size=8))


@st.composite
def write_plans(draw):
    """Writes and batches, then replays of some of them inserted anywhere."""
    ops = draw(st.lists(st.one_of(single, batch), min_size=1, max_size=20))
    for _ in range(draw(st.integers(0, 6))):
        again = ops[draw(st.integers(0, len(ops) - 1))]
        ops.insert(draw(st.integers(0, len(ops))), again)
    return ops


def apply(store: Store, op) -> bool | None:
    kind, arg = op
    if kind == "write":
        key, version = arg
        return store.write(key, version, value_of(key, version))
    store.write_batch([(k, v, value_of(k, v)) for k, v in arg])
    return None


def written(op) -> list[tuple[str, int]]:
    kind, arg = op
    return [arg] if kind == "write" else list(arg)


# ----------------------------------------------------------------------------- properties


@SETTINGS
@given(plan=write_plans())
def test_store_holds_max_version_and_its_value(fresh_path, plan):
    path = fresh_path()
    store = open_store(path)
    model: dict[str, int] = {}
    try:
        for op in plan:
            before = dict(model)
            changed = apply(store, op)
            for key, version in written(op):
                model[key] = max(model.get(key, version), version)
            held = store_versions(path)
            # Step by step: every key holds the max so far; no version ever went down.
            assert held == model
            for key, version in before.items():
                assert held[key] >= version
            if op[0] == "write":
                key, version = op[1]
                assert changed == (key not in before or version > before[key])
    finally:
        store.close()
    assert store_versions(path) == model
    assert values(path) == {k: value_of(k, v) for k, v in model.items()}
    assert store.transactions == len(plan)


@SETTINGS
@given(plan=write_plans(), data=st.data())
def test_older_version_never_replaces_newer(fresh_path, plan, data):
    """Whatever is written after the max version of a key, the row stays put."""
    path = fresh_path()
    store = open_store(path)
    try:
        for op in plan:
            apply(store, op)
        snapshot = rows(path)
        # Older (or equal) versions of keys already present, one by one and batched.
        older = [(k, data.draw(st.integers(0, v), label=f"older {k}")) for k, (v, _, _) in snapshot.items()]
        for key, version in older:
            assert store.write(key, version, "older value") is False
        store.write_batch([(k, v, "older value") for k, v in older])
        assert rows(path) == snapshot
    finally:
        store.close()


@SETTINGS
@given(plan=write_plans(), replay=st.lists(pairs, max_size=10))
def test_replaying_a_batch_changes_nothing(fresh_path, plan, replay):
    path = fresh_path()
    store = open_store(path)
    try:
        for op in plan:
            apply(store, op)
        batch_rows = [(k, v, value_of(k, v)) for k, v in replay]
        store.write_batch(batch_rows)
        once = rows(path)
        store.write_batch(batch_rows)
        assert rows(path) == once  # updated_at included: no row was rewritten
        for key, version, value in batch_rows:
            assert store.write(key, version, value) is False
        assert rows(path) == once
    finally:
        store.close()


@SETTINGS
@given(plan=write_plans(), data=st.data())
def test_order_of_writes_does_not_matter(fresh_path, plan, data):
    """Any permutation of the same writes ends in the same versions and values."""
    shuffled = data.draw(st.permutations(plan), label="shuffled")
    ends = []
    for order in (plan, shuffled):
        path = fresh_path()
        store = open_store(path)
        try:
            for op in order:
                apply(store, op)
        finally:
            store.close()
        ends.append((store_versions(path), values(path)))
    assert ends[0] == ends[1]


@SETTINGS
@given(plan=write_plans())
def test_reopened_store_keeps_the_guard(fresh_path, plan):
    """A second Store on the same file (as after a lab restart) sees and guards the rows."""
    path = fresh_path()
    half = len(plan) // 2
    model: dict[str, int] = {}
    for part in (plan[:half], plan[half:]):
        store = open_store(path)
        try:
            for op in part:
                apply(store, op)
                for key, version in written(op):
                    model[key] = max(model.get(key, version), version)
            for key, version in model.items():
                assert store.read(key) == (version, value_of(key, version))
        finally:
            store.close()
    assert store_versions(path) == model


# ----------------------------------------------------------------------------- examples


def test_fresh_file_gets_the_items_table(tmp_path):
    path = tmp_path / "store.db"
    open_store(path).close()
    conn = sqlite3.connect(str(path))
    try:
        info = conn.execute("PRAGMA table_info(items)").fetchall()
    finally:
        conn.close()
    # (cid, name, type, notnull, default, pk)
    assert [row[1] for row in info] == ["key", "version", "value", "updated_at"]
    assert [row[1] for row in info if row[5]] == ["key"]
    types = {row[1]: row[2].upper() for row in info}
    assert types == {"key": "TEXT", "version": "INTEGER", "value": "TEXT", "updated_at": "REAL"}
    assert {row[1]: row[3] for row in info}["version"] == 1  # NOT NULL


def test_empty_file_is_taken_as_a_new_store(tmp_path):
    path = tmp_path / "store.db"
    path.write_bytes(b"")
    store = open_store(path)
    try:
        assert store.write("k", 1, "x") is True
    finally:
        store.close()
    assert store_versions(path) == {"k": 1}


def test_existing_store_is_reopened_with_its_rows(tmp_path):
    path = tmp_path / "store.db"
    store = open_store(path)
    store.write_batch([("a", 3, "a3"), ("b", 1, "b1")])
    store.close()
    store = open_store(path)
    try:
        assert store.read("a") == (3, "a3")
        assert store.read("missing") is None
    finally:
        store.close()


@pytest.mark.parametrize(
    "content",
    [
        b"hello world, not sqlite",
        b"SQLite format 3\x00" + b"garbage" * 100,  # the right magic, then junk
    ],
)
def test_file_that_is_not_sqlite_is_refused_untouched(tmp_path, content):
    path = tmp_path / "store.db"
    path.write_bytes(content)
    with pytest.raises(ConfigError):
        open_store(path)
    assert path.read_bytes() == content
    assert sorted(p.name for p in tmp_path.iterdir()) == ["store.db"]  # no -wal, -shm, -journal


def test_directory_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="not a file"):
        open_store(tmp_path)


@pytest.mark.parametrize(
    "ddl",
    [
        "CREATE TABLE items (key TEXT PRIMARY KEY, version INTEGER NOT NULL, value TEXT)",
        "CREATE TABLE items (key TEXT PRIMARY KEY, version INTEGER NOT NULL, value TEXT, updated_at REAL, extra TEXT)",
        "CREATE TABLE items (key TEXT PRIMARY KEY, ver INTEGER NOT NULL, value TEXT, updated_at REAL)",
        "CREATE TABLE items (key TEXT, version INTEGER NOT NULL, value TEXT, updated_at REAL)",
        "CREATE TABLE items (key TEXT, version INTEGER PRIMARY KEY, value TEXT, updated_at REAL)",
        "CREATE TABLE items (key TEXT, version INTEGER NOT NULL, value TEXT, updated_at REAL, "
        "PRIMARY KEY (key, version))",
    ],
    ids=["missing-column", "extra-column", "renamed-column", "no-pk", "pk-version", "pk-composite"],
)
def test_items_table_of_another_shape_is_refused(tmp_path, ddl):
    path = tmp_path / "store.db"
    conn = sqlite3.connect(str(path))
    conn.execute(ddl)
    conn.execute("CREATE TABLE other (x)")
    conn.commit()
    conn.close()
    with pytest.raises(ConfigError, match="another shape"):
        open_store(path)
    conn = sqlite3.connect(str(path))
    try:  # the foreign table is still there as it was
        assert conn.execute("SELECT sql FROM sqlite_master WHERE name = 'items'").fetchone()[0] == ddl
    finally:
        conn.close()


def test_refused_sqlite_file_is_left_unchanged(tmp_path):
    """The shape is checked read-only, before any pragma: no WAL conversion, no side files."""
    path = tmp_path / "store.db"
    conn = sqlite3.connect(str(path))
    conn.execute("CREATE TABLE items (key TEXT PRIMARY KEY, version INTEGER NOT NULL, value TEXT)")
    conn.commit()
    conn.close()
    before = path.read_bytes()
    with pytest.raises(ConfigError, match="another shape"):
        open_store(path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["store.db"]


def test_items_table_with_text_version_is_refused(tmp_path):
    """Same names, wrong type: with version TEXT the guard would compare text ('10' < '9')."""
    path = tmp_path / "store.db"
    conn = sqlite3.connect(str(path))
    conn.execute("CREATE TABLE items (key TEXT PRIMARY KEY, version TEXT, value TEXT, updated_at REAL)")
    conn.commit()
    conn.close()
    before = path.read_bytes()
    with pytest.raises(ConfigError, match="another shape"):
        open_store(path)
    assert path.read_bytes() == before


@pytest.mark.parametrize("name", ["run#1", "run?1", "run%201"])
def test_store_versions_with_uri_characters_in_path(tmp_path, name):
    """'#', '?' and '%' in a folder name must not cut or alter the read-only URI."""
    folder = tmp_path / name
    folder.mkdir()
    path = folder / "store.db"
    store = open_store(path)
    store.write("k", 1, "x")
    store.close()
    assert store_versions(path) == {"k": 1}
    reopened = open_store(path)  # the read-only shape check goes through the same URI
    reopened.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]  # no stray file beside it
