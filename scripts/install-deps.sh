#!/bin/sh
# Installs the Debian packages r1c builds against, when any is missing.
# Run by `make` on first use; safe to run again.
set -e
PKGS="build-essential libopenblas-dev libopenblas0-openmp libjansson-dev libutf8proc-dev libgmp-dev libyaml-dev libseccomp-dev libpng-dev pkg-config python3"
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "r1c: installing Debian packages:$missing"
SUDO=""
[ "$(id -u)" != 0 ] && SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing
