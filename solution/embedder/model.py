"""The bi-encoder: backbone + mean pooling over real tokens + L2 normalisation, LoRA on the backbone.

Queries and documents share one encoder, so a cosine similarity is a dot product of two outputs.
Export puts the same pooling and normalisation inside the ONNX graph (:meth:`BiEncoder.forward`).

Example:
    >>> from transformers import BertConfig, BertModel
    >>> backbone = BertModel(BertConfig(vocab_size=30, hidden_size=16, num_hidden_layers=2,
    ...                                 num_attention_heads=2, intermediate_size=32))
    >>> enc = BiEncoder(EmbedderConfig(backbone="tiny", lora=False), backbone)
    >>> ids = torch.tensor([[2, 5, 6, 3, 0]]); mask = torch.tensor([[1, 1, 1, 1, 0]])
    >>> vec = enc(ids, mask)
    >>> tuple(vec.shape), round(float(vec.detach().norm()), 4)
    ((1, 16), 1.0)
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from solution.backbone import DEFAULT_MODEL, load_backbone, masked_mean, set_dropout
from solution.lora import LoraSpec, load_trainable_state, merge_lora, trainable_state_dict, wrap_lora


@dataclass
class EmbedderConfig(LoraSpec):
    backbone: str = DEFAULT_MODEL
    # document tokens: MiniLM's training length, which scores at least as well as longer documents and embeds
    # faster (docs/decisions/embedder-document-tokens.md); queries are short and use query_max_length
    max_length: int = 128
    query_max_length: int = 64
    doc_view: str = "title+abstract"
    dropout: float | None = None  # every dropout of the backbone in training; None = the backbone's own

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> EmbedderConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


class BiEncoder(nn.Module):
    def __init__(self, config: EmbedderConfig, backbone: nn.Module):
        super().__init__()
        self.config = config
        self.uses_token_type_ids = getattr(backbone.config, "type_vocab_size", 0) > 0
        if config.dropout is not None:  # before LoRA wraps it: its adapters keep their own lora_dropout
            set_dropout(backbone, config.dropout)
        self.backbone = wrap_lora(backbone, config)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Unit-length embeddings (float32), one per row: the ONNX graph's single output."""
        kwargs = {"token_type_ids": torch.zeros_like(input_ids)} if self.uses_token_type_ids else {}
        out = self.backbone(input_ids=input_ids, attention_mask=attention_mask, **kwargs)
        return F.normalize(masked_mean(out.last_hidden_state.float(), attention_mask), dim=-1)

    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        """Only the LoRA adapters (about 1 MB), not the frozen backbone."""
        return trainable_state_dict(self)

    def merge_lora(self) -> BiEncoder:
        self.backbone = merge_lora(self.backbone)
        return self


def build_encoder(config: EmbedderConfig, **backbone_options) -> tuple[BiEncoder, object]:
    """(encoder, tokenizer) for ``config.backbone`` (a Hugging Face id or a folder); ``backbone_options``
    go to ``from_pretrained`` (export asks for ``attn_implementation="eager"``)."""
    backbone, tokenizer = load_backbone(config.backbone, **backbone_options)
    return BiEncoder(config, backbone), tokenizer


def load_run_encoder(run_dir: str | Path, device: str = "cpu", merge: bool = True,
                     **backbone_options) -> tuple[BiEncoder, object, EmbedderConfig]:
    """Rebuild a trained run for inference: backbone + its LoRA weights, eval mode. ``merge`` folds the
    adapters into the base weights (export's form): the same vectors, faster than peft's unmerged path,
    whose two extra small matmuls per adapted layer are not free on a CPU
    (docs/decisions/embedder-document-tokens.md)."""
    from transformers import AutoTokenizer

    run_dir = Path(run_dir)
    cfg_path = run_dir / "embedder_config.json"
    if not cfg_path.exists():
        raise FileNotFoundError(f"{run_dir}: no embedder_config.json; is this an embedder run folder?")
    config = EmbedderConfig.from_dict(json.loads(cfg_path.read_text()))
    model, _ = build_encoder(config, **backbone_options)
    load_trainable_state(model, run_dir / "trainable_state.pt")
    tokenizer = AutoTokenizer.from_pretrained(run_dir / "tokenizer")
    if merge:
        model.merge_lora()
    return model.to(device).eval(), tokenizer, config


def encode_texts(model: BiEncoder, tokenizer, texts: list[str], max_length: int, batch_size: int = 64,
                 device: str = "cpu", precision: str = "fp32", progress: str = "") -> np.ndarray:
    """Embeddings (float32, unit length) of ``texts`` in order; batches are sorted by length for speed."""
    from tqdm.auto import tqdm

    from solution.precision import autocast

    order = np.argsort([-len(t) for t in texts], kind="stable")
    out = np.zeros((len(texts), 0), dtype=np.float32)
    chunks = []
    model.eval()
    with torch.inference_mode():
        starts = range(0, len(texts), batch_size)
        for s in tqdm(starts, desc=progress, disable=not progress, leave=False, mininterval=5, dynamic_ncols=True):
            batch = [texts[i] for i in order[s:s + batch_size]]
            enc = tokenizer(batch, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
            with autocast(precision, device):
                vec = model(enc["input_ids"].to(device), enc["attention_mask"].to(device))
            chunks.append(vec.float().cpu().numpy())
    if chunks:
        stacked = np.concatenate(chunks)
        out = np.empty_like(stacked)
        out[order] = stacked
    return out
