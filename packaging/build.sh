#!/usr/bin/env bash
# `make package`: every installer, under dist/, from the project root:
#   dist/cachestudio-VERSION-py3-none-any.whl   the wheel (resources inside the package)
#   dist/cachestudio-VERSION.tar.gz             the sdist (the wheel above is built from it)
#   dist/cachestudio-VERSION-linux-ARCH.tar.gz  the PyInstaller one-folder bundle
#   dist/cachestudio_VERSION_ARCH.deb           the Debian package (packaging/build-deb.sh)
# Usage: packaging/build.sh [PYTHON]   (PYTHON: the interpreter with the `package` extra;
# default .venv/bin/python). Nothing is downloaded but Python packages from PyPI (build
# isolation fetches setuptools) and Debian packages (the build tools and the libraries the
# bundle takes from the system, installed only when missing).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${1:-.venv/bin/python}
t0=$(date +%s)
step() { echo "== $* ($(( $(date +%s) - t0 )) s)"; }

# Debian packages: the tools, and the libraries the bundle takes from the system (the ones
# a real window needs: packaging/linux-deps.sh), so that packaging/elfdeps.py can name
# their packages and the bundle is the same on every build machine.
need=()
for tool in dpkg-deb:dpkg readelf:binutils strip:binutils ldconfig:libc-bin \
            desktop-file-validate:desktop-file-utils appstreamcli:appstream xz:xz-utils; do
  command -v "${tool%%:*}" >/dev/null 2>&1 || need+=("${tool#*:}")
done
if [ ${#need[@]} -gt 0 ]; then
  step "installing build tools: ${need[*]}"
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi
bash packaging/linux-deps.sh window

VERSION=$("$PY" -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["version"])')
ARCH=$(dpkg --print-architecture)
MACHINE=$(uname -m)
mkdir -p dist
rm -f dist/cachestudio-"$VERSION"* dist/cachestudio_"$VERSION"_*.deb

step "sdist and wheel (python -m build)"
"$PY" -m build --outdir dist . >build-python.log 2>&1 || { cat build-python.log; exit 1; }
rm -f build-python.log
WHEEL=dist/cachestudio-$VERSION-py3-none-any.whl
"$PY" - "$WHEEL" <<'EOF'
import sys, zipfile
names = zipfile.ZipFile(sys.argv[1]).namelist()
need = ["cachestudio/resources/cachestudio.desktop", "cachestudio/resources/icons/cachestudio.svg",
        "cachestudio/resources/scenarios/crash-the-node.toml"]
missing = [n for n in need if n not in names]
if missing:
    sys.exit(f"the wheel lacks {missing}")
print(f"{sys.argv[1]}: {sum(n.startswith('cachestudio/resources/scenarios/') for n in names)} scenarios, "
      f"{sum(n.startswith('cachestudio/resources/icons/') for n in names)} icons")
EOF

step "PyInstaller one-folder bundle"
rm -rf build/pyinstaller build/bundle
"$PY" -m PyInstaller --noconfirm --log-level WARN --workpath build/pyinstaller --distpath build/bundle \
  packaging/cachestudio.spec
BUNDLE=build/bundle/cachestudio
# Debug info only, and only libpython and lib-dynload (strip=True in the spec, which strips
# every library, breaks numpy's bundled OpenBLAS).
strip --strip-debug "$BUNDLE"/_internal/libpython3*.so* "$BUNDLE"/_internal/python3*/lib-dynload/*.so
"$BUNDLE"/cachestudio scenarios >/dev/null  # the bundle starts at all
TARBALL=dist/cachestudio-$VERSION-linux-$MACHINE.tar.gz
tar -C build/bundle -czf "$TARBALL" cachestudio

step "Debian package"
bash packaging/build-deb.sh "$BUNDLE" "$VERSION" dist

step "done"
du -sh "$BUNDLE" | awk '{print "bundle (unpacked): " $1}'
ls -l dist/cachestudio-"$VERSION"* dist/cachestudio_"$VERSION"_"$ARCH".deb
