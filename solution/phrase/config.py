"""The phrase matcher's training config: the shared keys (``solution.config``) plus its own.

Example:
    >>> cfg = PhraseTrainConfig(epochs=2)
    >>> cfg.layout, cfg.batch_size, cfg.epochs
    ('multi', 8, 2)
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from inference.phrase.multi import MIN_LENGTH
from solution.backbone import PHRASE_MODEL
from solution.config import BaseTrainConfig, config_field, load_config_file, redefault, validate
from solution.phrase.model import ModelConfig

REPO_ROOT = Path(__file__).resolve().parents[2]  # where configs/ lies when a run starts elsewhere
# what a fallback does not change: fold 0 restarts on it within the run's data, folds, clock and outputs
RUN_KEYS = ("data", "out", "submission", "test_csv", "n_splits", "folds", "seed", "max_train_rows", "budget_minutes",
            "device", "precision")


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
    epochs: int = redefault(BaseTrainConfig, "epochs", 8, "epoch budget (per fold; the clock usually ends the default first)")
    budget_minutes: float = redefault(BaseTrainConfig, "budget_minutes", 30.0,
                                      "wall-clock budget for the whole run (all folds, eval and submission included)")
    n_splits: int = config_field(10, "folds the data is split into (grouped by anchor, stratified by score)", min=2)
    folds: int = config_field(1, "how many of those folds to train (1: one model on the rest, the fold its validation "
                                 "slice); test predictions are averaged over them", min=1)
    max_train_rows: int = config_field(0, "use only this many training rows (0 = all); for quick runs", min=0)
    fallback_config: str = config_field(
        "configs/minilm.toml", "when the clock would train the default backbone (mpnet) for fewer than "
        "fallback_below_epochs epochs a fold (timed a few steps into fold 0), the run restarts on this config's "
        "model, taking its other keys where the run has the defaults (not the run's data, folds or clock); other "
        "backbones are never swapped ('' = never: keep mpnet whatever the clock allows)")
    fallback_below_epochs: float = config_field(
        1.5, "see fallback_config: with fewer epochs a fold than this MiniLM scores higher than mpnet "
             "(docs/decisions/minilm-fallback.md)", above=0)
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
                                          "average (targets by text, then seeded shuffles; 1 = by text only)", min=1)
    group_targets: bool = config_field(False, "pair layout: append the other targets of the same anchor+context (multi has them)")
    # model
    head: str = config_field("ordinal", "ordinal (cumulative link, expected level) | linear", choices=("ordinal", "linear"))
    pooling: str = config_field("pair", "pair (mean over anchor+target tokens) | interaction ([t, a, t*a] of the "
                                        "target and anchor means, Linear + GELU) | mean (all tokens) | cls",
                                choices=("pair", "interaction", "mean", "cls"))
    cpc_fusion: bool = config_field(False, "add the learnable CPC section+class embedding to the token embeddings "
                                           "(on for MiniLM, where it helps; off for mpnet, which it destabilises: "
                                           "docs/decisions/seed-design-parts.md)")
    cpc_dim: int = config_field(64, "CPC embedding size before the projection", min=1)
    cpc_max_norm_ratio: float = config_field(0.25, "cap of the CPC vector's norm relative to the mean token-embedding norm",
                                             above=0)
    dropout: float = config_field(0.0, "dropout of every backbone layer and the head (-1 = the backbone's own, e.g. "
                                       "0.1; 0 = none: mpnet collapses to a constant score with it, "
                                       "docs/decisions/mpnet-dropout-off.md)", min=-1, max=0.99)
    context_dropout: float = config_field(0.1, "probability of hiding the class id (trains the unknown-class fallback)",
                                          min=0, max=1)
    lora: bool = redefault(BaseTrainConfig, "lora", False,
                           "LoRA adapters (false = full fine-tuning: docs/decisions/seed-design-parts.md)")
    restart_below: float = config_field(0.2, "a fold whose validation Pearson is below this after its first epoch, or "
                                             "halfway through it with a stalled loss (collapsed to a near-constant "
                                             "score), restarts once at half of every learning rate; needs epochs >= 2 "
                                             "(-1 = never)", min=-1, max=1)
    # loss
    loss: str = config_field("bce", "bce (binary cross-entropy, the score as a soft label) | smooth_k2 | mse",
                             choices=("bce", "smooth_k2", "mse"))
    k2_k: float = config_field(2.0, "Smooth K2 scale k (the paper's 2, the loss measured in label steps)", above=0)
    k2_thr: float = config_field(0.25, "Smooth K2 dead zone, in label steps (0.25 = 0.0625 on the [0, 1] score scale, "
                                       "the paper's 0.25 on labels one unit apart)", min=0)
    coral_weight: float = config_field(0.0, "ordinal head: weight of the per-threshold binary cross-entropy (CORAL) "
                                            "beside the score loss (0 = off)", min=0)
    contrastive_weight: float = config_field(0.0, "lambda of the NT-Xent term on bare anchor/target phrases, 0.3-0.5 "
                                                  "when on (0 = off)", min=0)
    contrastive_tau: float = config_field(0.1, "NT-Xent temperature", above=0)
    contrastive_min_score: float = config_field(0.75, "pairs scored at least this are NT-Xent positives", min=0, max=1)
    contrastive_hard_max_score: float = config_field(
        0.25, "targets of the same anchor scored at most this are NT-Xent hard negatives (those in between are "
              "left out)", min=0, max=1)
    contrastive_max_targets: int = config_field(
        64, "NT-Xent: target phrases encoded per step at most (positives first, hard negatives drawn; 0 = all)", min=0)
    contrastive_ramp: float = config_field(0.3, "the NT-Xent weight rises from 0 over this share of training", min=0,
                                           max=1)
    contrastive_max_grad_ratio: float = config_field(
        0.5, "cap of the weighted NT-Xent gradient's norm on the shared weights, relative to the scoring loss's "
             "(logged per epoch as aux_grad_ratio)", above=0)
    # optimisation
    batch_size: int = redefault(BaseTrainConfig, "batch_size", 8,
                                "training sequences per step and process (multi: a sequence holds a group's targets)")
    eval_batch_size: int = redefault(BaseTrainConfig, "eval_batch_size", 32,
                                     "sequences per forward pass for validation and prediction")
    lr: float = redefault(BaseTrainConfig, "lr", 5e-5, "peak learning rate of the backbone (LoRA adapters: 2e-4..5e-4 "
                                                       "at lora_alpha / lora_r = 2)")
    head_lr: float = config_field(2e-3, "peak learning rate of the new head and NT-Xent projection", above=0)
    fusion_lr: float = config_field(1e-4, "peak learning rate of the CPC fusion (its own group: at a LoRA or head lr "
                                          "it reaches its norm cap within steps)", above=0)
    ema_decay: float = config_field(0.995, "decay of an exponential moving average of the trainable weights, which is "
                                         "evaluated and saved in their place (0 = off; warms up as 1 - (1 + step)^-0.75)",
                                    min=0, max=0.9999)
    adam_eps: float = redefault(BaseTrainConfig, "adam_eps", 1e-6,
                                "AdamW epsilon: 1e-6 (BERT's) damps the noise-sized steps that can collapse mpnet's pooled "
                                "features to one vector at 1e-8 (docs/decisions/collapse-guard-and-adam-eps.md)")
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
        if self.contrastive_hard_max_score >= self.contrastive_min_score:
            problems.append(f"contrastive_hard_max_score={self.contrastive_hard_max_score}: must be below "
                            f"contrastive_min_score={self.contrastive_min_score} (a pair cannot be both)")
        if self.coral_weight > 0 and self.head != "ordinal":
            problems.append(f"coral_weight={self.coral_weight}: needs head=ordinal (it trains the ordinal thresholds)")
        return problems

    def fallback(self) -> PhraseTrainConfig | None:
        """The config this run restarts on when the clock is too short for its backbone, or None where it
        never would: ``fallback_config`` empty, a backbone other than the default, or the same model. The
        fallback's keys replace this run's where this run has the defaults (the model always), so a key set
        by hand (``--lr``, ``--budget-minutes``) stays, and the run's data, folds and clock (``RUN_KEYS``)
        are never the fallback's. A relative path is read from the working directory, else from the
        repository.

        >>> small = PhraseTrainConfig(lr=3e-5, budget_minutes=60).fallback()   # configs/minilm.toml
        >>> small.model, small.lr, small.budget_minutes, small.epochs, small.cpc_fusion, small.fallback_config
        ('sentence-transformers/all-MiniLM-L6-v2', 3e-05, 60, 6, True, '')
        >>> small.folds, small.n_splits      # the run's, not the file's 2 of 5
        (1, 10)
        >>> PhraseTrainConfig(model="microsoft/deberta-v3-large").fallback() is None   # a model you chose
        True
        """
        if not self.fallback_config or self.model != PHRASE_MODEL:
            return None
        path = Path(self.fallback_config)
        if not path.is_absolute() and not path.exists() and (REPO_ROOT / path).exists():
            path = REPO_ROOT / path
        values = load_config_file(path, type(self))
        defaults = type(self)()
        # the run's own data, folds and clock stay: fold 0 restarts on the fallback within them
        kept = {key: value for key, value in values.items()
                if key not in RUN_KEYS and (key == "model" or getattr(self, key) == getattr(defaults, key))}
        if kept.get("model", self.model) == self.model:
            return None
        fallback = dataclasses.replace(self, **kept, fallback_config="")
        validate(fallback)
        return fallback

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
