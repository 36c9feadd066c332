#!/usr/bin/env bash
# Run the main job (README's run command): prepare this checkout (scripts/bootstrap.sh)
# and start a local cluster with `ringrift up`. Extra arguments go to `ringrift up`.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$ROOT/scripts/bootstrap.sh"
exec "$ROOT/.venv/bin/ringrift" up "$@"
