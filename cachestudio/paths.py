"""Where the built-in resources are: icons, scenarios, the desktop entry.

The files live in the clone's top-level ``resources/`` folder, which ``pyproject.toml``
maps onto the package ``cachestudio.resources`` (setuptools ``package-dir``). So one
lookup finds the same files in every way the program can be run:

* an installed wheel or sdist: ``site-packages/cachestudio/resources`` (importlib.resources);
* an editable install: setuptools' editable finder maps the package onto ``resources/``;
* a plain clone (``python -m cachestudio`` with the clone on ``sys.path``, or an older
  editable install made before the mapping): ``resources/`` beside the package folder;
* a PyInstaller bundle: ``sys._MEIPASS/cachestudio/resources`` (the spec puts it there).

This module imports nothing of Qt and nothing of the engine, so both may use it.
"""

from __future__ import annotations

import importlib.resources
import sys
from functools import lru_cache
from pathlib import Path

PACKAGE = "cachestudio.resources"
#: A folder every real resources folder has: a candidate without it is not ours.
MARKER = ("scenarios",)


def _is_resources(path: Path | None) -> bool:
    return path is not None and path.joinpath(*MARKER).is_dir()


def _from_package() -> Path | None:
    try:
        root = importlib.resources.files(PACKAGE)
    except (ImportError, TypeError, ValueError):
        return None
    # A package installed as plain files is a Path; one inside a zip archive is not, and we
    # hand out real paths (Qt and sqlite want them), so such an install falls through.
    return Path(str(root)) if isinstance(root, Path) else None


def candidates() -> list[Path]:
    """Where the resources folder may be, most specific first."""
    found: list[Path] = []
    package = _from_package()
    if package is not None:
        found.append(package)
    base = getattr(sys, "_MEIPASS", None)
    if base:
        found += [Path(base) / "cachestudio" / "resources", Path(base) / "resources"]
    found.append(Path(__file__).resolve().parents[1] / "resources")  # the clone
    return found


def first_resources(tried: list[Path]) -> Path:
    """The first of ``tried`` that is a resources folder (FileNotFoundError if none is)."""
    for path in tried:
        if _is_resources(path):
            return path
    raise FileNotFoundError(
        "the built-in resources (scenarios, icons) were not found; looked in " + ", ".join(str(p) for p in tried)
    )


@lru_cache(maxsize=1)
def resources_root() -> Path:
    """The folder holding ``scenarios/``, ``icons/`` and the desktop entry."""
    return first_resources(candidates())


def resource_path(*parts: str) -> Path:
    """A path inside the resources folder, e.g. ``resource_path("icons", "cachestudio.svg")``.
    It is not checked: the caller decides what a missing file means."""
    return resources_root().joinpath(*parts)
