#!/bin/sh
# Installs the Debian packages r1d builds and tests with, only those missing.
# Idempotent: a second run installs nothing. Uses sudo when not root.
set -eu
pkgs="build-essential meson ninja-build pkg-config python3 python3-venv
libmicrohttpd-dev libjansson-dev libuv1-dev liblmdb-dev libcmocka-dev
libopenblas-openmp-dev libpcre2-dev libutf8proc-dev libcurl4-openssl-dev"
missing=""
for p in $pkgs; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing="$missing $p"
  fi
done
[ -z "$missing" ] && exit 0
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if ! command -v sudo >/dev/null 2>&1; then
    echo "install-deps: missing packages:$missing" >&2
    echo "install-deps: not root and no sudo; install them as root" >&2
    exit 1
  fi
  SUDO="sudo"
fi
echo "installing:$missing"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing
