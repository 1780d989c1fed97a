"""Issue 26 items 1-3: no output destroys an input or another output, and a scenario's name is
never a path. Every (command, output option) that could hit a file the command reads is tried
with every way of naming that file (the same path, ./path, a symlink, a chain of symlinks, a
hard link, and standard output redirected onto it as ``-``, ``/dev/stdout``,
``/proc/self/fd/1``); each is refused in one line with exit status 2, nothing printed on
standard output, the input byte-identical (sha256) and the folder as it was. The witness is
the file system, not the command's word."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from helpers import CLI, ROOT, assert_bad_input, cli
from hypothesis import given, settings
from hypothesis import strategies as st

from cachestudio.engine.config import ConfigError
from cachestudio.engine.scenario import ScenarioError, load
from cachestudio.lessondocs import under

SCENARIO = 'name = "s"\nduration = 1\nseed = 3\n'

#: (command line with IN for the input and OUT for the output, what the input is)
SLOTS = [
    (["report", "IN", "--html", "OUT"], "recording"),
    (["replay", "IN", "--json", "OUT"], "recording"),
    (["bench", "--time-machine", "--recording", "IN", "--json", "OUT"], "recording"),
    (["bench", "--time-machine", "--recording", "IN", "--chart", "OUT"], "recording"),
    (["run", "--scenario", "IN", "--json", "OUT"], "scenario"),
    (["run", "--scenario", "IN", "--history", "OUT"], "scenario"),
    (["run", "--scenario", "IN", "--record", "OUT"], "scenario"),
]
#: How the output names the input: (name, how stdout is redirected onto the input or None).
ALIASES = ["same", "dot", "symlink", "chain", "hardlink", "-", "/dev/stdout", "/proc/self/fd/1"]


@pytest.fixture(scope="module")
def recording(tmp_path_factory) -> bytes:
    d = tmp_path_factory.mktemp("rec")
    proc = cli("run", "--strategy", "cache-aside", "--duration", "1", "--record", str(d / "r.csrec"))
    assert proc.returncode == 0, proc.stderr
    return (d / "r.csrec").read_bytes()


def _files(d: Path) -> dict[str, str]:
    return {
        str(p.relative_to(d)): (
            os.readlink(p) if p.is_symlink() else hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
        )
        for p in sorted(d.rglob("*"))
    }


def _alias(d: Path, name: str, alias: str) -> str:
    if alias == "same":
        return name
    if alias == "dot":
        return f"./{name}"
    if alias == "symlink":
        os.symlink(name, d / "link")
        return "link"
    if alias == "chain":
        os.symlink(name, d / "link1")
        os.symlink("link1", d / "link2")
        return "link2"
    if alias == "hardlink":
        os.link(d / name, d / "hard")
        return "hard"
    return alias  # -, /dev/stdout, /proc/self/fd/1: stdout is the input (opened for append)


@pytest.mark.parametrize("alias", ALIASES)
@pytest.mark.parametrize("slot", range(len(SLOTS)))
def test_an_output_never_replaces_an_input(tmp_path, recording, slot, alias):
    import subprocess

    argv, kind = SLOTS[slot]
    name = "in.csrec" if kind == "recording" else "in.toml"
    (tmp_path / name).write_bytes(recording if kind == "recording" else SCENARIO.encode())
    out = _alias(tmp_path, name, alias)
    before = _files(tmp_path)
    args = [a.replace("IN", name).replace("OUT", out) for a in argv]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    if alias in ("-", "/dev/stdout", "/proc/self/fd/1"):
        with open(tmp_path / name, "ab") as stdout:
            proc = subprocess.run(
                [*CLI, *args], cwd=tmp_path, stdout=stdout, stderr=subprocess.PIPE, text=True, env=env, timeout=60
            )
        proc.stdout = ""
    else:
        proc = subprocess.run([*CLI, *args], cwd=tmp_path, capture_output=True, text=True, env=env, timeout=60)
    assert_bad_input(proc, "is the input", name)
    assert proc.stdout == ""  # no "running" line, no byte of output
    assert _files(tmp_path) == before  # the input byte-identical, nothing created


#: Two outputs of one run naming one target.
PAIRS = [("--record", "--json"), ("--record", "--history"), ("--json", "--history"), ("--history", "--record")]


@pytest.mark.parametrize("how", ["same", "symlink", "-", "-/dev/stdout", "/proc/self/fd/1-"])
@pytest.mark.parametrize("pair", PAIRS)
def test_two_outputs_never_share_a_target(tmp_path, pair, how):
    first, second = pair
    if how == "same":
        a = b = "x"
    elif how == "symlink":
        os.symlink("x", tmp_path / "l")  # dangling: x is yet to be made
        a, b = "x", "l"
    elif how == "-":
        a = b = "-"
    else:
        a, b = how.split("-", 1)[0] or "-", how.split("-", 1)[1] or "-"
    before = _files(tmp_path)
    proc = cli("run", "--strategy", "cache-aside", "--duration", "1", first, a, second, b, cwd=tmp_path)
    assert_bad_input(proc, first, second)
    assert proc.stdout == ""
    assert _files(tmp_path) == before


def test_no_output_inside_the_run_folder(tmp_path):
    before = _files(tmp_path)
    proc = cli("run", "--duration", "1", "--run-dir", "D", "--record", "D/x.csrec", cwd=tmp_path)
    assert_bad_input(proc, "inside --run-dir")
    assert proc.stdout == "" and _files(tmp_path) == before


PATHY = st.one_of(
    st.sampled_from(["/any/where/pwn", "../../x", "..", ".", "a/b", "/", "a\\b", "x" * 65, ".hidden", "a b"]),
    st.text(alphabet=st.sampled_from("ab/.\\:~ \t\x00\u202e-_"), min_size=1, max_size=80),
)


@settings(max_examples=200, deadline=None)
@given(PATHY)
def test_a_scenario_name_is_never_a_path(tmp_path_factory, name):
    d = tmp_path_factory.mktemp("n")
    text = (
        'name = "'
        + name.replace("\\", "\\\\").replace('"', '\\"').replace("\x00", "\\u0000").replace("\t", "\\t")
        + '"\n'
    )
    (d / "s.toml").write_text(text + "duration = 1\n")
    stripped = name.strip()
    if (
        stripped
        and len(stripped) <= 64
        and all(c.isascii() and (c.isalnum() or c in "-_.") for c in stripped)
        and not stripped.startswith(".")
    ):
        assert load(d / "s.toml").name == stripped
        return
    with pytest.raises(ScenarioError, match=r"s\.toml line 1: name "):
        load(d / "s.toml")


@settings(max_examples=200, deadline=None)
@given(PATHY)
def test_the_guides_stay_under_out(tmp_path_factory, name):
    d = tmp_path_factory.mktemp("o")
    out = d / "out"
    try:
        path = under(out, "lessons", f"{name}.md")
    except ConfigError as exc:
        assert "outside" in str(exc)
    else:
        assert path.resolve().is_relative_to(out.resolve())
    assert not any(d.iterdir())  # nothing made


def test_a_lessons_folder_that_leads_out_is_refused(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "elsewhere").mkdir()
    os.symlink(tmp_path / "elsewhere", tmp_path / "out" / "lessons")
    with pytest.raises(ConfigError, match="outside"):
        under(tmp_path / "out", "lessons", "a.md")


@pytest.mark.parametrize("name", ["/tmp/pwn-io-test", "../../x", "../pwn"])
def test_docs_refuses_a_name_that_is_a_path(tmp_path, name):
    (tmp_path / "evil.toml").write_text(f'name = "{name}"\nduration = 1\nyou_will_learn = "x"\n')
    (tmp_path / "D").mkdir()
    before = _files(tmp_path)
    proc = cli("docs", "--out", "D", "--only", "evil.toml", cwd=tmp_path)
    assert_bad_input(proc, "evil.toml line 1", "name")
    assert _files(tmp_path) == before
    assert not Path("/tmp/pwn-io-test.md").exists()


def test_a_file_without_name_gets_an_identifier(tmp_path):
    p = tmp_path / "my lesson (2).toml"
    p.write_text("duration = 1\n")
    assert load(p).name == "my-lesson-2"
