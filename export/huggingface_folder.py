"""A phrase-matcher run as plain Hugging Face folders, to keep fine-tuning it elsewhere.

    python -m export --run runs/NAME --format huggingface --out models/NAME-hf

One folder per trained fold (``fold<k>/``), each complete on its own: the backbone with LoRA merged
(``save_pretrained``: ``config.json`` + ``model.safetensors``, loadable with ``AutoModel``), everything
around it (CPC fusion, ordinal head, ...) in ``heads.safetensors``, ``model_config.json`` (LoRA off:
the weights are merged), the tokenizer, ``template.json`` and ``cpc_vocab.json``. The loader is
:func:`solution.phrase.model.load_pretrained`; a gate checks it scores the fold's validation rows as the
run does (max |diff| <= ``max_abs_diff``).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

from export.parity import ParityError
from export.staging import open_stage, publish

FORMAT = "huggingface"
RUN_FILES = ("template.json", "cpc_vocab.json")


def write_fold(run_dir: Path, fold: int, folder: Path) -> None:
    from safetensors.torch import save_file

    from solution.phrase.model import HEADS_FILE, load_trained

    model, tokenizer = load_trained(run_dir, fold)
    model.merge_lora()
    model.backbone.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    heads = {k: v.contiguous() for k, v in model.state_dict().items() if not k.startswith("backbone.")}
    save_file(heads, folder / HEADS_FILE)
    config = replace(model.config, backbone=".", lora=False)  # "." = this folder; the loader fills it in
    (folder / "model_config.json").write_text(json.dumps(config.to_dict(), indent=2) + "\n")
    for name in RUN_FILES:
        shutil.copy2(run_dir / name, folder / name)


def check_fold(run_dir: Path, fold: int, folder: Path, rows: int, max_abs_diff: float) -> float:
    """max |score of the written folder - score of the run| on the fold's validation rows."""
    from export.phrase import run_preprocessor, torch_scores, validation_rows
    from solution.phrase.data import model_input_names
    from solution.phrase.model import load_pretrained, load_trained

    reference, _ = load_trained(run_dir, fold)
    loaded, _ = load_pretrained(folder)
    preprocess, pad_id = run_preprocessor(run_dir)
    inputs = preprocess(validation_rows(run_dir, fold, rows))
    names = model_input_names(reference, preprocess.template.layout)
    diff = float(abs(torch_scores(reference, inputs, pad_id, names, 32) - torch_scores(loaded, inputs, pad_id, names, 32)).max())
    if diff > max_abs_diff:
        raise ParityError(f"fold {fold}: the written folder scores {diff:.2e} away from the run (> {max_abs_diff:.0e})")
    return diff


def export_huggingface(out: str | Path, run: str | Path, *, force: bool = False, rows: int = 256,
                       max_abs_diff: float = 1e-4) -> dict:
    """Write ``out/fold<k>/`` for every trained fold; returns {fold: max |diff|}."""
    from export.phrase import trained_folds

    run_dir, out = Path(run), Path(out)
    stage = open_stage(out, force)
    diffs = {}
    for fold in trained_folds(run_dir):
        write_fold(run_dir, fold, stage / f"fold{fold}")
        diffs[f"fold{fold}"] = check_fold(run_dir, fold, stage / f"fold{fold}", rows, max_abs_diff)
    publish(stage, out)
    return diffs


def main(args) -> int:
    """``python -m export --run RUN --format huggingface --out DIR``."""
    diffs = export_huggingface(args.out, args.run, force=args.force, max_abs_diff=args.max_abs_diff)
    print(json.dumps({"out": str(args.out), "format": FORMAT, "max_abs_diff": diffs}, indent=2))
    return 0
