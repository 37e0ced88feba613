"""Embedder training configuration: one dataclass, from ``configs/embedder-*.toml`` and the CLI.

Example:
    >>> cfg = EmbedderTrainConfig(recipe="cpc", epochs=2)
    >>> cfg.loss_weights()
    {'cpc': 1.0}
"""

from __future__ import annotations

from dataclasses import dataclass

from inference.retrieval.corpus import VIEWS
from solution.config import BaseTrainConfig, config_field, redefault
from solution.embedder.model import EmbedderConfig

RECIPES = ("mqg", "align", "cpc", "combined")


@dataclass
class EmbedderTrainConfig(BaseTrainConfig):
    # what and where
    corpus: str = config_field("data/patents/a61_patents.csv",
                               "patent CSV (patent_id,patent_title,patent_abstract,cpc_subclasses)")
    # The defaults are the retrieval preset (configs/embedder-retrieval.toml: queries + title <-> abstract, no CPC
    # term), the best title -> abstract and better F1 / V-measure than mqg alone (docs/retrieval.md, embedder presets)
    recipe: str = config_field("combined", "mqg | align | cpc | combined", choices=RECIPES)
    out: str = redefault(BaseTrainConfig, "out", "", "run folder (default runs/embedder-<recipe>-<timestamp>)")
    cpc_titles: str = config_field("data/cpc/ipc_section_class_subclass_titles.csv", "CPC titles CSV (colloquial queries)")
    # split and budgets
    heldout_fraction: float = config_field(0.15, "share of patents held out for evaluation (never trained on)",
                                           above=0, max=0.9)
    max_train_patents: int = config_field(0, "train on at most this many patents (0 = all); for quick runs", min=0)
    budget_minutes: float = redefault(BaseTrainConfig, "budget_minutes", 10.0)
    checkpoint_minutes: float = config_field(2.0, "minutes between mid-epoch checkpoints", min=0)
    seed: int = redefault(BaseTrainConfig, "seed", 42, "seed for the split, queries, negatives and shuffling")
    # text
    # the inference-side defaults are the model's own (one copy: solution/embedder/model.py, with the why)
    doc_view: str = config_field(EmbedderConfig.doc_view, f"document text: {' | '.join(VIEWS)}", choices=VIEWS)
    # abstracts: the alignment loss reuses the query loss's encoded abstracts, one document pass a step, so a slow
    # CPU fits more of the epoch in the clock (docs/decisions/embedder-training-documents.md)
    train_doc_view: str = config_field("abstract", "document text the training losses encode ('' = doc_view); "
                                                   "evaluation, export and the index embed doc_view whatever this says",
                                       choices=("", *VIEWS))
    max_length: int = config_field(EmbedderConfig.max_length, "document tokens at inference (index, evaluation)", min=2)
    train_max_length: int = config_field(128, "document tokens while training (shorter = faster on CPU)", min=2)
    query_max_length: int = config_field(EmbedderConfig.query_max_length, "query tokens", min=2)
    # queries and negatives
    generator: str = config_field("offline", "query generator: offline | openai[:MODEL] | hf:PATH")
    roles: list = config_field(["concept", "keyword", "question", "colloquial", "misspelled"],
                               "query roles to train on; add \"ict\" for inverse-cloze sentences of the abstract")
    queries_per_patent: int = config_field(1, "distinct query roles per patent in each step, all scored against one "
                                              "encoding of its document (queries are short, documents dear)", min=1)
    typo_rate: float = config_field(0.15, "share of words the misspelled role edits", min=0, max=1)
    # In-batch only: on CPU a mined negative costs more steps than it gains (docs/decisions/in-batch-negatives.md);
    # the GPU preset, with compute to spare, uses 2.
    hard_negatives: int = config_field(0, "BM25 hard negatives per query (0 = in-batch only)", min=0)
    negative_top_k: int = config_field(30, "BM25 depth the hard negatives are drawn from", min=1)
    negative_skip_top: int = config_field(0, "skip this many top non-positive BM25 hits (likely false negatives)",
                                          min=0)
    # a mined negative sharing most of its words with the positive is the same invention filed again (continuations,
    # siblings): a false negative rather than a hard one (docs/decisions/in-batch-negatives.md)
    negative_max_overlap: float = config_field(0.8, "skip mined negatives whose word set overlaps a positive's by "
                                                    "this Jaccard or more (near-duplicates; 1 = keep them)", min=0, max=1)
    batch_grouping: str = config_field("random", "random | subclass: batches of one main CPC subclass (harder "
                                                 "in-batch negatives; not for the cpc loss, which needs other subclasses)",
                                  choices=("random", "subclass"))
    # losses
    scale: float = config_field(20.0, "MNRL logit scale (1 / temperature)", above=0)
    supcon_tau: float = config_field(0.1, "supervised-contrastive temperature", above=0)
    cpc_all_views: bool = config_field(True, "combined recipe: the CPC loss spans every vector a step encodes "
                                             "(queries, documents, negatives, titles, abstracts), not only the documents")
    weight_mqg: float = config_field(1.0, "combined recipe: weight of the query -> patent loss", min=0)
    weight_align: float = config_field(1.0, "combined recipe: weight of the title <-> abstract loss", min=0)
    weight_cpc: float = config_field(0.0, "combined recipe: weight of the CPC supervised-contrastive loss "
                                          "(configs/embedder-classify.toml: 1)", min=0)
    # optimisation
    batch_size: int = redefault(BaseTrainConfig, "batch_size", 32, "patents per step")
    eval_batch_size: int = redefault(BaseTrainConfig, "eval_batch_size", 64, "texts per forward pass when encoding")
    lr: float = redefault(BaseTrainConfig, "lr", 5e-4, "peak learning rate (LoRA)")
    # no dropout: more steps in the CPU clock at the same quality (docs/decisions/embedder-dropout-off.md)
    lora_dropout: float = redefault(BaseTrainConfig, "lora_dropout", 0.0)
    # the backbone's own dropout off too: faster steps and less memory, quality level or higher
    # (docs/decisions/embedder-dropout-off.md)
    dropout: float = config_field(0.0, "dropout of every backbone layer in training (-1 = the backbone's own, "
                                       "e.g. MiniLM's 0.1)", min=-1, max=0.99)
    val_patents: int = config_field(200, "held-out patents in the per-epoch title -> abstract check (0 = none)",
                                    min=0)

    def loss_weights(self) -> dict[str, float]:
        if self.recipe == "combined":
            weights = {"mqg": self.weight_mqg, "align": self.weight_align, "cpc": self.weight_cpc}
            return {k: v for k, v in weights.items() if v > 0}
        return {self.recipe: 1.0}

    def embedder_config(self) -> EmbedderConfig:
        return EmbedderConfig(backbone=self.model, max_length=self.max_length, query_max_length=self.query_max_length,
                              lora=self.lora, lora_r=self.lora_r, lora_alpha=self.lora_alpha,
                              lora_dropout=self.lora_dropout, lora_target_modules=self.lora_target_modules,
                              doc_view=self.doc_view, dropout=None if self.dropout < 0 else self.dropout)

