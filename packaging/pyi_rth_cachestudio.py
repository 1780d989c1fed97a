# PyInstaller runtime hook (packaging/cachestudio.spec): runs before cachestudio/__main__.py
# in the bundle and in every process the bundle starts (labs, observer, bench children).
import os

# pyqtgraph prefers PyQt6 when it can import it; the bundle carries PySide6 only.
os.environ.setdefault("PYQTGRAPH_QT_LIB", "PySide6")
