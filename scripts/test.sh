#!/usr/bin/env bash
# The one test command: installs everything the tests need, then runs the default suite.
# Extra arguments go to pytest (e.g. scripts/test.sh -m slow, or a path).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh test
echo "== import layering (import-linter)"
.venv/bin/lint-imports --no-cache
echo "== ruff"
.venv/bin/ruff check src tests bench
echo "== pytest"
if [ $# -eq 0 ]; then set -- -m "not slow"; fi
exec .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
