"""LoRA for both products: one spec, the wrap, the trainable state and the merge.

The spec's fields are flat (``lora``, ``lora_r``, ...) so that a model config inheriting from it
writes the same flat JSON that run folders of older models hold.

Example:
    >>> from transformers import BertConfig, BertModel
    >>> backbone = BertModel(BertConfig(vocab_size=30, hidden_size=16, num_hidden_layers=1,
    ...                                 num_attention_heads=2, intermediate_size=32))
    >>> wrapped = wrap_lora(backbone, LoraSpec(lora_r=4), exclude_modules=r".*pooler.*")
    >>> sorted({name.split(".")[-3] for name in trainable_state_dict(wrapped)})   # only the adapters train
    ['lora_A', 'lora_B']
    >>> type(merge_lora(wrapped)).__name__                                        # a plain transformer again
    'BertModel'
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class LoraSpec:
    lora: bool = True
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.1
    lora_target_modules: list[str] | str = "all-linear"


def wrap_lora(backbone, spec: LoraSpec, exclude_modules: str | None = None):
    """``backbone`` with LoRA adapters (the base weights frozen), or unchanged when ``spec.lora`` is off."""
    if not spec.lora:
        return backbone
    from peft import LoraConfig, get_peft_model

    extra = {"exclude_modules": exclude_modules} if exclude_modules else {}
    return get_peft_model(backbone, LoraConfig(r=spec.lora_r, lora_alpha=spec.lora_alpha, lora_dropout=spec.lora_dropout,
                                               target_modules=spec.lora_target_modules, bias="none", **extra))


def trainable_state_dict(module) -> dict:
    """Only what training changes (adapters, new layers), detached on the CPU: a few MB, not the backbone."""
    names = {n for n, p in module.named_parameters() if p.requires_grad}
    return {k: v.detach().cpu() for k, v in module.state_dict().items() if k in names}


def merge_lora(backbone):
    """The LoRA weights folded into the base weights: the same outputs from a plain transformer."""
    return backbone.merge_and_unload() if hasattr(backbone, "merge_and_unload") else backbone


def load_trainable_state(module, path) -> None:
    """Load a :func:`trainable_state_dict` file into ``module`` (tensors only: ``weights_only=True``)."""
    import torch

    state = torch.load(path, map_location="cpu", weights_only=True)
    unknown = set(state) - set(module.state_dict())
    if unknown:
        raise RuntimeError(f"{path}: weights {sorted(unknown)[:3]}... do not fit the model")
    module.load_state_dict(state, strict=False)
