#!/usr/bin/env bash
# Build the project wheel and every dependency wheel into dist/wheelhouse, for the image.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$ROOT/scripts/bootstrap.sh"
cd "$ROOT"
rm -rf dist/wheelhouse
.venv/bin/python -m pip wheel -q -w dist/wheelhouse .
echo "wheels in dist/wheelhouse: $(ls dist/wheelhouse | wc -l)"
