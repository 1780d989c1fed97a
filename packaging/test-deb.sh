#!/usr/bin/env bash
# The .deb as a user gets it: install it with apt, use the installed program, purge it, and
# check that nothing is left. Run as root (or with sudo) on a Debian or Ubuntu machine:
#   packaging/test-deb.sh [dist/cachestudio_VERSION_ARCH.deb]      (make test-deb)
# A cachestudio package already installed is purged first, and the package is purged
# after a failure too. Prints each figure it measures; its last line is "N passed, N failed".
set -euo pipefail
cd "$(dirname "$0")/.."
ARCH=$(dpkg --print-architecture)
DEB=${1:-$(ls -t dist/cachestudio_*_"$ARCH".deb 2>/dev/null | head -1)}
[ -n "$DEB" ] && [ -f "$DEB" ] || { echo "test-deb: no .deb; run make package first" >&2; exit 2; }
DEB=$(realpath "$DEB")
sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
t0=$(date +%s.%N)
since() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.2f}')" "$1" "$(date +%s.%N)"; }
passed=0
installed=""
fail() {
  echo "test-deb: FAILED: $*" >&2
  # leave the machine as it was: the package goes, whatever failed
  [ -z "$installed" ] || $sudo apt-get purge -y -qq cachestudio >/dev/null 2>&1 || true
  echo "test-deb: $passed passed, 1 failed"
  exit 1
}
ok() { passed=$((passed + 1)); echo "test-deb: ok: $*"; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"  # the installed program is used from a folder that has nothing of the clone

if dpkg-query -W -f='${Status}' cachestudio 2>/dev/null | grep -q "installed"; then
  echo "test-deb: purging the cachestudio package installed before"
  $sudo apt-get purge -y -qq cachestudio >/dev/null
fi
echo "test-deb: $DEB ($(du -h "$DEB" | cut -f1))"
dpkg-deb --field "$DEB" Depends | sed 's/^/test-deb: Depends: /'

t=$(date +%s.%N)
$sudo apt-get update -qq
$sudo apt-get install -y -qq "$DEB" >"$work/apt.log" 2>&1 || { cat "$work/apt.log"; fail "apt-get install"; }
installed=yes
ok "installed with apt-get in $(since "$t") s"

[ "$(command -v cachestudio)" = /usr/bin/cachestudio ] || fail "cachestudio is not /usr/bin/cachestudio on the PATH"
desktop-file-validate /usr/share/applications/cachestudio.desktop || fail "desktop entry"
appstreamcli validate --no-net /usr/share/metainfo/org.cachestudio.CacheStudio.metainfo.xml >/dev/null \
  || fail "AppStream metainfo"
for size in 16 24 32 48 64 128 256 512; do
  [ -s /usr/share/icons/hicolor/${size}x${size}/apps/cachestudio.png ] || fail "icon ${size}x${size}"
done
[ -s /usr/share/icons/hicolor/scalable/apps/cachestudio.svg ] || fail "scalable icon"
ok "on the PATH; desktop entry, AppStream metainfo and hicolor icons in place and valid"

n=$(cachestudio scenarios | grep -c .)
[ "$n" -ge 8 ] || fail "cachestudio scenarios listed $n scenarios"
ok "cachestudio scenarios: $n built-in scenarios"

best=""
for _ in 1 2 3 4 5; do
  t=$(date +%s.%N); cachestudio run --help >/dev/null; s=$(since "$t")
  best=$(python3 -c "import sys; print(min(float(x) for x in sys.argv[1:] if x))" "$s" ${best:+"$best"})
done
ok "cachestudio run --help: ${best} s (best of 5, warm)"

export QT_QPA_PLATFORM=offscreen
shots="$work/shots"; mkdir "$shots"
t=$(date +%s.%N)
cachestudio screenshot --scenario crash-the-node --at 2 --out "$shots" --size 800x600 >/dev/null \
  || fail "cachestudio screenshot"
for name in window flow charts anomalies; do
  [ "$(stat -c %s "$shots/$name.png" 2>/dev/null || echo 0)" -gt 5000 ] || fail "$name.png missing or empty"
done
ok "offscreen screenshot of crash-the-node at 2 s: 4 PNGs in $(since "$t") s"

t=$(date +%s.%N)
paint=$(cachestudio --bench-first-paint studio) || fail "first paint"
ok "the window's first paint (offscreen, 1600x1000): $(since "$t") s from the command ($(printf '%.2f' "$paint") s from its first line of Python)"

t=$(date +%s.%N)
cachestudio run --duration 2 --crash-at 1 --seed 7 --json "$work/live.json" --record "$work/run.csrec" \
  >"$work/run.txt" 2>&1 || { cat "$work/run.txt"; fail "cachestudio run"; }
grep -q "crash: cache node killed" "$work/run.txt" || { cat "$work/run.txt"; fail "no crash in the run"; }
grep -q "^lab incarnations *2 *2 *2" "$work/run.txt" || { cat "$work/run.txt"; fail "the labs were not restarted"; }
ok "cachestudio run --duration 2 --crash-at 1: three labs killed (SIGKILL) and restarted, in $(since "$t") s"

cachestudio replay "$work/run.csrec" --json "$work/replayed.json" || fail "cachestudio replay --json"
cmp -s <(python3 -c 'import json,sys; print(json.dumps(json.load(open(sys.argv[1])), sort_keys=True))' "$work/live.json") \
       <(python3 -c 'import json,sys; print(json.dumps(json.load(open(sys.argv[1])), sort_keys=True))' "$work/replayed.json") \
  || fail "the replayed summary differs from the live one"
cachestudio report "$work/run.csrec" --html "$work/report.html" 2>/dev/null || fail "cachestudio report"
grep -q "<svg" "$work/report.html" || fail "the report has no chart"
ok "recorded, replayed (the same summary as live) and reported ($(du -k "$work/report.html" | cut -f1) kB of HTML)"

if cachestudio --help 2>/dev/null | grep -q "self-check"; then
  cachestudio self-check || fail "cachestudio self-check"
  ok "cachestudio self-check"
fi
unset QT_QPA_PLATFORM

t=$(date +%s.%N)
$sudo apt-get purge -y -qq cachestudio >/dev/null 2>&1 || fail "apt-get purge"
installed=""
left=$(dpkg -L cachestudio 2>/dev/null || true)
[ -z "$left" ] || fail "dpkg still lists files: $left"
dpkg-query -W -f='${Status}' cachestudio 2>/dev/null | grep -q "installed" && fail "still installed"
for path in /usr/bin/cachestudio /usr/lib/cachestudio /usr/share/applications/cachestudio.desktop \
            /usr/share/metainfo/org.cachestudio.CacheStudio.metainfo.xml /usr/share/doc/cachestudio \
            /usr/share/icons/hicolor/scalable/apps/cachestudio.svg; do
  [ ! -e "$path" ] && [ ! -L "$path" ] || fail "$path is left after purge"
done
ok "purged in $(since "$t") s: nothing left"
echo "test-deb: all passed in $(since "$t0") s"
echo "test-deb: $passed passed, 0 failed"
