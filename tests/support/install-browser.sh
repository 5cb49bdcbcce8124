#!/usr/bin/env bash
# Installs what the browser test needs, when missing: Debian's Chromium (browser downloads do
# not work here) and playwright-core from npm (tests/browser/package-lock.json).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
if [ ! -x /usr/bin/chromium ]; then
  echo "Installing chromium (Debian package)..."
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get -o DPkg::Lock::Timeout=600 update -qq
  $sudo apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends chromium >/dev/null
fi
if [ ! -d "$here/browser/node_modules/playwright-core" ]; then
  (cd "$here/browser" && npm ci --no-audit --no-fund --silent)
fi
