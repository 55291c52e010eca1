#!/usr/bin/env bash
# Headless Chromium + its driver for the leaderboard's browser test (tests/reports/test_browser.py):
# Debian's packages, installed once per machine (needs root or sudo); selenium comes with '.[test]'.
set -euo pipefail
if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
    exit 0
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends chromium chromium-driver
