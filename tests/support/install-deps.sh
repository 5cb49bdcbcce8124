#!/usr/bin/env bash
# Installs the Debian packages the build and the tests need, when missing:
# cmake and nasm build the bundled libjpeg-turbo; nginx runs the gateway test;
# aiosmtpd is the SMTP server the notifier test delivers e-mail to; vips and exiftool make the
# real photos the import test sends; wrk is `make bench`'s load tool (tests/support/serving-bench.sh).
# apt waits for a lock another
# installer holds (the Docker set-up may be installing at the same time) instead of failing.
# Then what checks deploy/k8s offline (tests/api/deploy.rs): kubernetes-validate from PyPI in a
# venv under target/, and KEDA's schemas from npm (tests/k8s/), both pinned.
set -euo pipefail
missing=()
command -v cmake >/dev/null || missing+=(cmake)
command -v nasm >/dev/null || missing+=(nasm)
[ -x /usr/sbin/nginx ] || missing+=(nginx-light)
/usr/bin/python3 -c 'import aiosmtpd' 2>/dev/null || missing+=(python3-aiosmtpd)
# ../shared/photos/fetch.sh derives the camera photos with these; it installs them itself, but
# without waiting for apt's lock, so a test that fetched them while another install ran failed.
command -v vips >/dev/null || missing+=(libvips-tools)
command -v exiftool >/dev/null || missing+=(libimage-exiftool-perl)
command -v wrk >/dev/null || missing+=(wrk)
if [ ${#missing[@]} -gt 0 ]; then
  echo "Installing ${missing[*]} (Debian packages)..."
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get -o DPkg::Lock::Timeout=600 update -qq
  $sudo apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# Debian starts the nginx service on install; the tests run their own on other ports.
if [ -f /run/nginx.pid ] && command -v nginx >/dev/null; then nginx -s quit 2>/dev/null || true; fi

root=$(cd "$(dirname "$0")/../.." && pwd)
venv="$root/target/k8s-tools"
wanted=$(grep -m1 '^kubernetes-validate==' "$root/tests/k8s/requirements.txt" | cut -d= -f3)
if [ "$("$venv/bin/kubernetes-validate" --version 2>/dev/null)" != "$wanted" ]; then
  echo "Installing kubernetes-validate $wanted (PyPI) into target/k8s-tools..."
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check -r "$root/tests/k8s/requirements.txt"
fi
if [ ! -d "$root/tests/k8s/node_modules/@kubernetes-models/keda" ]; then
  (cd "$root/tests/k8s" && npm ci --no-audit --no-fund --silent)
fi
