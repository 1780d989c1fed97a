#!/usr/bin/env bash
# Debian/Ubuntu packages Qt needs. `linux-deps.sh window` (make run): what Qt's xcb
# platform plugin needs to open a real window (Qt 6.5+ loads libxcb-cursor at run time).
# `linux-deps.sh offscreen` (make test): what offscreen rendering needs (EGL, fontconfig,
# xkbcommon, and fonts: without fonts Qt draws no text). Installs only what is missing,
# prints nothing when all is there; does nothing on systems without dpkg.
set -euo pipefail
offscreen=(libegl1 libfontconfig1 libxkbcommon0 libdbus-1-3 fonts-dejavu-core)
window=("${offscreen[@]}" libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 libxcb-image0
        libxcb-render-util0 libxcb-shape0 libxcb-xkb1 libxkbcommon-x11-0)
case "${1:-window}" in
  offscreen) pkgs=("${offscreen[@]}") ;;
  window) pkgs=("${window[@]}") ;;
  *) echo "usage: $0 [window|offscreen]" >&2; exit 2 ;;
esac
command -v dpkg-query >/dev/null 2>&1 || exit 0
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "installing packages Qt needs: ${missing[*]}"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}"
