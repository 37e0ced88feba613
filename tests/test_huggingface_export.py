"""A phrase run exported as plain Hugging Face folders: LoRA merged, loadable with AutoModel, and the
project's loader scores exactly like the run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import ROOT


def test_merged_folder_scores_like_the_run_and_loads_in_automodel(tiny_config, tmp_path):
    from transformers import AutoModel

    from export.huggingface_folder import export_huggingface
    from export.phrase import run_preprocessor, torch_scores, validation_rows
    from solution.phrase.data import model_input_names
    from solution.phrase.model import HEADS_FILE, load_pretrained, load_trained
    from solution.phrase.train import run

    cfg = tiny_config(epochs=1, folds=2, lora=True)  # LoRA: the export must merge it
    run(cfg)
    out = tmp_path / "hf"
    diffs = export_huggingface(out, cfg.out)
    assert set(diffs) == {"fold0", "fold1"} and max(diffs.values()) <= 1e-4
    for name in ("config.json", "model.safetensors", HEADS_FILE, "model_config.json", "tokenizer.json", "template.json"):
        assert (out / "fold1" / name).is_file(), name

    reference, _ = load_trained(cfg.out, 1)
    loaded, _ = load_pretrained(out / "fold1")
    assert not any("lora" in k for k in loaded.state_dict())  # plain weights, nothing to merge any more
    preprocess, pad_id = run_preprocessor(Path(cfg.out))
    inputs = preprocess(validation_rows(Path(cfg.out), 1, 64))
    names = model_input_names(reference, preprocess.template.layout)
    want, got = (torch_scores(m, inputs, pad_id, names, 16) for m in (reference, loaded))
    assert np.isfinite(want).all() and np.abs(want - got).max() < 1e-5

    backbone = AutoModel.from_pretrained(out / "fold1").eval()  # elsewhere, without this project
    ids = torch.tensor([[2, 7, 9, 3]])
    with torch.no_grad():
        merged = reference.merge_lora().backbone(input_ids=ids).last_hidden_state
        assert torch.allclose(backbone(input_ids=ids).last_hidden_state, merged, atol=1e-5)

    (out / "fold1" / "model_config.json").write_text((out / "fold1" / "model_config.json").read_text()
                                                     .replace('"cpc_fusion": true', '"cpc_fusion": false'))
    with pytest.raises(RuntimeError, match="do not fit the model"):
        load_pretrained(out / "fold1")


def test_an_embedder_run_is_refused(embedder_run, tmp_path):
    res = subprocess.run([sys.executable, "-m", "export", "--run", str(embedder_run[0]), "--format", "huggingface",
                          "--out", str(tmp_path / "hf")], cwd=ROOT, capture_output=True, text=True)
    assert res.returncode != 0 and "exports phrase runs" in res.stderr and not (tmp_path / "hf").exists()
