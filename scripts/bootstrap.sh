#!/usr/bin/env bash
# Prepare this checkout: Debian packages the project needs at run and test time, and a
# virtual environment in .venv with the project installed (editable, with dev extras).
# Safe to run again: it only installs what is missing or changed.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

# etcd for membership and election tests; PostgreSQL so the state suite runs against both databases.
APT_PACKAGES=(etcd-server etcd-client postgresql)
# With --tests: what only the test suite needs (Chromium for the dashboard test, Prometheus
# and promtool for the monitoring tests, protoc with the well-known types for stubs in other
# languages).
if [ "${1:-}" = "--tests" ]; then
  APT_PACKAGES+=(chromium prometheus protobuf-compiler libprotobuf-dev)
fi

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  if [ "$(id -u)" -eq 0 ]; then SUDO=""; elif command -v sudo >/dev/null; then SUDO="sudo"; else
    echo "bootstrap: missing Debian packages ${missing[*]}; install them as root: apt-get install ${missing[*]}" >&2
    exit 1
  fi
  echo "bootstrap: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# Debian enables an etcd system service; the project starts its own etcd instances.
if command -v systemctl >/dev/null && systemctl is-active --quiet etcd 2>/dev/null; then
  echo "bootstrap: note: a system etcd service is running on this machine (not used by RingRift)"
fi

PYTHON="${PYTHON:-python3}"
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "bootstrap: Python 3.11 or newer is required (found $("$PYTHON" --version 2>&1)); set PYTHON=/path/to/python3.11" >&2
  exit 1
fi
if [ ! -x .venv/bin/python ]; then
  echo "bootstrap: creating .venv"
  "$PYTHON" -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip
fi
stamp=".venv/.ringrift-installed"
want="$(cat pyproject.toml | sha256sum | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "bootstrap: installing the project into .venv"
  .venv/bin/python -m pip install -q -e '.[dev]'
  echo "$want" > "$stamp"
fi
# The agent's native job wrapper (an editable install built it; again if its source changed).
.venv/bin/python hatch_build.py
