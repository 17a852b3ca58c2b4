#!/usr/bin/env bash
# The one test command: installs everything the tests need, then runs the default suite.
# Extra arguments go to pytest (e.g. scripts/test.sh -m slow, or a path).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh test
# real components the integration tests start on loopback (Debian packages)
need=()
command -v prometheus >/dev/null 2>&1 || need+=(prometheus)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need+=(chromium-driver)
if [ ${#need[@]} -gt 0 ]; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "== installing Debian packages: ${need[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  else
    echo "error: the tests need the Debian packages: ${need[*]} (sudo apt-get install ${need[*]})" >&2
    exit 2
  fi
fi
echo "== import layering (import-linter)"
.venv/bin/lint-imports --no-cache
echo "== ruff"
.venv/bin/ruff check src tests bench
echo "== pytest"
if [ $# -eq 0 ]; then set -- -m "not slow"; fi
exec .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
