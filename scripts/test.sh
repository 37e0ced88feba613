#!/usr/bin/env bash
# The test command of the README and of CI: install into a venv, lint, then pytest (slow test included).
set -euo pipefail
cd "$(dirname "$0")/.."
export VENV=${VENV:-.venv-ci}
export SKIP_MPNET=1  # no test loads it (the smoke test trains the packaged MiniLM)
bash scripts/setup.sh
"$VENV/bin/python" -m ruff check .
"$VENV/bin/python" -m pytest -q -rs --durations=10 "$@"
