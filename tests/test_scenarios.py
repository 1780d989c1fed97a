"""Scenario files: the built-in ones load, and a broken one names its file and line."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from helpers import assert_bad_input, cli

from cachestudio.engine.scenario import ScenarioError, builtin_dir, builtin_scenarios, find, load, timeline_toml


def test_every_builtin_scenario_loads_and_is_listed():
    names = {p.stem for p in builtin_dir().glob("*.toml")}
    assert len(names) >= 4
    loaded = builtin_scenarios()
    assert {sc.name for sc in loaded} == names  # the name inside matches the file name
    for sc in loaded:
        assert sc.title and sc.description
    out = cli("scenarios")
    assert out.returncode == 0
    for name in names:
        assert name in out.stdout


def test_scenario_values_reach_the_lanes():
    sc = load(find("crash-the-node"))
    assert [c.strategy for c in sc.lanes] == ["cache-aside", "write-through", "write-behind"]
    assert sc.crash_at == [8.5]
    assert all(c.write_behind.flush_interval_s == 1.0 and c.seed == 7 for c in sc.lanes)
    outage = load(find("db-outage"))
    assert outage.outages == [(6.0, 4.0)]


@pytest.mark.parametrize(
    "text, line, words",
    [
        ("seed = 7\n[workload]\nrate = 10\nread_ration = 0.5\n", 4, ["unknown key 'read_ration'", "[workload]"]),
        ("seed = 7\n\n[workload]\nrate = -10\n", 4, ["rate"]),
        ("[cache]\npersistent = 'yes'\n", 2, ["persistent", "true or false"]),
        ("duration = 5\n[[faults]]\nat = 1\nkind = 'crash'\n[[faults]]\nat = 99\nkind = 'crash'\n", 6, ["fault time"]),
        ("[[faults]]\nat = 1\nkind = 'meteor'\n", 3, ["meteor"]),
        ("[[faults]]\nat = 1\nkind = 'stampede'\nreaders = 1\n", 4, ["stampede readers", "2"]),
        ("[[faults]]\nat = 1\nkind = 'slow-db'\nduration = 1\nms = 'lots'\n", 5, ["slow-db ms"]),
        ("[[faults]]\nat = 1\nkind = 'burst'\nop = 'delete'\n", 4, ["op must be read or write"]),
        ("[[faults]]\nat = 1\nkind = 'cold'\nduration = 3\n", 4, ["unknown key 'duration'"]),
        ("[[faults]]\nat = 1\nkind = 'outage'\n", 1, ["outage duration"]),
        ("strategy = 'write-around'\n", 1, ["write-around"]),
        ("colour = 'blue'\n", 1, ["unknown key 'colour'"]),
        ("seed = \n", 1, ["line 1"]),
    ],
)
def test_broken_scenario_names_file_and_line(tmp_path, text, line, words):
    path = tmp_path / "broken.toml"
    path.write_text(text)
    with pytest.raises(ScenarioError) as info:
        load(path)
    message = str(info.value)
    assert str(path) in message and f"line {line}" in message, message
    for word in words:
        assert word in message
    proc = cli("check", str(path))
    assert_bad_input(proc, f"line {line}")
    assert path.read_text() == text  # checking never changes the file


#: Values of the wrong type, not finite, beyond 64 bits, nested too deep; faults that conflict.
BAD_VALUES = [
    ("duration = 5\n[[faults]]\nat = 1\nkind = 'burst'\ncount = inf\n", 5, ["burst count", "whole number", "inf"]),
    ("duration = 5\n[[faults]]\nat = 1\nkind = 'stampede'\nreaders = nan\n", 5, ["stampede readers", "nan"]),
    ("duration = 5\n[[faults]]\nat = 1\nkind = 'burst'\ncount = 1.5\n", 5, ["whole number"]),
    ("[[faults]]\nat = nan\nkind = 'crash'\n", 2, ["fault time", "nan"]),
    ("[[faults]]\nat = 1979-05-27\nkind = 'crash'\n", 2, ["fault time", "a date"]),
    ("[[faults]]\nat = 1\nkind = 'slow-db'\nduration = 1\nms = inf\n", 5, ["slow-db ms", "inf"]),
    ("duration = 5\nfaults = [1, 2]\n", 2, ["each fault must be a table", "got 1"]),
    ("faults = 'crash'\n", 1, ["faults must be an array of tables"]),
    ("[[faults]]\nkind = ['crash']\nat = 1\n", 2, ["fault kind", "an array"]),
    ("[[faults]]\nat = 1\n", 1, ["fault kind", "got nothing"]),
    ("[[faults]]\nat = 1\nkind = 'crash'\n[faults.extra]\nx = 1\n", 4, ["unknown key 'extra'"]),
    ("a = " + "[" * 5000 + "]" * 5000 + "\n", 1, ["nested more than 32 deep"]),
    ("name = 'x'\n[workload]\nrate = " + "{a = " * 100 + "1" + "}" * 100 + "\n", 3, ["nested more than 32 deep"]),
    ("a" + ".a" * 50_000 + " = 1\n", 1, ["dotted key of more than 16 parts"]),
    ("\n\nseed = " + "9" * 5000 + "\n", 3, ["a number of more than 100 digits"]),
    ("seed = 0x" + "f" * 5000 + "\n", 1, ["seed", "a whole number of 20000 bits"]),
    ("seed = 1180591620717411303424\n", 1, ["seed", "a whole number of 71 bits"]),
    ("seed = 1.0\n", 1, ["seed must be a whole number"]),
    ("name = 5\n", 1, ["name must be a string, got 5"]),
    ("title = [1]\n", 1, ["title must be a string, got an array"]),
    ("description = {a = 1}\n", 1, ["description must be a string, got a table"]),
    ("name = ''\n", 1, ["name must not be empty"]),
    ('title = "one\\ntwo"\n', 1, ["title must be one line"]),
    ("name = '" + "n" * 65 + "'\n", 1, ["name must be at most 64 characters"]),
    ("strategy = 3\n", 1, ["strategy must be one of", "got 3"]),
    ("workload = 'x'\n", 1, ["[workload] must be a table, got 'x'"]),
    ("[workload]\nrate = {a = 1}\n", 2, ["rate must be a number, got a table"]),
    ("[workload]\nrate = 1e400\n", 2, ["rate", "inf"]),
    ("[workload]\nrate = 100000000000000000000000000000000000000\n", 2, ["rate", "finite number"]),
    ("[workload]\nrate = true\n", 2, ["rate must be a number, got true"]),
    ("[workload]\nkeys = 1.5\n", 2, ["keys must be a whole number, got 1.5"]),
    ("[workload]\nkeys = 2.0\n", 2, ["keys must be a whole number, got 2.0"]),
    ("[workload]\nkeys = '100'\n", 2, ["keys must be a whole number, got '100'"]),
    ("[workload]\ndistribution = 1\n", 2, ["distribution must be a string"]),
    ("[workload]\ndistribution = '" + "z" * 100_000 + "'\n", 2, ["distribution must be one of", "..."]),
    ("[cache]\npersistent = 1\n", 2, ["persistent must be true or false, got 1"]),
    ("[latency]\ndb_read_ms = -inf\n", 2, ["db_read_ms", "-inf"]),
    ("[store]\ntimeout_ms = nan\n", 2, ["timeout_ms", "nan"]),
    ("duration = inf\n", 1, ["duration", "inf"]),
    ("duration = 0\n", 1, ["duration must be a number of seconds > 0"]),
    ("restart_delay = nan\n", 1, ["restart_delay", "nan"]),
    ("restart_delay = '1'\n", 1, ["restart_delay", "'1'"]),
    ("title = 'x'\nname = \"" + "x" * 10_000 + "\n", 2, ["line 2"]),  # a tomllib error, with its line
    # overlapping faults that cannot all happen: the line of the later one in the file
    (
        "duration = 10\n[[faults]]\nat = 2\nkind = 'slow-db'\nduration = 3\nms = 80\n"
        "[[faults]]\nat = 1\nkind = 'slow-db'\nduration = 2\nms = 50\n",
        8,
        ["slow-db 2-5 s at 80 ms overlaps slow-db 1-3 s at 50 ms", "same ms"],
    ),
    (
        "duration = 9000\n[[faults]]\nat = 0\nkind = 'outage'\nduration = 3600\n"
        "[[faults]]\nat = 3000\nkind = 'outage'\nduration = 3600\n",
        7,
        ["merged they would last 6600 s"],
    ),
]


@pytest.mark.parametrize("text, line, words", BAD_VALUES)
def test_bad_values_name_file_and_line(tmp_path, text, line, words):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ScenarioError) as info:
        load(path)
    message = str(info.value)
    assert message.startswith(f"{path} line {line}: "), message
    assert "\n" not in message and len(message) < 400, message
    for word in words:
        assert word in message, message


@pytest.mark.parametrize(
    "first_word",
    [
        "burst count",
        "each fault must be a table",
        "nested more than 32 deep",
        "dotted key of more than",
        "slow-db 2-5 s at 80 ms",
    ],
)
def test_bad_values_on_the_command_line(tmp_path, first_word):
    """A few of them through ``cachestudio check`` and ``run``: exit 2, one line."""
    text, line, words = next(case for case in BAD_VALUES if case[2][0].startswith(first_word))
    path = tmp_path / "bad.toml"
    path.write_text(text)
    assert_bad_input(cli("check", str(path)), f"line {line}", *words)
    if first_word == "burst count":
        assert_bad_input(cli("run", "--scenario", str(path), "--duration", "1"), f"line {line}", *words)


def test_check_accepts_a_good_file_and_refuses_a_missing_one(tmp_path):
    ok = cli("check", str(builtin_dir() / "db-outage.toml"))
    assert ok.returncode == 0 and "ok" in ok.stdout
    assert_bad_input(cli("check", str(tmp_path / "absent.toml")), "does not exist")
    assert_bad_input(cli("run", "--scenario", "no-such-scenario"), "no-such-scenario")


def test_every_fault_kind_loads_and_saves_back(tmp_path):
    from cachestudio.engine.scenario import load, timeline_toml

    text = """duration = 30
