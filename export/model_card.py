"""The model card (``README.md`` with the YAML metadata the Hugging Face Hub reads) of an exported folder.

Written from what the export knows for certain: the manifest (backbone, variants, the parity gate's
checks, the training run's own metrics) and the run's config; nothing is typed in by hand. The card is
not in the manifest's file list: it describes the files, it is not one the library runs.

Example:
    >>> card = model_card("phrase-scorer", "demo", {"run": {"backbone": "sentence-transformers/all-mpnet-base-v2"},
    ...                   "variants": {"fp32": ["model.onnx"]}, "training": {"oof_pearson": 0.8},
    ...                   "parity": {"checks": []}}, {"epochs": 4})
    >>> card.splitlines()[:3]
    ['---', 'library_name: patent-similarity', 'license: apache-2.0']
"""

from __future__ import annotations

import json
from pathlib import Path

USES = {
    "phrase-scorer": ("sentence-similarity", ["us-patent-phrase-to-phrase-matching"],
                      "Scores how similar two patent phrases are within a CPC context (0 = unrelated, 1 = the "
                      "same meaning), as in the U.S. Patent Phrase to Phrase Matching competition: phrase-level "
                      "prior-art and term search, query expansion, de-duplication of claim terms.",
                      "python -m inference score --model MODEL --input pairs.csv --output scores.csv"),
    "embedder": ("feature-extraction", [],
                 "Embeds patents (title and abstract) and free-text queries for retrieval, CPC classification "
                 "and clustering of patents.",
                 "python -m inference index --model MODEL --corpus patents.csv --out indexes/NAME"),
}
DATA = {
    "phrase-scorer": "U.S. Patent Phrase to Phrase Matching (Kaggle, 2022): anchor/target phrase pairs with CPC "
                     "contexts and scores in {0, 0.25, 0.5, 0.75, 1}; the same pairs are Google's Patent Phrase "
                     "Similarity dataset (Aslanyan & Wetherbee 2022, arXiv:2208.01171, CC BY 4.0).",
    "embedder": "US patents (PatentsView; US patent text is public domain) with synthetic queries made from "
                "them, section pairs and CPC subclasses, as the run's recipe says.",
}


def yaml_front_matter(fields: dict) -> list[str]:
    """Flat YAML of strings and lists of strings (JSON-quoted where needed), enough for the Hub's metadata."""
    lines = ["---"]
    for key, value in fields.items():
        if isinstance(value, list):
            lines.append(f"{key}:")
            lines += [f"- {json.dumps(item)}" for item in value]
        elif value is not None:
            lines.append(f"{key}: {value}")
    return lines + ["---"]


def number(value, spec: str) -> str:
    """``value`` formatted, or "-" where a check did not measure it (None)."""
    return format(value, spec) if isinstance(value, (int, float)) else "-"


def section(manifest: dict, key: str) -> dict:
    """``manifest[key]`` where it is a table (the two kinds of manifest keep some fields flat)."""
    value = manifest.get(key)
    return value if isinstance(value, dict) else {}


def metrics_lines(manifest: dict) -> list[str]:
    training = section(manifest, "training")
    lines = []
    if isinstance(training.get("oof_pearson"), (int, float)):
        lines.append(f"- out-of-fold Pearson of the training run: {training['oof_pearson']:.4f}")
    for fold, value in sorted((training.get("fold_pearson") or {}).items()):
        lines.append(f"- fold {fold} validation Pearson: {number(value, '.4f')}")
    for key, value in sorted((training.get("metrics") or {}).items()):
        lines.append(f"- {key}: {value}")
    checks = section(manifest, "parity").get("checks") or []
    if checks:
        lines += ["", "Parity gate of the export (each graph against the PyTorch model on held-out rows):", "",
                  "| graph | metric | max abs diff | loss | passed |", "|---|---|---|---|---|"]
        lines += [f"| {c.get('name')} | {c.get('metric')} | {number(c.get('max_abs_diff'), '.2e')} | "
                  f"{number(c.get('loss'), '+.4f')} | {'yes' if c.get('passed') else 'no (not shipped)'} |"
                  for c in checks]
    return lines or ["- (the run recorded no metrics)"]


def model_card(kind: str, name: str, manifest: dict, config: dict, backbone: str | None = None) -> str:
    """The card's text for a folder of ``kind`` ("phrase-scorer" or "embedder")."""
    pipeline, datasets, use, command = USES[kind]
    backbone = backbone or section(manifest, "run").get("backbone") or config.get("model")
    is_hub_id = isinstance(backbone, str) and backbone.count("/") == 1 and not backbone.startswith((".", "/"))
    front = yaml_front_matter({"library_name": "patent-similarity", "license": "apache-2.0",
                               "pipeline_tag": pipeline, "base_model": backbone if is_hub_id else None,
                               "datasets": datasets or None, "tags": ["patents", "onnx", kind, "cpc"]})
    variants = ", ".join(sorted((manifest.get("variants") or {}).keys()))
    settings = "\n".join(f"- `{k}`: `{json.dumps(v)}`" for k, v in sorted(config.items())
                         if k not in ("out", "data", "submission", "test_csv", "corpus"))
    return "\n".join([
        *front, "", f"# {name}", "",
        f"An exported {kind} of the patent-similarity toolkit: ONNX graphs ({variants}) that the torch-free "
        "library runs with onnxruntime or OpenVINO, every file hashed in `manifest.json`.", "",
        "## Intended use", "", use, "",
        "Out of scope: legal judgements of novelty or infringement; languages other than English; "
        "scores compared across different models.", "",
        "## How to use", "", "```bash", "pip install 'patent-similarity[cpu]'", command.replace("MODEL", name),
        "```", "",
        "## Data", "", DATA[kind], "",
        "## Training", "", f"Base model: {backbone}. The run's configuration:", "", settings or "- (none recorded)", "",
        "## Metrics", "", *metrics_lines(manifest), "",
        "## How it was made", "",
        f"`python -m export` ({json.dumps(section(manifest, 'exporter').get('tool') or manifest.get('exporter'))}), "
        f"from the training run `{section(manifest, 'run').get('name') or manifest.get('source_run')}`; versions in "
        "`manifest.json`.", "",
        "## Licence", "", "The code and these weights: Apache-2.0. The base model and the data keep their own "
        "licences (above).", ""])


def write_model_card(stage: Path, name: str, kind: str, manifest: dict, config: dict, backbone: str | None = None) -> None:
    """``README.md`` into the export's ``stage`` folder, for the model folder called ``name``."""
    (Path(stage) / "README.md").write_text(model_card(kind, name, manifest, config, backbone), encoding="utf-8")
