#!/usr/bin/env bash
# The Debian/Ubuntu packages Qt's xcb platform plugin needs to open a real window
# (Qt 6.5+ loads libxcb-cursor at run time). Installs only what is missing; prints
# nothing when all is there. Headless use (`cachestudio run`, the tests) needs none.
set -euo pipefail
pkgs=(libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 libxcb-image0 libxcb-render-util0
      libxcb-shape0 libxcb-xkb1 libxkbcommon-x11-0 libegl1 libfontconfig1 libdbus-1-3)
command -v dpkg-query >/dev/null 2>&1 || exit 0   # not Debian-like: nothing we can do here
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "installing packages Qt needs for a window: ${missing[*]}"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
$sudo apt-get update -qq
$sudo apt-get install -y -qq "${missing[@]}"
