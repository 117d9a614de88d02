#!/usr/bin/env bash
# Install everything the tests need on a fresh Debian/Ubuntu machine (as root), start the services
# the tests use, and run the whole suite. Each file in scripts/setup.d/ adds one backend's part.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
export SUDO

APT_PACKAGES="python3-venv qemu-utils"
for part in scripts/setup.d/*.packages; do
  [ -e "$part" ] && APT_PACKAGES="$APT_PACKAGES $(grep -v '^#' "$part" | tr '\n' ' ')"
done
echo "== apt packages: $APT_PACKAGES"
$SUDO apt-get update -q
# shellcheck disable=SC2086
$SUDO apt-get install -y -q --no-install-recommends $APT_PACKAGES

PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/pip install -q --upgrade pip
.venv/bin/pip install -q -e '.[dev]'

for part in scripts/setup.d/*.sh; do
  [ -e "$part" ] || continue
  echo "== setup: $part"
  # shellcheck disable=SC1090
  source "$part"
done

echo "== lint, types, docs"
.venv/bin/ruff check hvkit tests bench scripts noxfile.py
.venv/bin/mypy  # hvkit, tests and bench ([tool.mypy] files in pyproject.toml)
.venv/bin/lint-imports  # the layers and contracts in pyproject.toml [tool.importlinter]
.venv/bin/python scripts/update_matrix.py --check
.venv/bin/mkdocs build --strict --quiet --site-dir "$(mktemp -d)"
echo "== tests"
exec .venv/bin/python -m pytest -q -p no:cacheprovider --durations=30 "$@"  # the 30 slowest: the suite has a time budget
