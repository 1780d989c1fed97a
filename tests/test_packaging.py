"""Packaging: the resources travel with the package, and nothing spawns ``python -c``.

The wheel test builds the wheel from a copy of the sources (the checkout stays clean and
other builds in it are not disturbed), installs it with ``--no-deps`` into a fresh virtual
environment that sees this environment's packages through a ``.pth`` line (PySide6, numpy …
are not downloaded again; the cachestudio of this environment, an editable install, is not
seen: a ``.pth`` file inside a folder that a ``.pth`` line adds is never run), and runs the
installed ``cachestudio`` from a folder outside the clone. Building the wheel fetches
setuptools from PyPI (build isolation), as any ``pip install`` of the project does.
"""

from __future__ import annotations

import os
import re
import shutil
import site
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from helpers import ROOT

from cachestudio import paths
from cachestudio.engine.config import ConfigError
from cachestudio.engine.scenario import builtin_dir, resources_dir
from cachestudio.ui import first_paint

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
SCENARIOS = sorted(p.stem for p in (ROOT / "resources" / "scenarios").glob("*.toml"))


def test_every_package_and_resource_folder_is_in_pyproject():
    listed = set(PYPROJECT["tool"]["setuptools"]["packages"])
    code = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "cachestudio").rglob("__init__.py")}
    assert code <= listed, f"not in [tool.setuptools] packages: {sorted(code - listed)}"
    folders = {
        "cachestudio.resources" + "".join("." + part for part in p.relative_to(ROOT / "resources").parts)
        for p in [
            ROOT / "resources",
            *(d for d in (ROOT / "resources").iterdir() if d.is_dir() and d.name != "__pycache__"),
        ]
    }
    assert folders <= listed, f"resource folders not in packages: {sorted(folders - listed)}"
    assert PYPROJECT["tool"]["setuptools"]["package-dir"]["cachestudio.resources"] == "resources"
    assert PYPROJECT["project"]["license"] == "MIT"


def test_the_clone_finds_its_resources():
    assert resources_dir() == paths.resources_root()
    assert paths.resource_path("icons", "cachestudio.svg").is_file()
    assert sorted(p.stem for p in builtin_dir().glob("*.toml")) == SCENARIOS
    assert len(SCENARIOS) >= 8


def test_a_frozen_bundle_finds_them_under_meipass(tmp_path, monkeypatch):
    bundled = tmp_path / "cachestudio" / "resources"
    (bundled / "scenarios").mkdir(parents=True)
    monkeypatch.setattr(sys, "_MEIPASS", str(tmp_path), raising=False)
    monkeypatch.setattr(paths, "_from_package", lambda: None)
    assert paths.first_resources(paths.candidates()) == bundled


def test_missing_resources_are_one_line_not_a_traceback(tmp_path, monkeypatch):
    monkeypatch.setattr(paths, "candidates", lambda: [tmp_path / "nowhere"])
    paths.resources_root.cache_clear()
    try:
        with pytest.raises(ConfigError, match="resources .* not found"):
            resources_dir()
    finally:
        monkeypatch.undo()
        paths.resources_root.cache_clear()
    assert resources_dir().is_dir()


def test_bench_children_are_started_without_python_c(monkeypatch):
    assert first_paint.command("studio") == [sys.executable, "-m", "cachestudio", first_paint.FLAG, "studio"]
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    assert first_paint.command("bare") == [sys.executable, first_paint.FLAG, "bare"]


def test_no_source_spawns_python_c_or_writes_settings_to_devnull():
    spawn_c = re.compile(r"""sys\.executable\s*,\s*["']-c["']""")
    devnull = re.compile(r"QSettings\(\s*os\.devnull")
    offenders = [
        str(p.relative_to(ROOT))
        for p in (ROOT / "cachestudio").rglob("*.py")
        if spawn_c.search(p.read_text()) or devnull.search(p.read_text())
    ]
    assert offenders == []


def _fresh_venv(where: Path) -> Path:
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(where)], check=True, timeout=120)
    return where / "bin" / "python"


def _share_site_packages(python: Path) -> None:
    """Let the fresh venv import this environment's packages (after its own)."""
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    Path(purelib, "_cachestudio_test_shared.pth").write_text("\n".join(site.getsitepackages()) + "\n")


def _png_looks_drawn(path: Path) -> bool:
    """Many distinct colours on a grid of samples: not a blank or one-colour image."""
    from PySide6.QtGui import QImage

    image = QImage(str(path))
    if image.isNull():
        return False
    colours = {
        image.pixel(x, y)
        for x in range(0, image.width(), max(1, image.width() // 40))
        for y in range(0, image.height(), max(1, image.height() // 40))
    }
    return len(colours) >= 8


@pytest.mark.timeout(600)
def test_the_wheel_installed_elsewhere_lists_every_scenario_and_renders_a_screenshot(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("cachestudio", "resources"):
        shutil.copytree(ROOT / name, src / name, ignore=ignore)
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(ROOT / name, src / name)
    wheels = tmp_path / "wheels"
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(wheels), str(src)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stderr[-3000:]
    (wheel,) = wheels.glob("cachestudio-*.whl")

    python = _fresh_venv(tmp_path / "venv")
    installed = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "--quiet",
            "--no-deps",
            "--no-index",
            str(wheel),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert installed.returncode == 0, installed.stderr[-3000:]
    _share_site_packages(python)  # after the install: pip must not see this environment's cachestudio

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env["QT_QPA_PLATFORM"] = "offscreen"
    exe = str(tmp_path / "venv" / "bin" / "cachestudio")

    where = subprocess.run(
        [str(python), "-c", "import cachestudio.paths as p; print(p.resources_root())"],
        capture_output=True,
        text=True,
        cwd=elsewhere,
        env=env,
        timeout=120,
    )
    assert where.returncode == 0, where.stderr
    assert Path(where.stdout.strip()).is_relative_to(tmp_path / "venv"), where.stdout  # not the clone's

    listed = subprocess.run([exe, "scenarios"], capture_output=True, text=True, cwd=elsewhere, env=env, timeout=120)
    assert listed.returncode == 0, listed.stderr
    names = [line.split()[0] for line in listed.stdout.splitlines() if line.strip()]
    assert sorted(names) == SCENARIOS, listed.stdout

    out = tmp_path / "shots"
    out.mkdir()
    shot = subprocess.run(
        [exe, "screenshot", "--scenario", "crash-the-node", "--at", "2", "--out", str(out), "--size", "800x600"],
        capture_output=True,
        text=True,
        cwd=elsewhere,
        env=env,
        timeout=300,
    )
    assert shot.returncode == 0, shot.stderr[-3000:]
    for name in ("window", "flow", "charts", "anomalies"):
        png = out / f"{name}.png"
        assert png.is_file() and png.stat().st_size > 5000, name
        assert _png_looks_drawn(png), name


@pytest.mark.timeout(300)
def test_the_self_check_opens_the_window_crashes_the_node_and_renders_a_frame(tmp_path):
    """``cachestudio.ui.self_check`` (what ``cachestudio self-check`` runs), in a process of its own."""
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys\nfrom cachestudio.ui.self_check import run_self_check\nsys.exit(run_self_check())",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    assert any("crashed (SIGKILL)" in line for line in lines), proc.stdout
    assert any("every lane restarted and serving" in line for line in lines), proc.stdout
    assert lines[-1].startswith("self-check: ok"), proc.stdout
