"""The engine knows no screen: importing all of it loads no Qt, and no file names Qt."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ENGINE = Path(__file__).resolve().parents[1] / "cachestudio" / "engine"
QT = ("PySide6", "pyqtgraph", "shiboken6", "PyQt5", "PyQt6")


def test_importing_every_engine_module_loads_no_qt():
    modules = sorted(p.stem for p in ENGINE.glob("*.py") if p.stem != "__init__")
    assert {"lab", "runner", "auditor", "strategies"} <= set(modules)
    code = (
        "import sys, importlib\n"
        f"for m in {modules!r}: importlib.import_module('cachestudio.engine.' + m)\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {QT!r}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ENGINE.parents[1]
    )
    assert out.stdout.strip() == "[]"


def test_no_engine_source_imports_qt():
    pattern = re.compile(r"^\s*(from|import)\s+(" + "|".join(QT) + r")\b", re.M)
    offenders = [p.name for p in ENGINE.rglob("*.py") if pattern.search(p.read_text())]
    assert offenders == []
