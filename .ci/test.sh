#!/usr/bin/env bash
# The whole test suite from a fresh clone: set up, lint, import layers, type-check, test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash .ci/setup.sh test
.venv/bin/ruff check .
.venv/bin/lint-imports --no-cache
.venv/bin/mypy
.venv/bin/pytest -q -p no:cacheprovider "$@"
