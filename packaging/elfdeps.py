"""What a PyInstaller bundle needs from the system it runs on, read off its ELF files.

    python packaging/elfdeps.py BUNDLE_DIR [--json FILE] [--depends]

For every ELF file in the bundle: the shared libraries it needs (``readelf -d``, NEEDED)
and the symbol versions it needs from each (``readelf -V``). A library the bundle does not
carry is the system's: it is found with ``ldconfig -p`` and named by its Debian package with
``dpkg -S``. The glibc floor is the highest ``GLIBC_x.y`` version any file needs (likewise
``GLIBCXX`` for libstdc++, when the bundle does not carry it).

``--depends`` prints the Debian ``Depends:`` value: every package found, ``libc6 (>= floor)``.
A library that no installed package provides stops the build (exit status 1) unless only
optional Qt plugins need it (:data:`OPTIONAL`: Qt skips a plugin it cannot load).
Only binutils' readelf, ldconfig and dpkg are used: no network.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path

#: Qt plugins that Qt loads only if it can, and skips otherwise (with QT_DEBUG_PLUGINS=1 it
#: says why): their system libraries are not made dependencies of the package.
OPTIONAL = (
    "plugins/platforminputcontexts/",   # ibus, compose: input methods, where the desktop has them
    "plugins/wayland-",                 # Wayland decorations and shell integrations
    "plugins/platforms/libqwayland",    # Wayland sessions; X11 and XWayland use xcb
    "plugins/xcbglintegrations/libqxcb-glx",  # GLX: the window draws no OpenGL
    "plugins/networkinformation/",
    "plugins/tls/",
    "plugins/generic/",                 # evdev/tuio input for framebuffer kiosks
    "libQt6EglFs",                      # eglfs device integration (kiosks; no such platform kept)
    "libQt6WaylandClient", "libQt6WlShellIntegration",
)


def is_elf(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            return fh.read(4) == b"\x7fELF"
    except OSError:
        return False


def elf_files(bundle: Path) -> list[Path]:
    return sorted(p for p in bundle.rglob("*") if p.is_file() and not p.is_symlink() and is_elf(p))


def readelf(*args: str) -> str:
    return subprocess.run(["readelf", "--wide", *args], capture_output=True, text=True, check=False,
                          env={**os.environ, "LC_ALL": "C"}).stdout


NEEDED = re.compile(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]")
SONAME = re.compile(r"\(SONAME\)\s+Library soname: \[([^\]]+)\]")
VERNEED_FILE = re.compile(r"File: (\S+)\s+Cnt:")
VERNEED_NAME = re.compile(r"Name: (\S+)\s+Flags:")


def needs(path: Path) -> dict:
    dynamic = readelf("-d", str(path))
    versions: dict[str, set[str]] = {}
    current = None
    for line in readelf("-V", str(path)).splitlines():
        m = VERNEED_FILE.search(line)
        if m:
            current = m.group(1)
            versions.setdefault(current, set())
            continue
        m = VERNEED_NAME.search(line)
        if m and current:
            versions[current].add(m.group(1))
    soname = SONAME.search(dynamic)
    return {"needed": NEEDED.findall(dynamic), "soname": soname.group(1) if soname else None,
            "versions": {k: sorted(v) for k, v in versions.items()}}


def version_key(v: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", v))


def highest(versions: set[str], prefix: str) -> str | None:
    found = [v[len(prefix):] for v in versions if re.fullmatch(re.escape(prefix) + r"[\d.]+", v)]
    return max(found, key=version_key) if found else None


def ldconfig_paths() -> dict[str, list[str]]:
    out = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True, check=False,
                         env={**os.environ, "LC_ALL": "C"}).stdout
    paths: dict[str, list[str]] = {}
    machine = os.uname().machine.replace("_", "-")  # x86-64, aarch64 …
    for line in out.splitlines()[1:]:
        m = re.match(r"\s*(\S+) \(([^)]*)\) => (\S+)", line)
        if m and (machine in m.group(2) or "64" not in m.group(2) or m.group(2).endswith("64")):
            paths.setdefault(m.group(1), []).append(m.group(3))
    return paths


def dpkg_owner(path: str) -> str | None:
    candidates = [path, os.path.realpath(path)]
    for p in list(candidates):  # merged /usr: dpkg may know either spelling
        if p.startswith("/usr/"):
            candidates.append(p[4:])
        else:
            candidates.append("/usr" + p)
    for p in candidates:
        out = subprocess.run(["dpkg", "-S", p], capture_output=True, text=True, check=False)
        if out.returncode == 0 and out.stdout.strip():
            first = out.stdout.strip().splitlines()[0]
            if first.startswith("diversion "):
                continue
            return first.split(":")[0].split(",")[0].strip()
    return None


def analyse(bundle: Path) -> dict:
    files = elf_files(bundle)
    info = {str(p.relative_to(bundle)): needs(p) for p in files}
    carried = {p.name for p in files} | {i["soname"] for i in info.values() if i["soname"]}
    system: dict[str, dict] = {}
    glibc: set[str] = set()
    glibcxx: set[str] = set()
    for rel, i in info.items():
        for lib in i["needed"]:
            if lib in carried:
                continue
            system.setdefault(lib, {"users": []})["users"].append(rel)
        for lib, vers in i["versions"].items():
            if lib in carried:
                continue
            if lib in system and not any(o in rel for o in OPTIONAL):
                system[lib].setdefault("version_nodes", set()).update(vers)
            if lib.startswith("libstdc++"):
                glibcxx.update(vers)
            glibc.update(v for v in vers if v.startswith("GLIBC_"))
    where = ldconfig_paths()
    for lib, entry in system.items():
        entry["version_nodes"] = sorted(entry.get("version_nodes", set()))
        entry["optional"] = all(any(o in u for o in OPTIONAL) for u in entry["users"])
        entry["path"] = (where.get(lib) or [None])[0]
        entry["package"] = dpkg_owner(entry["path"]) if entry["path"] else None
    floor = highest(glibc, "GLIBC_")
    glibc_by_file = {rel: highest({v for vs in i["versions"].values() for v in vs}, "GLIBC_")
                     for rel, i in info.items()}
    return {
        "bundle": str(bundle), "elf_files": len(files), "glibc_floor": floor,
        "glibc_floor_files": sorted(r for r, v in glibc_by_file.items() if v and v == floor),
        "glibcxx_highest": highest(glibcxx, "GLIBCXX_"),
        "system_libraries": dict(sorted(system.items())),
    }


def symbols_file(package: str) -> Path | None:
    arch = subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True).stdout.strip()
    for name in (f"{package}:{arch}.symbols", f"{package}.symbols"):
        path = Path("/var/lib/dpkg/info") / name
        if path.exists():
            return path
    return None


def minimal_version(package: str, soname: str, nodes: set[str]) -> str | None:
    """The lowest version of ``package`` whose ``soname`` has every symbol version node in
    ``nodes`` (from the package's symbols file, as dpkg-shlibdeps reads it), or None."""
    path = symbols_file(package) if nodes else None
    if path is None:
        return None
    found, section = [], False
    for line in path.read_text(errors="replace").splitlines():
        if line and not line[0].isspace():
            section = line.split()[0] == soname
            continue
        if section:
            m = re.match(r"\s+(\S+)@(\S+) (\S+)", line)
            if m and m.group(1) == m.group(2) and m.group(1) in nodes:
                found.append(m.group(3))
    return max(found, key=version_key) if found else None


def depends(result: dict) -> tuple[list[str], list[str]]:
    """The Debian Depends entries and the problems (required libraries no package gives)."""
    floors: dict[str, str | None] = {}
    problems = []
    for lib, e in result["system_libraries"].items():
        if e["optional"]:
            continue
        if e["package"] is None:
            problems.append(f"{lib} (needed by {', '.join(e['users'][:3])}) is not provided by any installed package")
            continue
        v = minimal_version(e["package"], lib, set(e.get("version_nodes", [])))
        old = floors.get(e["package"])
        floors[e["package"]] = max((x for x in (old, v) if x), key=version_key, default=None)
    floors.pop("libc6", None)
    entries = [f"libc6 (>= {result['glibc_floor']})"] if result["glibc_floor"] else ["libc6"]
    return entries + [f"{p} (>= {v})" if v else p for p, v in sorted(floors.items())], problems


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("bundle", type=Path)
    p.add_argument("--json", type=Path, help="write the whole analysis here")
    p.add_argument("--depends", action="store_true", help="print the Debian Depends value")
    args = p.parse_args(argv)
    result = analyse(args.bundle)
    entries, problems = depends(result)
    result["depends"] = entries
    result["problems"] = problems
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    for problem in problems:
        print(f"elfdeps: {problem}", file=sys.stderr)
    if problems:
        return 1
    if args.depends:
        print(", ".join(entries))
    else:
        print(f"{result['elf_files']} ELF files; glibc floor {result['glibc_floor']}; "
              f"system libraries: {len(result['system_libraries'])}")
        print("Depends: " + ", ".join(entries))
    return 0


if __name__ == "__main__":
    sys.exit(main())
