#!/usr/bin/env bash
# Installs the Debian packages tally needs, when any is missing.
#   tools/deps.sh PKG...          install what is missing (as root, or through sudo)
#   tools/deps.sh --check PKG...  the same, but silent when nothing is missing
set -euo pipefail
check=0
if [ "${1:-}" = "--check" ]; then check=1; shift; fi
missing=()
for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
    [ $check -eq 1 ] || echo "deps: all installed"
    exit 0
fi
echo "deps: installing ${missing[*]}" >&2
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >/dev/null || true
$SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
