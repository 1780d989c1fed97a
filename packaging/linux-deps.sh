#!/usr/bin/env bash
# Debian/Ubuntu packages Qt needs. `linux-deps.sh window` (make run): what Qt's xcb
# platform plugin needs to open a real window (Qt 6.5+ loads libxcb-cursor at run time).
# `linux-deps.sh offscreen` (make test): what offscreen rendering needs (EGL, fontconfig,
# xkbcommon, and fonts: without fonts Qt draws no text), and chromium, the browser that
# tests/test_htmlreport.py renders the HTML run report with (where the distribution packages
# it: Ubuntu ships it as a snap, and that test then skips, saying why). Installs only what is
# missing, prints nothing when all is there; does nothing on systems without dpkg.
set -euo pipefail
offscreen=(libegl1 libfontconfig1 libxkbcommon0 libdbus-1-3 fonts-dejavu-core)
window=("${offscreen[@]}" libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 libxcb-image0
        libxcb-render-util0 libxcb-shape0 libxcb-xkb1 libxkbcommon-x11-0)
browser=()
case "${1:-window}" in
  offscreen) pkgs=("${offscreen[@]}"); browser=(chromium) ;;
  window) pkgs=("${window[@]}") ;;
  *) echo "usage: $0 [window|offscreen]" >&2; exit 2 ;;
esac
command -v dpkg-query >/dev/null 2>&1 || exit 0
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
packaged() {  # has the distribution this package (or no package lists yet, so cannot tell)?
  apt-cache policy "$1" 2>/dev/null | grep "Candidate: [0-9]" >/dev/null || ! compgen -G "/var/lib/apt/lists/*Packages*" >/dev/null
}
for p in "${browser[@]}"; do
  command -v "$p" >/dev/null 2>&1 && continue
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" && continue
  packaged "$p" && missing+=("$p")  # not packaged (Ubuntu: a snap): no apt-get, no sudo prompt each time
done
[ ${#missing[@]} -eq 0 ] && exit 0
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
$sudo apt-get update -qq
install=()
for p in "${missing[@]}"; do
  if [[ " ${browser[*]} " == *" $p "* ]] && ! apt-cache policy "$p" 2>/dev/null | grep "Candidate: [0-9]" >/dev/null; then
    echo "$p is not packaged here: the browser test of tests/test_htmlreport.py will skip"
    continue
  fi
  install+=("$p")
done
[ ${#install[@]} -eq 0 ] && exit 0
echo "installing packages Qt (and the report's browser test) need: ${install[*]}"
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${install[@]}"
