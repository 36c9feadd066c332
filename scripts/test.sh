#!/usr/bin/env bash
# Run the test suite (README's test command). Extra arguments go to pytest.
# Installs what the tests need first (scripts/bootstrap.sh). A run that collects no
# test fails: pytest's exit code 5 is turned into 1.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$ROOT/scripts/bootstrap.sh" --tests
cd "$ROOT"
set +e
.venv/bin/python -m pytest "$@"
code=$?
set -e
if [ "$code" -eq 5 ]; then
  echo "test.sh: no tests were collected; that is a failure" >&2
  exit 1
fi
exit "$code"
