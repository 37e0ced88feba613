"""The phrase matcher, whole: backbone + CPC fusion + ordinal head, in one readable file.

    input_ids ──> token embeddings ──(+ proj(norm(section_emb + class_emb)))──> encoder ──> pool ──> head ──> score

* CPC fusion: a learnable embedding of the context code at section and class level, layer-normed,
  projected to the hidden size and added to every token embedding, so the code ids are a graph input
  (they survive ONNX export) and every layer sees the domain.
* Ordinal head (CORAL-style cumulative link): one latent ``f`` and four ordered thresholds give
  ``P(y > level k)``; the score is the expected level ``0.25 * sum_k P(y > k)``, always in [0, 1].
* LoRA (peft) on the backbone; the CPC tables, projection and head train fully.
* NT-Xent (training only): :meth:`PhraseMatcher.phrase_vectors` encodes a bare phrase through the same
  backbone, adapters and CPC fusion (``solution/phrase/losses/nt_xent.py`` says why not spans).

Example:
    >>> from transformers import BertConfig, BertModel
    >>> backbone = BertModel(BertConfig(vocab_size=30, hidden_size=16, num_hidden_layers=2,
    ...                                 num_attention_heads=2, intermediate_size=32))
    >>> model = PhraseMatcher(ModelConfig(backbone="tiny", num_classes=5, lora=False), backbone)
    >>> ids = torch.tensor([[1, 5, 2, 6, 2]])
    >>> model(ids, torch.ones_like(ids), torch.tensor([1]), torch.tensor([3])).shape
    torch.Size([1])
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from solution.backbone import DEFAULT_MODEL, load_backbone, masked_mean, set_dropout
from solution.lora import LoraSpec, load_trainable_state, merge_lora, trainable_state_dict, wrap_lora

NUM_LEVELS = 5  # scores 0, .25, .5, .75, 1


@dataclass
class ModelConfig(LoraSpec):
    backbone: str = DEFAULT_MODEL
    head: str = "ordinal"  # "ordinal" (cumulative link, score = expected level) | "linear" (plain regression)
    pooling: str = "pair"  # "pair" (anchor+target tokens) | "interaction" ([t, a, t*a]) | "mean" | "cls"
    head_dropout: float = 0.1
    dropout: float | None = None  # every dropout of the backbone and the head's; None = the backbone's own
    cpc_fusion: bool = True
    cpc_dim: int = 64
    cpc_max_norm_ratio: float = 0.25  # cap of the CPC vector's norm, relative to a token embedding's
    num_sections: int = 10
    num_classes: int = 107
    projection_dim: int = 128  # NT-Xent projection head output size
    sep_token_id: int = 102
    cls_token_id: int = 101

    def to_dict(self) -> dict:
        return asdict(self)


class OrdinalHead(nn.Module):
    """Cumulative-link head: logits_k = f(x) + b_k with b_1 > b_2 > b_3 > b_4 by construction."""

    def __init__(self, hidden: int, dropout: float):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.latent = nn.Linear(hidden, 1)
        self.first_threshold = nn.Parameter(torch.zeros(1))
        self.threshold_gaps = nn.Parameter(torch.zeros(NUM_LEVELS - 2))

    def thresholds(self) -> torch.Tensor:
        gaps = F.softplus(self.threshold_gaps)
        return torch.cat([self.first_threshold, self.first_threshold - torch.cumsum(gaps, 0)])

    def init_from_prior(self, level_counts: list[int]) -> None:
        """Start at the training label distribution: b_k = logit P(y > k)."""
        total = float(sum(level_counts))
        above = [sum(level_counts[k + 1 :]) / total for k in range(NUM_LEVELS - 1)]
        logits = torch.logit(torch.tensor(above).clamp(1e-3, 1 - 1e-3))
        with torch.no_grad():
            self.first_threshold.fill_(float(logits[0]))
            gaps = (logits[:-1] - logits[1:]).clamp_min(1e-3)
            self.threshold_gaps.copy_(torch.log(torch.expm1(gaps)))  # inverse softplus

    def forward(self, pooled: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.latent(self.dropout(pooled)) + self.thresholds()  # (..., 4)
        score = torch.sigmoid(logits).sum(-1) / (NUM_LEVELS - 1)
        return score, logits


class LinearHead(nn.Module):
    def __init__(self, hidden: int, dropout: float):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(hidden, 1)

    def init_from_prior(self, level_counts: list[int]) -> None:
        mean = sum(c * k / (NUM_LEVELS - 1) for k, c in enumerate(level_counts)) / sum(level_counts)
        with torch.no_grad():
            self.out.bias.fill_(mean)

    def forward(self, pooled: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        score = self.out(self.dropout(pooled)).squeeze(-1)
        return score, score[..., None]


class CpcFusion(nn.Module):
    """Section + class embedding -> LayerNorm -> Linear(hidden): one vector added to every token."""

    def __init__(self, num_sections: int, num_classes: int, dim: int, hidden: int, token_scale: float = 0.05,
                 max_norm: float = float("inf")):
        super().__init__()
        self.max_norm = max_norm
        self.section = nn.Embedding(num_sections, dim)
        self.klass = nn.Embedding(num_classes, dim)
        self.norm = nn.LayerNorm(dim)
        self.proj = nn.Linear(dim, hidden)
        # The same vector is added to every token, so if it outweighs the token embeddings every
        # token looks alike and the model collapses to predicting the mean (docs/decisions/seed-design-parts.md).
        # Start it at ~10% of the backbone's per-dimension token scale.
        nn.init.normal_(self.proj.weight, std=0.1 * token_scale / dim**0.5)
        nn.init.zeros_(self.proj.bias)

    def forward(self, section_ids: torch.Tensor, class_ids: torch.Tensor) -> torch.Tensor:
        vec = self.proj(self.norm(self.section(section_ids) + self.klass(class_ids)))
        # Adam grows the vector towards a token's own norm, which washes out the tokens and collapses the
        # model (docs/decisions/seed-design-parts.md); capping its norm keeps it a bounded shift.
        norm = vec.norm(dim=-1, keepdim=True)
        return vec * (self.max_norm / norm.clamp_min(self.max_norm))


class PhraseMatcher(nn.Module):
    def __init__(self, config: ModelConfig, backbone: nn.Module):
        super().__init__()
        self.config = config
        hidden = backbone.config.hidden_size
        self.uses_token_type_ids = getattr(backbone.config, "type_vocab_size", 0) > 0
        if config.dropout is not None:  # before LoRA wraps it: its adapters keep their own lora_dropout
            set_dropout(backbone, config.dropout)
        # the pooler never reaches the loss (the hidden states are pooled here)
        backbone = wrap_lora(backbone, config, exclude_modules=r".*pooler.*")
        self.backbone = backbone
        token_weights = backbone.get_input_embeddings().weight.detach().float()
        token_scale, token_norm = float(token_weights.std()), float(token_weights.norm(dim=1).mean())
        self.cpc = (CpcFusion(config.num_sections, config.num_classes, config.cpc_dim, hidden, token_scale,
                              config.cpc_max_norm_ratio * token_norm) if config.cpc_fusion else None)
        # [target, anchor, target * anchor] -> hidden: an explicit interaction feature for the head
        self.interaction = (nn.Sequential(nn.Linear(3 * hidden, hidden), nn.GELU())
                            if config.pooling == "interaction" else None)
        head_dropout = config.head_dropout if config.dropout is None else config.dropout
        self.head = (OrdinalHead if config.head == "ordinal" else LinearHead)(hidden, head_dropout)
        # SimCLR-style projection of the NT-Xent vectors (training only, never exported): the contrastive
        # geometry is learned in its output, so the backbone's features stay free to serve the head.
        self.phrase_projection = nn.Sequential(nn.Linear(hidden, hidden), nn.GELU(),
                                               nn.Linear(hidden, config.projection_dim))

    def encode(self, input_ids, attention_mask, section_ids, class_ids, token_type_ids=None):
        embeds = self.backbone.get_input_embeddings()(input_ids)
        if self.cpc is not None:
            embeds = embeds + self.cpc(section_ids, class_ids)[:, None, :].to(embeds.dtype)
        kwargs = {"token_type_ids": token_type_ids} if self.uses_token_type_ids and token_type_ids is not None else {}
        return self.backbone(inputs_embeds=embeds, attention_mask=attention_mask, **kwargs)

    def pool(self, hidden: torch.Tensor, attention_mask: torch.Tensor, input_ids: torch.Tensor,
             target_masks: torch.Tensor) -> torch.Tensor:
        """One vector per target slot, (B, T, H) (T = 1 in the pair layout).

        ``pair``: mean over the anchor's and that target's tokens. The title and the sibling targets
        still shape those tokens through attention, but a mean over *all* tokens lets the many context
        tokens drown the few of the pair (docs/decisions/multi-layout.md). ``interaction``:
        ``[t, a, t * a]`` of the target mean ``t`` and the anchor mean ``a``, through a Linear + GELU.
        ``mean`` and ``cls`` (pair layout only) ignore the spans.
        """
        if self.config.pooling == "cls":
            return hidden[:, None, 0]
        if self.config.pooling == "mean":
            return masked_mean(hidden, attention_mask.bool())[:, None]
        anchor = span_masks(input_ids, attention_mask, self.config.sep_token_id, self.config.cls_token_id)[0]
        weights = target_masks.to(hidden.dtype)
        target_sum, target_n = weights @ hidden, weights.sum(-1, keepdim=True)  # (B, T, H), (B, T, 1)
        anchor_w = anchor.to(hidden.dtype)[:, None, :]
        anchor_sum, anchor_n = anchor_w @ hidden, anchor_w.sum(-1, keepdim=True)  # (B, 1, H), (B, 1, 1)
        if self.config.pooling == "pair":
            return (target_sum + anchor_sum) / (target_n + anchor_n).clamp_min(1.0)
        t, a = target_sum / target_n.clamp_min(1.0), anchor_sum / anchor_n.clamp_min(1.0)
        a = a.expand_as(t)
        return self.interaction(torch.cat([t, a, t * a], dim=-1))

    def target_masks(self, input_ids, attention_mask, span_ids=None, num_slots: int | None = None) -> torch.Tensor:
        """(B, T, L) token masks of each target slot: from ``span_ids`` (multi layout; slot k holds the
        tokens with span id k + 1) or the segment between the 1st and 2nd separator (pair layout)."""
        if span_ids is None:
            return span_masks(input_ids, attention_mask, self.config.sep_token_id, self.config.cls_token_id)[1][:, None]
        num_slots = span_ids.shape[1] if num_slots is None else num_slots
        slots = torch.arange(1, num_slots + 1, device=span_ids.device)
        return span_ids[:, None, :] == slots[None, :, None]

    def forward(self, input_ids, attention_mask, section_ids=None, class_ids=None, token_type_ids=None, span_ids=None,
                train_outputs: bool = False, num_slots: int | None = None):
        """Scores: (B,) per row in the pair layout; with ``span_ids`` (multi layout) (B, T) per target slot,
        T = the sequence length unless ``num_slots`` says less (slots past a row's targets are padding).
        With ``train_outputs`` a dict of the scores and the ordinal logits (..., 4) as well (a DDP wrapper
        only calls ``forward``)."""
        out = self.encode(input_ids, attention_mask, section_ids, class_ids, token_type_ids)
        masks = self.target_masks(input_ids, attention_mask, span_ids, num_slots)
        score, logits = self.head(self.pool(out.last_hidden_state, attention_mask, input_ids, masks))
        if span_ids is None:  # pair layout: one target per row
            score, logits = score[:, 0], logits[:, 0]
        return {"score": score.float(), "logits": logits.float()} if train_outputs else score.float()

    def phrase_vectors(self, input_ids, attention_mask, section_ids, class_ids, buckets: int = 2) -> torch.Tensor:
        """Projected NT-Xent vectors (N, P) of bare phrases, one per sequence ``[CLS] phrase [SEP]``: the mean
        of the phrase's own tokens (no CLS, SEP or padding) after the backbone, adapters and CPC fusion.
        The phrases go through in ``buckets`` groups sorted by length, each cut to its own longest, because
        a few long phrases would otherwise pad the whole pass to their length (docs/decisions/seed-design-parts.md).
        A bare phrase's vector does not depend on the others, so only the cost changes."""
        order = torch.argsort(attention_mask.sum(1))
        vectors = []
        for rows in order.tensor_split(min(buckets, len(order))):
            width = int(attention_mask[rows].sum(1).max())
            vectors.append(self._phrase_vectors(input_ids[rows, :width], attention_mask[rows, :width], section_ids[rows],
                                                class_ids[rows]))
        return torch.cat(vectors)[torch.argsort(order)]

    def _phrase_vectors(self, input_ids, attention_mask, section_ids, class_ids) -> torch.Tensor:
        hidden = self.encode(input_ids, attention_mask, section_ids, class_ids).last_hidden_state
        special = (input_ids == self.config.cls_token_id) | (input_ids == self.config.sep_token_id)
        return self.phrase_projection(masked_mean(hidden.float(), attention_mask.bool() & ~special))

    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        """Only what training changes: LoRA adapters, CPC fusion, head (a few MB, not the backbone)."""
        return trainable_state_dict(self)

    def merge_lora(self) -> PhraseMatcher:
        """Fold the LoRA weights into the base weights (same outputs, plain transformer inside)."""
        self.backbone = merge_lora(self.backbone)
        return self


def span_masks(input_ids, attention_mask, sep_id: int, cls_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Masks of the anchor (before the 1st separator) and target (between the 1st and 2nd) tokens."""
    is_sep = input_ids == sep_id
    segment = torch.cumsum(is_sep.long(), dim=1) - is_sep.long()  # separators belong to the segment they close
    real = attention_mask.bool() & ~is_sep & (input_ids != cls_id)
    return real & (segment == 0), real & (segment == 1)


def build_model(config: ModelConfig, backbone=None, **backbone_options) -> PhraseMatcher:
    """``backbone_options`` go to ``from_pretrained`` (export asks for ``attn_implementation="eager"``)."""
    if backbone is None:
        backbone, _ = load_backbone(config.backbone, **backbone_options)
    return PhraseMatcher(config, backbone)


HEADS_FILE = "heads.safetensors"  # everything but the backbone: CPC fusion, head, interaction, NT-Xent projection


def load_pretrained(folder: str | Path, device: str = "cpu") -> tuple[PhraseMatcher, object]:
    """A merged model written by ``python -m export --format huggingface`` (one fold's folder): the
    backbone is a plain Hugging Face model in ``folder`` and the rest is ``heads.safetensors``.

        >>> model, tokenizer = load_pretrained("models/NAME-hf/fold0")   # doctest: +SKIP
    """
    import json

    from safetensors.torch import load_file
    from transformers import AutoTokenizer

    folder = Path(folder)
    config = ModelConfig(**{**json.loads((folder / "model_config.json").read_text()), "backbone": str(folder)})
    model = build_model(config)
    heads = load_file(folder / HEADS_FILE)
    expected = {k for k in model.state_dict() if not k.startswith("backbone.")}
    if set(heads) != expected:
        raise RuntimeError(f"{folder / HEADS_FILE}: holds {sorted(set(heads) ^ expected)[:3]}... that do not fit "
                           "the model in model_config.json")
    model.load_state_dict(heads, strict=False)
    return model.to(device).eval(), AutoTokenizer.from_pretrained(folder)


def load_trained(run_dir: str | Path, fold: int, device: str = "cpu", **backbone_options) -> tuple[PhraseMatcher, object]:
    """Rebuild fold ``fold`` of a training run: backbone + trained LoRA/CPC/head weights, eval mode."""
    import json

    from transformers import AutoTokenizer

    run_dir = Path(run_dir)
    config = ModelConfig(**json.loads((run_dir / "model_config.json").read_text()))
    model = build_model(config, **backbone_options)
    load_trainable_state(model, run_dir / f"fold{fold}" / "trainable_state.pt")
    tokenizer = AutoTokenizer.from_pretrained(run_dir / "tokenizer")
    return model.to(device).eval(), tokenizer