[[faults]]
at = 1
kind = "crash"
[[faults]]
at = 2
kind = "outage"
duration = 3
[[faults]]
at = 6
kind = "slow-db"
duration = 2
ms = 80
[[faults]]
at = 9
kind = "slow-cache"
duration = 1
[[faults]]
at = 11
kind = "cold"
[[faults]]
at = 12
kind = "burst"
op = "read"
count = 500
[[faults]]
at = 14
kind = "stampede"
readers = 64
[[faults]]
at = 16
kind = "crash-node"
node = 1
[[faults]]
at = 18
kind = "crash-cache-server"
"""
    first = tmp_path / "all.toml"
    first.write_text(text)
    sc = load(first)
    assert sc.timeline == {
        "crash_at": [1.0],
        "outages": [(2.0, 3.0)],
        "slow_db": [(6.0, 2.0, 80.0)],
        "slow_cache": [(9.0, 1.0, 20.0)],
        "cold_at": [11.0],
        "bursts": [(12.0, "read", 500)],
        "stampedes": [(14.0, 64)],
        "node_crashes": [(16.0, 1)],
        "server_crashes": [18.0],
    }
    again = tmp_path / "again.toml"
    again.write_text("duration = 30\n" + "\n".join(timeline_toml(sc.timeline)))
    assert load(again).timeline == sc.timeline


def test_numbers_take_their_knobs_type(tmp_path):
    path = tmp_path / "types.toml"
    path.write_text(
        "seed = 3\nduration = 5\nrestart_delay = 0\n[workload]\nrate = 10\nkeys = 50\nread_ratio = 1\n"
        "[latency]\ndb_read_ms = -0.0\n[[faults]]\nat = -0.0\nkind = 'crash'\n"
    )
    sc = load(path)
    w = sc.lanes[0].workload
    assert type(w.rate) is float and w.rate == 10.0 and type(w.keys) is int and type(w.read_ratio) is float
    assert type(sc.duration_s) is float and type(sc.restart_delay_s) is float
    assert str(sc.lanes[0].latency.db_read_ms) == "0.0" and str(sc.crash_at[0]) == "0.0"  # no "-0"


def test_at_most_max_faults(tmp_path):
    from cachestudio.engine.timeline import MAX_FAULTS

    one = "[[faults]]\nat = 1\nkind = 'cold'\n"
    ok = tmp_path / "ok.toml"
    ok.write_text("".join(f"[[faults]]\nat = {i / 100}\nkind = 'cold'\n" for i in range(MAX_FAULTS)))
    assert load(ok).fault_count() == MAX_FAULTS
    many = tmp_path / "many.toml"
    many.write_text("duration = 5\n" + one * 30_000)  # 30,000 faults, under 1 MiB
    expected = rf"^{re.escape(str(many))} line {3 + 3 * MAX_FAULTS}: 30,000 faults; at most 1,000 in one scenario$"
    with pytest.raises(ScenarioError, match=expected):
        load(many)


def test_files_too_large_are_not_read(tmp_path):
    from cachestudio.engine.scenario import MAX_FILE_BYTES

    big = tmp_path / "big.toml"
    padding = "# padding\n"
    text = "seed = 3\n" + padding * ((MAX_FILE_BYTES - 9) // len(padding))
    big.write_text(text + "#" * (MAX_FILE_BYTES - len(text)))
    assert big.stat().st_size == MAX_FILE_BYTES and load(big).seed == 3  # 1 MiB is still read
    with big.open("a") as fh:
        fh.write("\n")
    with pytest.raises(ScenarioError, match=rf"^scenario file {re.escape(str(big))} is larger than 1 MiB: not read"):
        load(big)


def test_only_regular_files_are_read_and_nothing_blocks(tmp_path):
    import os
    import subprocess
    import sys

    good = builtin_dir() / "db-outage.toml"
    link = tmp_path / "link.toml"
    link.symlink_to(good)
    assert load(link).name == "db-outage"  # a link to a regular file is fine
    folder = tmp_path / "folder.toml"
    folder.mkdir()
    (tmp_path / "dirlink.toml").symlink_to(folder)
    fifo = tmp_path / "pipe.toml"
    os.mkfifo(fifo)
    cases = [
        (folder, "is a directory"),
        (tmp_path / "dirlink.toml", "is a directory"),
        (fifo, "is a named pipe (FIFO)"),
        (Path("/dev/zero"), "is a device"),
        (tmp_path / "dangling.toml", "does not exist"),
    ]
    (tmp_path / "dangling.toml").symlink_to(tmp_path / "nowhere.toml")
    for path, words in cases:
        with pytest.raises(ScenarioError, match=rf"^scenario file {re.escape(str(path))} {re.escape(words)}"):
            load(path)
        # a FIFO with no writer would block a reader forever: the timeout proves it does not
        proc = subprocess.run(
            [sys.executable, "-m", "cachestudio", "check", str(path)],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=Path(__file__).resolve().parents[1],
        )
        assert_bad_input(proc, words)


def test_text_encodings(tmp_path):
    bom = tmp_path / "bom.toml"
    bom.write_bytes(b"\xef\xbb\xbfseed = 4\n")
    assert load(bom).seed == 4  # some editors write a byte order mark
    latin = tmp_path / "latin.toml"
    latin.write_bytes(b"seed = 4\ntitle = 'caf\xe9'\n")
    with pytest.raises(ScenarioError, match=rf"^{re.escape(str(latin))} line 2: not UTF-8 text \(byte 0xe9\)"):
        load(latin)


def test_overlapping_faults_are_merged_and_said(tmp_path):
    path = tmp_path / "overlap.toml"
    path.write_text(
        "duration = 20\n"
        "[[faults]]\nat = 1\nkind = 'outage'\nduration = 2\n"
        "[[faults]]\nat = 2\nkind = 'outage'\nduration = 3\n"
        "[[faults]]\nat = 6\nkind = 'slow-db'\nduration = 2\nms = 80\n"
        "[[faults]]\nat = 7\nkind = 'slow-db'\nduration = 2\nms = 80\n"
        "[[faults]]\nat = 9\nkind = 'slow-db'\nduration = 1\nms = 10\n"  # a step: kept
        "[[faults]]\nat = 4\nkind = 'crash'\n[[faults]]\nat = 4\nkind = 'crash'\n"
        "[[faults]]\nat = 5\nkind = 'burst'\ncount = 100\n[[faults]]\nat = 5\nkind = 'burst'\n"
    )
    sc = load(path)
    assert sc.outages == [(1.0, 4.0)]
    assert sc.timeline["slow_db"] == [(6.0, 3.0, 80.0), (9.0, 1.0, 10.0)]
    # bursts (and stampedes) at one instant are all kept: the lab queues one behind the other
    assert sc.crash_at == [4.0] and sc.timeline["bursts"] == [(5.0, "write", 100), (5.0, "write", 2000)]
    assert sc.notes == [
        "2 crash faults at 4 s: merged into one (a dead node cannot die twice at once)",
        "outages 1-3 s and 2-5 s overlap: merged into one outage 1-5 s",
        "slow-db windows 6-8 s and 7-9 s at 80 ms overlap: merged into one slow-db window 6-9 s at 80 ms",
    ]
    assert sc.fault_count() == 6
    again = tmp_path / "again.toml"  # saved back (the window's "save scenario"), it loads unchanged
    again.write_text("duration = 20\n" + "\n".join(timeline_toml(sc.timeline)))
    assert load(again).timeline == sc.timeline and load(again).notes == []
    for builtin in builtin_scenarios():
        assert builtin.notes == []  # the built-in scenarios need no merging
