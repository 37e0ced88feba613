"""The phrase matcher's training config: the shared keys (``solution.config``) plus its own.

Example:
    >>> cfg = PhraseTrainConfig(epochs=2)
    >>> cfg.layout, cfg.batch_size, cfg.epochs
    ('multi', 8, 2)
"""

from __future__ import annotations

from dataclasses import dataclass

from inference.phrase.multi import MIN_LENGTH
from solution.backbone import PHRASE_MODEL
from solution.config import BaseTrainConfig, config_field, redefault
from solution.phrase.model import ModelConfig


@dataclass
class PhraseTrainConfig(BaseTrainConfig):
    # what and where
    model: str = redefault(BaseTrainConfig, "model", PHRASE_MODEL,
                           "backbone: Hugging Face id or local folder (default: all-mpnet-base-v2 from models/, which "
                           "scripts/setup.sh fetches; the packaged MiniLM: --config configs/minilm.toml)")
    out: str = redefault(BaseTrainConfig, "out", "", "run folder (default runs/phrase-<timestamp>)")
    data: str = config_field("data", "folder with uspppm/{train,test}.csv and cpc/*.csv")
    submission: str = config_field("", "submission CSV (default submissions/<run name>/submission.csv)")
    test_csv: str = config_field("", "CSV to predict for the submission (default DATA/uspppm/test.csv)")
    # budgets and validation
    epochs: int = redefault(BaseTrainConfig, "epochs", 4, "epoch budget (per fold)")
    budget_minutes: float = redefault(BaseTrainConfig, "budget_minutes", 30.0,
                                      "wall-clock budget for the whole run (all folds, eval and submission included)")
    n_splits: int = config_field(5, "folds the data is split into (grouped by anchor, stratified by score)", min=2)
    folds: int = config_field(2, "how many of those folds to train; test predictions are averaged over them", min=1)
    max_train_rows: int = config_field(0, "use only this many training rows (0 = all); for quick runs", min=0)
    # input
    layout: str = config_field("multi", "multi (one sequence scores every target of an anchor+context) | pair (one per row)",
                               choices=("multi", "pair"))
    max_targets: int = config_field(32, "multi: targets per sequence at most (larger groups are chunked)", min=1)
    small_chunk_prob: float = config_field(0.1, "multi: chance a training chunk is cut to a random smaller size (down to 1)",
                                           min=0, max=1)
    max_length: int = config_field(256, "tokens per sequence; multi chunks a group to fit, pair cuts the other-targets tail",
                                   min=MIN_LENGTH)
    use_title: bool = config_field(True, "put the CPC class title into the input")
    sibling_orders: int = config_field(4, "score each validation and test row in this many orders of its siblings and "
                                          "average (file order + shuffles; 1 = file order only)", min=1)
    group_targets: bool = config_field(False, "pair layout: append the other targets of the same anchor+context (multi has them)")
    # model
    head: str = config_field("ordinal", "ordinal (cumulative link, expected level) | linear", choices=("ordinal", "linear"))
    pooling: str = config_field("pair", "pair (mean over anchor+target tokens) | interaction ([t, a, t*a] of the "
                                        "target and anchor means, Linear + GELU) | mean (all tokens) | cls",
                                choices=("pair", "interaction", "mean", "cls"))
    cpc_fusion: bool = config_field(False, "add the learnable CPC section+class embedding to the token embeddings "
                                           "(helps MiniLM +0.004, destabilises mpnet)")
    cpc_dim: int = config_field(64, "CPC embedding size before the projection", min=1)
    cpc_max_norm_ratio: float = config_field(0.25, "cap of the CPC vector's norm relative to the mean token-embedding norm",
                                             above=0)
    dropout: float = config_field(0.0, "dropout of every backbone layer and the head (-1 = the backbone's own, e.g. "
                                       "0.1; 0 = none: mpnet collapses to a constant score with it)", min=-1, max=0.99)
    context_dropout: float = config_field(0.1, "probability of hiding the class id (trains the unknown-class fallback)",
                                          min=0, max=1)
    lora: bool = redefault(BaseTrainConfig, "lora", False,
                           "LoRA adapters (false = full fine-tuning: +0.02 Pearson at equal epochs, see README)")
    restart_below: float = config_field(0.2, "a fold whose validation Pearson is below this after its first epoch, or "
                                             "halfway through it with a stalled loss (collapsed to a near-constant "
                                             "score), restarts once at half the backbone lr; needs epochs >= 2 "
                                             "(-1 = never)", min=-1, max=1)
    # loss
    loss: str = config_field("bce", "bce (binary cross-entropy, the score as a soft label) | smooth_k2 | mse",
                             choices=("bce", "smooth_k2", "mse"))
    k2_k: float = config_field(4.0, "Smooth K2 scale k", above=0)
    k2_thr: float = config_field(0.25, "Smooth K2 dead zone thr", min=0)
    contrastive_weight: float = config_field(0.0, "lambda of the NT-Xent term, 0.3-0.5 when on (0 = off: see README results)",
                                             min=0)
    contrastive_tau: float = config_field(0.1, "NT-Xent temperature", above=0)
    contrastive_min_score: float = config_field(0.75, "pairs scored at least this are NT-Xent positives")
    # optimisation
    batch_size: int = redefault(BaseTrainConfig, "batch_size", 8,
                                "training sequences per step and process (multi: a sequence holds a group's targets)")
    eval_batch_size: int = redefault(BaseTrainConfig, "eval_batch_size", 32,
                                     "sequences per forward pass for validation and prediction")
    lr: float = redefault(BaseTrainConfig, "lr", 5e-5, "peak learning rate of the backbone (LoRA adapters: use ~1e-3)")
    head_lr: float = config_field(2e-3, "peak learning rate of the new head and NT-Xent projection (CPC fusion uses lr)",
                                  above=0)
    adam_eps: float = redefault(BaseTrainConfig, "adam_eps", 1e-6,
                                "AdamW epsilon: 1e-6 (BERT's) damps the noise-sized steps that collapsed mpnet's pooled "
                                "features to one vector at 1e-8, at no cost after 4 epochs")
    layer_decay: float = config_field(1.0, "layer-wise lr decay: transformer layer i of L trains at lr x decay^(L-i), "
                                           "the embeddings at lr x decay^(L+1) (1 = every layer at lr)", above=0, max=1)
    log_every: int = redefault(BaseTrainConfig, "log_every", 20)

    def cross_field_problems(self) -> list[str]:
        problems = []
        if self.folds > self.n_splits:
            problems.append(f"folds={self.folds}: more than n_splits={self.n_splits}")
        if self.layout == "multi" and self.pooling in ("mean", "cls"):
            problems.append(f"pooling={self.pooling}: one vector per sequence would give every target of a multi-layout "
                            "sequence the same score; use pair or interaction (or layout=pair)")
        return problems

    def model_config(self, vocab_sizes: tuple[int, int], sep_id: int, cls_id: int) -> ModelConfig:
        return ModelConfig(
            backbone=self.model, head=self.head, pooling=self.pooling, cpc_fusion=self.cpc_fusion,
            cpc_dim=self.cpc_dim, cpc_max_norm_ratio=self.cpc_max_norm_ratio,
            dropout=None if self.dropout < 0 else self.dropout,
            num_sections=vocab_sizes[0], num_classes=vocab_sizes[1], lora=self.lora,
            lora_r=self.lora_r, lora_alpha=self.lora_alpha, lora_dropout=self.lora_dropout,
            lora_target_modules=self.lora_target_modules, sep_token_id=sep_id,
            cls_token_id=cls_id if cls_id is not None else -1,
        )
