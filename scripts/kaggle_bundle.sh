#!/usr/bin/env bash
# A Kaggle offline bundle: one folder to upload as a dataset, installable with the network off.
#
#   bash scripts/kaggle_bundle.sh RUN_OR_MODEL OUT
#
# RUN_OR_MODEL: a training run (runs/NAME: exported here with `python -m export`) or an exported model
# folder (holds manifest.json: copied). OUT gets
#   model/     the exported model (manifest, graphs, tokenizer)
#   wheels/    this project's wheel + the wheels of the inference library's dependencies (numpy,
#              tokenizers, onnxruntime and theirs) for Kaggle's Python (KAGGLE_PYTHON, default 3.11)
#              and platforms (KAGGLE_PLATFORMS, default the manylinux x86_64 tags up to glibc 2.28)
#   README.md  the two-line install and scoring commands
# Needs the project's venv (PYTHON, default .venv/bin/python) and PyPI to download the wheels.
set -euo pipefail
if [ $# -ne 2 ]; then
    echo "usage: bash scripts/kaggle_bundle.sh RUN_OR_MODEL OUT" >&2
    exit 2
fi
src=$1
out=$2
root=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-$root/.venv/bin/python}
kaggle_python=${KAGGLE_PYTHON:-3.11}
platforms=${KAGGLE_PLATFORMS:-manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64}
[ -d "$src" ] || { echo "error: $src is not a folder (a run folder or an exported model folder)" >&2; exit 2; }
[ ! -e "$out" ] || { echo "error: $out already exists; choose another OUT" >&2; exit 2; }

stage="$(dirname "$out")/.$(basename "$out").partial"  # moved to OUT only when complete
rm -rf "$stage"
mkdir -p "$stage/wheels"
if [ -f "$src/manifest.json" ]; then
    cp -r "$src" "$stage/model"
else
    "$python" -m export --run "$src" --out "$stage/model"
fi

# The project itself (pure Python) and the inference dependencies as binary wheels for Kaggle's Python.
# pip download matches --platform tags literally, so every manylinux tag a dependency may use is listed.
# built from a copy of the package sources, so the checkout gets no build/ or .egg-info folders
src_copy=$(mktemp -d)
trap 'rm -rf "$src_copy"' EXIT
cp -r "$root/setup.cfg" "$root/pyproject.toml" "$root/README.md" "$root/solution" "$root/export" "$root/inference" "$src_copy/"
"$python" -m pip wheel -q --no-deps --wheel-dir "$stage/wheels" "$src_copy"
requirements=$("$python" - "$root/setup.cfg" <<'EOF'
import configparser, sys
cfg = configparser.ConfigParser()
cfg.read(sys.argv[1])
lines = cfg["options"]["install_requires"] + cfg["options.extras_require"]["cpu"]  # the library + its CPU runtime
print(" ".join(line.strip() for line in lines.splitlines() if line.strip()))
EOF
)
platform_args=()
for tag in $platforms; do platform_args+=(--platform "$tag"); done
# shellcheck disable=SC2086 # one argument per requirement
"$python" -m pip download -q --only-binary=:all: --python-version "$kaggle_python" --implementation cp \
    "${platform_args[@]}" --dest "$stage/wheels" $requirements

kind=$("$python" -c "import json,sys; print(json.load(open(sys.argv[1]))['kind'])" "$stage/model/manifest.json")
name=$(basename "$out")
if [ "$kind" = "embedder" ]; then
    use="python -m inference index --model /kaggle/input/$name/model --corpus patents.csv --out /kaggle/working/index --no-bm25"
else
    use="python -m inference score --model /kaggle/input/$name/model --input /kaggle/input/us-patent-phrase-to-phrase-matching/test.csv --output /kaggle/working/submission.csv"
fi
cat > "$stage/README.md" <<EOF
# $name: offline bundle

Made by \`bash scripts/kaggle_bundle.sh $src $out\` for Python $kaggle_python (Linux x86_64):
the exported $kind model and the wheels of the torch-free inference library.

In a Kaggle notebook with the internet off:
1. Upload this folder as a dataset: kaggle.com -> Datasets -> New Dataset, drop the folder (or
   \`kaggle datasets create -p $out\` with the Kaggle CLI), name it \`$name\`.
2. In the competition notebook: Add Input -> Your Datasets -> \`$name\`; it appears at
   \`/kaggle/input/$name\`. The competition's own files are at
   \`/kaggle/input/us-patent-phrase-to-phrase-matching/\` (\`train.csv\`, \`test.csv\`).
3. Settings -> Internet off, then in a cell:

\`\`\`bash
!pip install --no-index --find-links /kaggle/input/$name/wheels 'patent-similarity[cpu]'
!$use
\`\`\`

The submission must be \`/kaggle/working/submission.csv\` (\`id,score\`), which the command writes.
EOF
mv "$stage" "$out"
echo "bundle written: $out ($(ls "$out/wheels" | wc -l) wheels, model kind $kind)"
