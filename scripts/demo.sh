#!/usr/bin/env bash
# Install hvkit on a fresh Debian/Ubuntu machine and run `hvkit demo` on the built-in simulated hypervisor.
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends python3 python3-venv qemu-utils
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install -q .
exec .venv/bin/hvkit demo
