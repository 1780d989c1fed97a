#!/usr/bin/env bash
# The .deb, from the PyInstaller one-folder bundle, with dpkg-deb (no debian/ source tree).
# Usage: packaging/build-deb.sh BUNDLE_DIR VERSION OUT_DIR   (packaging/build.sh calls it)
#
#   /usr/lib/cachestudio/                  the bundle
#   /usr/bin/cachestudio                   -> ../lib/cachestudio/cachestudio
#   /usr/share/applications/cachestudio.desktop
#   /usr/share/icons/hicolor/NxN/apps/cachestudio.png, scalable/apps/cachestudio.svg
#   /usr/share/metainfo/org.cachestudio.CacheStudio.metainfo.xml
#   /usr/share/doc/cachestudio/copyright
# Depends: what the bundle's ELF files need and it does not carry, by Debian package, with
# the glibc floor (packaging/elfdeps.py), and the fonts Qt needs to draw any text. No
# maintainer scripts: the icon cache and the desktop database are updated by the dpkg
# triggers of the packages that own them.
set -euo pipefail
cd "$(dirname "$0")/.."
BUNDLE=$1 VERSION=$2 OUT=$3
ARCH=$(dpkg --print-architecture)
NAME=cachestudio
ID=org.cachestudio.CacheStudio
ROOT=build/deb/${NAME}_${VERSION}_${ARCH}
rm -rf "$ROOT"
mkdir -p "$ROOT"/DEBIAN "$ROOT"/usr/lib "$ROOT"/usr/bin "$ROOT"/usr/share/applications \
         "$ROOT"/usr/share/metainfo "$ROOT"/usr/share/doc/$NAME "$ROOT"/usr/share/icons/hicolor/scalable/apps

cp -a "$BUNDLE" "$ROOT"/usr/lib/$NAME
ln -s ../lib/$NAME/$NAME "$ROOT"/usr/bin/$NAME

install -m 644 resources/$NAME.desktop "$ROOT"/usr/share/applications/$NAME.desktop
desktop-file-validate "$ROOT"/usr/share/applications/$NAME.desktop
for png in resources/icons/$NAME-*.png; do
  size=${png##*-}; size=${size%.png}
  install -D -m 644 "$png" "$ROOT"/usr/share/icons/hicolor/${size}x${size}/apps/$NAME.png
done
install -m 644 resources/icons/$NAME.svg "$ROOT"/usr/share/icons/hicolor/scalable/apps/$NAME.svg
install -m 644 packaging/linux/$ID.metainfo.xml "$ROOT"/usr/share/metainfo/$ID.metainfo.xml
appstreamcli validate --no-net "$ROOT"/usr/share/metainfo/$ID.metainfo.xml
{
  echo "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/"
  echo "Upstream-Name: Cache Studio"
  echo
  echo "Files: *"
  echo "Copyright: The Cache Studio contributors"
  echo "License: MIT"
  echo
  echo "Files: usr/lib/$NAME/_internal/*"
  echo "Comment: Python, Qt for Python (PySide6, LGPL-3.0), pyqtgraph, NumPy, diskcache,"
  echo " sqlite-utils and the libraries they carry, each under its own license (the"
  echo " dist-info folders beside them hold the texts)."
  echo
  echo "License: MIT"
  sed 's/^$/./; s/^/ /' LICENSE
} >"$ROOT"/usr/share/doc/$NAME/copyright
chmod 644 "$ROOT"/usr/share/doc/$NAME/copyright

python3 packaging/elfdeps.py "$BUNDLE" --json build/deb/elfdeps.json >/dev/null
DEPENDS="$(python3 packaging/elfdeps.py "$BUNDLE" --depends), fonts-dejavu-core | fonts-freefont-ttf | fonts-liberation"
FLOOR=$(python3 -c 'import json; print(json.load(open("build/deb/elfdeps.json"))["glibc_floor"])')
SIZE=$(du -sk --exclude=DEBIAN "$ROOT" | cut -f1)
cat >"$ROOT"/DEBIAN/control <<EOF
Package: $NAME
Version: $VERSION
Architecture: $ARCH
Maintainer: The Cache Studio contributors <maintainers@cachestudio.invalid>
Installed-Size: $SIZE
Depends: $DEPENDS
Suggests: redis-server, postgresql
Section: education
Priority: optional
Description: lab for caching strategies: cache-aside, write-through, write-behind
 Cache Studio runs cache-aside, write-through and write-behind for real, side
 by side (a diskcache directory as the cache, an SQLite file as the database),
 shows every request travel, injects faults (a killed cache node, a locked
 database, slow hops, bursts, stampedes) and names each anomaly it causes.
 With redis-server and postgresql installed, the same lab runs on Redis and
 PostgreSQL, with several app nodes per lane.
 .
 A self-contained build (Python, Qt for Python, NumPy inside); needs glibc
 $FLOOR or newer.
EOF
# Owned by root whoever builds; xz as dpkg-deb's default.
dpkg-deb --root-owner-group -Zxz --build "$ROOT" "$OUT"/${NAME}_${VERSION}_${ARCH}.deb
echo "Depends: $DEPENDS"
echo "glibc floor: $FLOOR"
