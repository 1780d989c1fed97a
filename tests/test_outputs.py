"""Output files: only our own files are written (issue 9). Real files, real syscalls, no mocks."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import textwrap
import threading
from pathlib import Path

import pytest
from helpers import ROOT, small_tmpfs
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from cachestudio.engine.config import ConfigError
from cachestudio.engine.outputs import Output, OutputError, OutputWriteError, open_outputs, write_output

IS_ROOT = os.geteuid() == 0
TMPFILE_MODES = pytest.mark.parametrize("use_tmpfile", [True, False], ids=["O_TMPFILE", "named-temp"])


# ------------------------------------------------------------------------------ helpers


def leftovers(d: Path, expected: set[str]) -> set[str]:
    """Names in d beyond the expected ones (temp files, stray creations)."""
    return set(os.listdir(d)) - expected


def mknod_or_skip(path: Path, kind: int, major: int, minor: int) -> None:
    try:
        os.mknod(path, kind | 0o666, os.makedev(major, minor))
    except PermissionError as exc:
        pytest.skip(f"mknod is not permitted here: {exc}")


def writable_device_or_skip(path: Path) -> None:
    try:
        os.close(os.open(path, os.O_WRONLY))
    except OSError as exc:  # e.g. a filesystem mounted nodev
        pytest.skip(f"device nodes in {path.parent} cannot be opened: {exc}")


def run_python(code: str, **kw) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}  # stdout buffered, as for users
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env, timeout=60, **kw)


def one_line(exc: BaseException) -> str:
    text = str(exc)
    assert text and "\n" not in text
    return text


def make_output(path, what="--json", use_tmpfile=True) -> Output:
    out = Output(path, what)
    out.use_tmpfile = use_tmpfile
    return out


# ------------------------------------------------------------------------------ new and regular files


@TMPFILE_MODES
def test_new_file_follows_the_umask(tmp_path, use_tmpfile):
    target = tmp_path / "summary.json"
    r = run_python(
        f"""
        import os
        from cachestudio.engine.outputs import Output
        os.umask(0o027)
        out = Output({str(target)!r}, "--json")
        out.use_tmpfile = {use_tmpfile}
        with out:
            out.write('{{"a": 1}}\\n')
        print(out.how)
    """,
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "create"
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    assert target.read_text() == '{"a": 1}\n'
    assert leftovers(tmp_path, {"summary.json"}) == set()


@TMPFILE_MODES
def test_existing_file_replaced_atomically_keeping_mode_and_owner(tmp_path, use_tmpfile):
    target = tmp_path / "out.json"
    target.write_text("old content that is longer than the new one\n")
    os.chmod(target, 0o604)
    if IS_ROOT:
        os.chown(target, 1234, 5678)
    before = target.stat()
    with make_output(target, use_tmpfile=use_tmpfile) as out:
        assert out.how == "replace"
        out.write("new\n")
        assert target.read_text().startswith("old")  # nothing visible before commit
    after = target.stat()
    assert target.read_text() == "new\n"
    assert after.st_ino != before.st_ino  # a new inode: replaced, not rewritten
    assert stat.S_IMODE(after.st_mode) == 0o604
    assert (after.st_uid, after.st_gid) == (before.st_uid, before.st_gid)
    assert leftovers(tmp_path, {"out.json"}) == set()


def test_hard_linked_file_is_written_in_place(tmp_path):
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text("x" * 5000)
    os.link(a, b)
    ino = a.stat().st_ino
    with Output(a, "--json") as out:
        assert out.how == "in place"
        out.write(b"short")
    assert b.read_bytes() == b"short"  # the other name sees it, truncated to length
    assert a.stat().st_ino == ino and b.stat().st_nlink == 2
    write_output(b, "--json", "y" * 200_000)
    assert a.read_bytes() == b"y" * 200_000
    assert leftovers(tmp_path, {"a.json", "b.json"}) == set()


@pytest.mark.skipif(not IS_ROOT, reason="needs root to set up another user's files")
def test_as_another_user_owner_is_kept_and_unwritable_is_refused():
    d = Path(tempfile.mkdtemp(prefix="outputs-nobody-"))  # not under pytest's 0700 tmp dir
    try:
        os.chmod(d, 0o777)
        theirs = d / "theirs.json"
        theirs.write_text("root's\n")
        os.chmod(theirs, 0o666)
        readonly = d / "readonly.json"
        readonly.write_text("keep\n")
        os.chmod(readonly, 0o644)
        closed = d / "closed"
        closed.mkdir(mode=0o755)
        r = run_python(
            f"""
            import os
            from cachestudio.engine.outputs import Output, OutputError, write_output
            os.setgid(65534); os.setuid(65534)
            with Output({str(theirs)!r}, "--json") as out:
                print(out.how)
                out.write("nobody's\\n")
            for p in ({str(readonly)!r}, {str(closed / "new.json")!r}):
                try:
                    write_output(p, "--json", "x")
                    print("written", p)
                except OutputError as e:
                    print(e)
        """,
            capture_output=True,
            text=True,
        )
        assert r.returncode == 0, r.stderr
        lines = r.stdout.splitlines()
        assert lines[0] == "in place"
        assert theirs.read_text() == "nobody's\n" and theirs.stat().st_uid == 0
        assert lines[1] == f"--json {readonly} cannot be written: permission denied"
        assert lines[2] == f"--json {closed / 'new.json'}: cannot create a file in {closed}: permission denied"
        assert readonly.read_text() == "keep\n" and os.listdir(closed) == []
        assert leftovers(d, {"theirs.json", "readonly.json", "closed"}) == set()
    finally:
        shutil.rmtree(d)


@TMPFILE_MODES
def test_relative_path_lands_where_it_was_named_despite_chdir(tmp_path, monkeypatch, use_tmpfile):
    (tmp_path / "here").mkdir()
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "here")
    out = make_output("out.json", use_tmpfile=use_tmpfile).open()
    out.write("x")
    monkeypatch.chdir(tmp_path / "elsewhere")
    out.commit()
    assert (tmp_path / "here" / "out.json").read_text() == "x"
    assert os.listdir(tmp_path / "elsewhere") == [] and os.listdir(tmp_path / "here") == ["out.json"]


def test_missing_parent_directory_is_refused_before_anything(tmp_path):
    with pytest.raises(OutputError) as e:
        Output(tmp_path / "nope" / "x.json", "--json").open()
    assert one_line(e.value) == f"--json {tmp_path / 'nope' / 'x.json'}: directory {tmp_path / 'nope'} does not exist"
    assert isinstance(e.value, ConfigError)
    (tmp_path / "file").write_text("")
    with pytest.raises(OutputError, match="a part of the path is not a directory"):
        Output(tmp_path / "file" / "x.json", "--json").open()


# ------------------------------------------------------------------------------ symlinks


@TMPFILE_MODES
def test_symlink_to_a_file_replaces_the_target_and_keeps_the_link(tmp_path, use_tmpfile):
    (tmp_path / "real").mkdir()
    target = tmp_path / "real" / "data.json"
    target.write_text("old\n")
    link = tmp_path / "link.json"
    link.symlink_to(Path("real") / "data.json")  # relative link
    with make_output(link, use_tmpfile=use_tmpfile) as out:
        assert out.how == "replace" and out.target == str(tmp_path / "real" / "data.json")
        out.write("new\n")
    assert link.is_symlink() and os.readlink(link) == os.path.join("real", "data.json")
    assert target.read_text() == "new\n"
    assert leftovers(tmp_path, {"real", "link.json"}) == set()
    assert leftovers(tmp_path / "real", {"data.json"}) == set()


def test_symlink_chain_to_a_new_name_is_refused_as_dangling(tmp_path):
    link = tmp_path / "link.json"
    link.symlink_to(tmp_path / "missing.json")
    with pytest.raises(OutputError) as e:
        write_output(link, "--json", "x")
    assert "dangling symlink" in one_line(e.value) and str(link) in str(e.value)
    assert link.is_symlink() and not (tmp_path / "missing.json").exists()
    assert leftovers(tmp_path, {"link.json"}) == set()


def test_symlink_loops_are_refused(tmp_path):
    (tmp_path / "a").symlink_to("b")
    (tmp_path / "b").symlink_to("a")
    (tmp_path / "self").symlink_to("self")
    for name in ("a", "self"):
        with pytest.raises(OutputError) as e:
            write_output(tmp_path / name, "--history", "x")
        assert "loop" in one_line(e.value)
    with pytest.raises(OutputError, match="loop"):  # a loop in a directory part
        write_output(tmp_path / "a" / "x.json", "--history", "x")
    assert sorted(os.listdir(tmp_path)) == ["a", "b", "self"]
    assert all((tmp_path / n).is_symlink() for n in ("a", "b", "self"))


# ------------------------------------------------------------------------------ things that are not files


def test_directory_socket_and_block_device_are_refused(tmp_path):
    with pytest.raises(OutputError) as e:
        write_output(tmp_path, "--json", "x")
    assert one_line(e.value) == f"--json {tmp_path} is a directory; give a file name"
    with pytest.raises(OutputError, match="names a directory"):
        write_output(str(tmp_path / "newdir") + "/", "--json", "x")

    sock_path = tmp_path / "s.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.bind(str(sock_path))
        with pytest.raises(OutputError) as e:
            write_output(sock_path, "--json", "x")
        assert one_line(e.value) == f"--json {sock_path} is a socket; give a file name"
        assert stat.S_ISSOCK(sock_path.lstat().st_mode)

    blk = tmp_path / "sda"
    mknod_or_skip(blk, stat.S_IFBLK, 7, 0)
    with pytest.raises(OutputError) as e:
        write_output(blk, "--json", "x")
    assert one_line(e.value) == f"--json {blk} is a block device; give a file name"
    assert stat.S_ISBLK(blk.lstat().st_mode) and blk.lstat().st_rdev == os.makedev(7, 0)


def test_character_device_is_written_through_and_stays_a_device(tmp_path):
    null = tmp_path / "null"
    mknod_or_skip(null, stat.S_IFCHR, 1, 3)
    writable_device_or_skip(null)
    before = null.lstat()
    link = tmp_path / "to-null"
    link.symlink_to(null)
    for p in (null, link):
        with Output(p, "--json") as out:
            assert out.kind == "stream"
            for _ in range(20):
                out.write(b"z" * 100_000)
    after = null.lstat()
    assert stat.S_ISCHR(after.st_mode) and after.st_rdev == before.st_rdev == os.makedev(1, 3)
    assert after.st_ino == before.st_ino and link.is_symlink()
    assert leftovers(tmp_path, {"null", "to-null"}) == set()


def test_the_real_dev_null_survives():
    before = os.stat("/dev/null")
    write_output("/dev/null", "--json", "{}\n" * 50_000)
    after = os.stat("/dev/null")
    assert stat.S_ISCHR(after.st_mode)
    assert (after.st_ino, after.st_rdev, after.st_mode) == (before.st_ino, before.st_rdev, before.st_mode)


def test_full_device_fails_with_one_line_and_stays_a_device(tmp_path):
    full = tmp_path / "full"
    mknod_or_skip(full, stat.S_IFCHR, 1, 7)
    writable_device_or_skip(full)
    with pytest.raises(OutputWriteError) as e:
        write_output(full, "--json", "x" * 10)
    assert one_line(e.value) == f"--json {full}: could not write: no space left on device"
    assert stat.S_ISCHR(full.lstat().st_mode) and full.lstat().st_rdev == os.makedev(1, 7)


# ------------------------------------------------------------------------------ FIFOs


def test_fifo_with_a_reader_gets_every_byte(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    rfd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # a reader exists before the writer opens
    out = Output(fifo, "--history").open()
    os.set_blocking(rfd, True)
    got = bytearray()
    reader = threading.Thread(target=lambda: [got.extend(c) for c in iter(lambda: os.read(rfd, 65536), b"")])
    reader.start()
    payload = b"".join(b'{"seq":%d}\n' % i for i in range(100_000))  # ~1.1 MB, far beyond a pipe's buffer
    try:
        for i in range(0, len(payload), 7000):
            out.write(payload[i : i + 7000])
        out.commit()
    finally:
        out.discard()
        reader.join(30)
        os.close(rfd)
    assert not reader.is_alive()
    assert bytes(got) == payload
    assert stat.S_ISFIFO(fifo.lstat().st_mode)


def test_fifo_without_a_reader_is_refused_at_once(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    result: list = []

    def attempt():
        try:
            Output(fifo, "--history").open()
            result.append("opened")
        except OutputError as exc:
            result.append(exc)

    t = threading.Thread(target=attempt, daemon=True)
    t.start()
    t.join(10)
    if t.is_alive():  # it hangs: free the thread before failing
        os.close(os.open(fifo, os.O_RDONLY | os.O_NONBLOCK))
        t.join(10)
        pytest.fail("opening a FIFO without a reader blocked")
    assert isinstance(result[0], OutputError)
    assert one_line(result[0]) == f"--history {fifo} is a FIFO with no reader; start the reader first"
    assert stat.S_ISFIFO(fifo.lstat().st_mode) and os.listdir(tmp_path) == ["fifo"]


def test_fifo_reader_going_away_is_one_line(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    rfd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    out = Output(fifo, "--history").open()
    os.close(rfd)
    with pytest.raises(OutputWriteError) as e:
        out.write(b"x" * 200_000)
        out.commit()
    assert one_line(e.value) == f"--history {fifo}: could not write: the reader went away (broken pipe)"
    with pytest.raises(OutputWriteError):  # stays failed
        out.commit()
    out.discard()
    assert stat.S_ISFIFO(fifo.lstat().st_mode)


# ------------------------------------------------------------------------------ file descriptors


def test_proc_self_fd_and_dev_fd_write_through_the_descriptor(tmp_path):
    r, w = os.pipe()
    try:
        write_output(f"/proc/self/fd/{w}", "--history", "through a pipe\n")
        write_output(f"/dev/fd/{w}", "--history", b"and again\n")
        assert os.read(r, 100) == b"through a pipe\nand again\n"
    finally:
        os.close(r)
        os.close(w)

    f = tmp_path / "shell.out"
    fd = os.open(f, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)  # as `3>shell.out` would
    try:
        os.write(fd, b"printed first\n")
        ino = f.stat().st_ino
        write_output(f"/proc/self/fd/{fd}", "--json", "then the json\n")
        os.write(fd, b"printed after\n")  # the offset is shared: nothing overwritten
    finally:
        os.close(fd)
    assert f.read_text() == "printed first\nthen the json\nprinted after\n" and f.stat().st_ino == ino
    assert leftovers(tmp_path, {"shell.out"}) == set()

    bad = os.open(f, os.O_RDONLY)
    try:
        with pytest.raises(OutputError, match=f"file descriptor {bad} is not open for writing"):
            write_output(f"/dev/fd/{bad}", "--json", "x")
    finally:
        os.close(bad)
    with pytest.raises(OutputError, match="file descriptor 987 is not open"):
        write_output("/proc/self/fd/987", "--json", "x")


def test_dev_stdout_to_a_pipe_and_to_a_regular_file(tmp_path):
    code = """
        import sys
        from cachestudio.engine.outputs import write_output
        print("table")
        write_output("/dev/stdout", "--json", '{"json": true}\\n')
        write_output("-", "--history", b'{"history": 1}\\n')
        print("written")
    """
    r = run_python(code, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout == 'table\n{"json": true}\n{"history": 1}\nwritten\n'

    f = tmp_path / "out.txt"
    with open(f, "w") as fh:  # `cachestudio run --json /dev/stdout > out.txt`
        ino = os.fstat(fh.fileno()).st_ino
        r = run_python(code, stdout=fh, stderr=subprocess.PIPE, text=True)
    assert r.returncode == 0, r.stderr
    assert f.read_text() == 'table\n{"json": true}\n{"history": 1}\nwritten\n'
    assert f.stat().st_ino == ino and leftovers(tmp_path, {"out.txt"}) == set()


def test_to_stdout_says_which_outputs_share_standard_output(tmp_path):
    r = run_python(
        f"""
        import sys
        from cachestudio.engine.outputs import Output
        for p in ("-", "/dev/stdout", "/proc/self/fd/1", "/dev/fd/1", "/dev/stderr", {str(tmp_path / "f.json")!r}):
            out = Output(p, "--json").open()
            print(p, out.kind, out.to_stdout, file=sys.stderr)
            out.discard()
    """,
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    assert r.stderr.splitlines() == [
        "- stdout True",
        "/dev/stdout stream True",
        "/proc/self/fd/1 stream True",
        "/dev/fd/1 stream True",
        "/dev/stderr stream False",
        f"{tmp_path / 'f.json'} file False",
    ]
    assert os.listdir(tmp_path) == []


def test_broken_stdout_is_one_line_without_a_second_error():
    r_end, w_end = os.pipe()
    os.close(r_end)  # the reader is gone before we start (`cachestudio run --json - | true`)
    try:
        p = run_python(
            """
            import sys
            from cachestudio.engine.outputs import OutputWriteError, write_output
            try:
                write_output("-", "--json", "x" * 200_000)
            except OutputWriteError as e:
                print(e, file=sys.stderr)
                sys.exit(3)
        """,
            stdout=w_end,
            stderr=subprocess.PIPE,
            text=True,
        )
    finally:
        os.close(w_end)
    assert p.returncode == 3
    assert p.stderr == "--json -: could not write: the reader went away (broken pipe)\n"


# ------------------------------------------------------------------------------ the same target twice


def test_same_target_twice_is_refused_naming_both(tmp_path):
    existing = tmp_path / "run.json"
    existing.write_text("old\n")
    (tmp_path / "link.json").symlink_to("run.json")
    os.link(existing, tmp_path / "hard.json")
    cases = [
        ((existing, existing), f"--json and --history both name {existing}; give each its own file"),
        (
            (tmp_path / "new.json", f"{tmp_path}/./new.json"),
            f"--json {tmp_path / 'new.json'} and --history {tmp_path}/./new.json are the same file; "
            "give each its own file",
        ),
        (
            (existing, tmp_path / "link.json"),
            f"--json {existing} and --history {tmp_path / 'link.json'} are the same file; give each its own file",
        ),
        (
            (tmp_path / "hard.json", existing),
            f"--json {tmp_path / 'hard.json'} and --history {existing} are the same file; give each its own file",
        ),
        (("-", "-"), "--json and --history both name standard output (-); give each its own file"),
    ]
    for (a, b), message in cases:
        with pytest.raises(OutputError) as e:
            open_outputs([(a, "--json"), (None, "--chart"), (b, "--history")])
        assert one_line(e.value) == message
    assert existing.read_text() == "old\n"
    assert leftovers(tmp_path, {"run.json", "link.json", "hard.json"}) == set()
    outs = open_outputs([(existing, "--json"), (None, "--history"), (tmp_path / "h.jsonl", "--history")])
    assert outs[1] is None and [o.how for o in (outs[0], outs[2])] == ["in place", "create"]
    for o in outs:
        if o is not None:
            o.discard()
    assert leftovers(tmp_path, {"run.json", "link.json", "hard.json"}) == set()


def test_stdout_named_twice_in_another_process_is_refused():
    r = run_python(
        """
        from cachestudio.engine.outputs import OutputError, open_outputs
        for pair in (("-", "/dev/stdout"), ("/proc/self/fd/1", "/dev/fd/1")):
            try:
                open_outputs([(pair[0], "--json"), (pair[1], "--history")])
                print("accepted")
            except OutputError as e:
                print(e)
        outs = open_outputs([("/dev/stdout", "--json"), ("/dev/stderr", "--history")])
        print(len(outs))
    """,
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [
        "--json - and --history /dev/stdout are the same file; give each its own file",
        "--json /proc/self/fd/1 and --history /dev/fd/1 are the same file; give each its own file",
        "2",
    ]


def test_a_file_already_open_as_stdout_is_the_same_target(tmp_path):
    f = tmp_path / "both.txt"
    with open(f, "w") as fh:
        r = run_python(
            f"""
            from cachestudio.engine.outputs import OutputError, open_outputs
            try:
                open_outputs([("/dev/stdout", "--json"), ({str(f)!r}, "--history")])
            except OutputError as e:
                import sys; print(e, file=sys.stderr)
        """,
            stdout=fh,
            stderr=subprocess.PIPE,
            text=True,
        )
    assert r.stderr.strip() == f"--json /dev/stdout and --history {f} are the same file; give each its own file"


# ------------------------------------------------------------------------------ failures


@TMPFILE_MODES
def test_disk_full_leaves_no_temp_and_the_old_content(tmp_path, use_tmpfile):
    with small_tmpfs(tmp_path / "small", "64k") as d:
        old = d / "summary.json"
        old.write_text("the previous summary\n")
        for target in (old, d / "new.json"):
            out = make_output(target, use_tmpfile=use_tmpfile).open()
            with pytest.raises(OutputWriteError) as e:
                for _ in range(40):
                    out.write(b"x" * 10_000)
                out.commit()
            assert one_line(e.value).startswith(f"--json {target}: could not write: no space left on device; ")
            out.discard()
            assert leftovers(d, {"summary.json"}) == set()
        assert old.read_text() == "the previous summary\n"
        assert "was left as it was" in str(e.value) or "was not created" in str(e.value)


def test_a_write_failure_frees_the_temp_at_once_and_is_raised_by_commit(tmp_path):
    with small_tmpfs(tmp_path / "small", "64k") as d:
        out = Output(d / "big.json", "--history").open()
        for _ in range(20):
            out.write(b"x" * 10_000)  # fails at about 64 KB: nothing raised during the run
        assert out.error == (
            f"--history {d / 'big.json'}: could not write: no space left on device; {d / 'big.json'} was not created"
        )
        assert os.listdir(d) == [] and os.statvfs(d).f_bfree == os.statvfs(d).f_blocks  # space given back
        out.write("dropped")
        for _ in range(2):
            with pytest.raises(OutputWriteError) as e:
                out.commit()
            assert str(e.value) == out.error
        out.discard()
        write_output(d / "small.json", "--json", "fits now\n")
        assert (d / "small.json").read_text() == "fits now\n"


def test_disk_full_in_place_leaves_the_old_content(tmp_path):
    with small_tmpfs(tmp_path / "small", "64k") as d:
        a = d / "a.json"
        a.write_bytes(b"o" * 4096)
        os.link(a, d / "b.json")
        # too big to stage at all
        with pytest.raises(OutputWriteError) as e:
            write_output(a, "--json", b"x" * 100_000)
        assert one_line(e.value).endswith(f"no space left on device; {a} was left as it was")
        # fits to stage (40 KB), but not twice: reserving the target's space fails before any byte changes
        with pytest.raises(OutputWriteError) as e:
            write_output(a, "--json", b"y" * 40_000)
        assert one_line(e.value).endswith(f"no space left on device; {a} was left as it was")
        assert a.read_bytes() == b"o" * 4096 and (d / "b.json").read_bytes() == b"o" * 4096
        assert a.stat().st_size == 4096
        assert leftovers(d, {"a.json", "b.json"}) == set()


def test_target_that_turned_into_something_else_is_left_alone(tmp_path):
    fifo_target = tmp_path / "out.json"
    out = Output(fifo_target, "--json").open()
    out.write("data")
    os.mkfifo(fifo_target)  # appears during the run
    with pytest.raises(OutputWriteError) as e:
        out.commit()
    assert one_line(e.value) == (
        f"--json {fifo_target}: could not write: {fifo_target} became a FIFO during the run; it was left alone"
    )
    assert stat.S_ISFIFO(fifo_target.lstat().st_mode)

    regular = tmp_path / "r.json"
    regular.write_text("mine")
    out = Output(regular, "--json").open()
    regular.unlink()
    regular.symlink_to("/etc/passwd")
    with pytest.raises(OutputWriteError, match="became a symlink"):
        out.write("x")
        out.commit()
    assert os.readlink(regular) == "/etc/passwd"
    assert leftovers(tmp_path, {"out.json", "r.json"}) == set()


def test_exception_in_the_with_block_discards(tmp_path):
    target = tmp_path / "out.json"
    target.write_text("keep")
    with pytest.raises(KeyboardInterrupt):
        with Output(target, "--json") as out:
            out.write("half")
            raise KeyboardInterrupt
    assert target.read_text() == "keep"
    with pytest.raises(RuntimeError):
        out.write("after")
    assert leftovers(tmp_path, {"out.json"}) == set()


def test_kill_during_the_run_leaves_no_temp_file(tmp_path):
    target = tmp_path / "out.json"
    p = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(f"""
        import sys, time
        from cachestudio.engine.outputs import Output
        out = Output({str(target)!r}, "--json").open()
        out.write("x" * 100_000)
        print(out.how, flush=True)
        time.sleep(60)
    """),
        ],
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert p.stdout.readline().strip() == "create"
    finally:
        p.send_signal(signal.SIGKILL)
        p.wait(30)
        p.stdout.close()
    if not hasattr(os, "O_TMPFILE"):
        pytest.skip("no O_TMPFILE: a named temp file is expected to survive a kill -9")
    assert os.listdir(tmp_path) == []


# ------------------------------------------------------------------------------ property


KINDS = ["new", "regular", "symlink", "hardlink", "null", "full", "fifo", "dir", "dangling"]
CHUNK = st.one_of(st.binary(max_size=3000), st.text(max_size=500), st.just(b"B" * 120_000))


@pytest.fixture(scope="module")
def playground():
    """A 256 KiB tmpfs (so that ENOSPC happens) where mount is permitted, else a plain directory."""
    base = Path(tempfile.mkdtemp(prefix="outputs-prop-"))
    mounted = (
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(base)], capture_output=True).returncode
        == 0
    )
    try:
        yield base
    finally:
        if mounted:
            subprocess.run(["umount", str(base)], check=True)
        shutil.rmtree(base)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    kind=st.sampled_from(KINDS),
    chunks=st.lists(CHUNK, max_size=6),
    end=st.sampled_from(["commit", "discard", "raise"]),
    use_tmpfile=st.booleans(),
)
def test_property_no_temp_left_kinds_kept_content_exact(playground, kind, chunks, end, use_tmpfile):
    d = Path(tempfile.mkdtemp(dir=playground))
    try:
        name, old = "t.json", b"old content\n"
        p = d / name
        expected = {name}
        if kind in ("regular", "symlink", "hardlink"):
            (d / "real.json").write_bytes(old)
            expected.add("real.json")
            if kind == "regular":
                (d / "real.json").rename(p)
                expected.discard("real.json")
            elif kind == "symlink":
                p.symlink_to("real.json")
            else:
                os.link(d / "real.json", p)
        elif kind in ("null", "full"):
            try:
                os.mknod(p, stat.S_IFCHR | 0o666, os.makedev(1, 3 if kind == "null" else 7))
                os.close(os.open(p, os.O_WRONLY))
            except OSError:
                return  # no device nodes here: covered by the dedicated tests' skip
        elif kind == "fifo":
            os.mkfifo(p)
        elif kind == "dir":
            p.mkdir()
        elif kind == "dangling":
            p.symlink_to("nowhere.json")
        before = p.lstat() if kind != "new" else None
        data = b"".join(c.encode() if isinstance(c, str) else c for c in chunks)

        out = make_output(p, use_tmpfile=use_tmpfile)
        committed = failed = False
        try:
            out.open()
        except OutputError as exc:
            assert kind in ("fifo", "dir", "dangling"), exc
            one_line(exc)
        else:
            assert kind not in ("fifo", "dir", "dangling")
            try:
                for c in chunks:
                    out.write(c)
                if end == "commit":
                    out.commit()
                    committed = True
                elif end == "raise":
                    with pytest.raises(ValueError):
                        with out:
                            raise ValueError("the run failed")
                else:
                    out.discard()
            except OutputWriteError as exc:
                assert one_line(exc) == out.error
                failed = True
                out.discard()
            if out.error is not None:  # also a failure only kept (discarded before commit)
                one_line(out.error)
                failed = True
        event(f"{kind}: {'refused' if out.kind is None else 'failed' if failed else 'committed' if committed else end}")
        assert not (failed and kind == "null")
        if kind == "full" and end == "commit" and data:
            assert failed

        if kind == "new" and committed:
            expected.add(name)
        elif kind == "new":
            expected.discard(name)
        assert set(os.listdir(d)) == expected  # no temp file, nothing stray
        if before is not None:
            now = p.lstat()
            assert stat.S_IFMT(now.st_mode) == stat.S_IFMT(before.st_mode)
            assert now.st_rdev == before.st_rdev
        if kind in ("new", "regular", "symlink", "hardlink"):
            real = d / ("real.json" if kind in ("symlink", "hardlink") else name)
            if committed:
                assert real.read_bytes() == data
            elif kind != "new":
                assert real.read_bytes() == old
            if kind == "hardlink":
                assert p.stat().st_ino == real.stat().st_ino
    finally:
        shutil.rmtree(d)
