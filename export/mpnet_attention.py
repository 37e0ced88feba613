"""MPNet's self-attention exported as one ``com.microsoft::MultiHeadAttention`` node per layer.

onnxruntime's transformer optimizer fuses BERT-pattern attention, softmax(QK^T / sqrt(d) + mask) V; MPNet
adds a relative position bias to the scores, so the pattern does not match and all-mpnet-base-v2 (the
phrase default) ran unfused: a dozen small ops per layer and head. onnxruntime's MultiHeadAttention
contrib operator takes exactly what MPNet computes: the Q, K, V projections without their biases, the
three biases packed in one vector, and an additive ``attention_bias`` of shape (batch, heads, S, S),
which here is the position bias plus the padding mask. While the export runs, each MPNet self-attention
module computes through :class:`_MultiHeadAttention`, whose eager forward is MPNet's own arithmetic
(the parity gate compares the graph against the unpatched model) and whose ONNX symbolic is that node.
The optimizer then fuses the rest (SkipLayerNormalization, BiasGelu) around it.

Only the TorchScript exporter (``legacy``) honours an autograd function's ``symbolic``; other backbones
are left alone.
"""

from __future__ import annotations

import inspect
import math
import types
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext

import torch
import torch.nn.functional as F


class _MultiHeadAttention(torch.autograd.Function):
    """softmax((Q + bq)(K + bk)^T / sqrt(d) + attention_bias)(V + bv), heads merged back into the hidden axis."""

    @staticmethod
    def forward(ctx, q, k, v, bias, attention_bias, num_heads: int):
        batch, length, hidden = q.shape
        size = hidden // num_heads

        def heads(x: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
            return (x + b).view(batch, length, num_heads, size).transpose(1, 2)

        bq, bk, bv = bias.split(hidden)
        scores = heads(q, bq) @ heads(k, bk).transpose(-1, -2) / math.sqrt(size) + attention_bias
        context = scores.softmax(dim=-1) @ heads(v, bv)
        return context.transpose(1, 2).reshape(batch, length, hidden)

    @staticmethod
    def symbolic(g, q, k, v, bias, attention_bias, num_heads: int):
        # an omitted optional input (the padding mask is in attention_bias): a None constant exports as ""
        no_key_padding_mask = g.op("prim::Constant").setType(torch._C.NoneType.get())
        return g.op("com.microsoft::MultiHeadAttention", q, k, v, bias, no_key_padding_mask, attention_bias,
                    num_heads_i=num_heads).setType(q.type())


def _fused_forward(self, hidden_states, *args, **kwargs):
    """MPNetSelfAttention.forward through :class:`_MultiHeadAttention` (eval only: no attention dropout).
    The arguments are bound by name against the class's own forward: transformers 4.x passes a
    ``head_mask`` between the mask and the position bias, 5.x does not. The encoder always passes the
    position bias; a mask the encoder dropped (no padding) means none."""
    own_forward = type(self).forward
    given = inspect.signature(own_forward).bind(self, hidden_states, *args, **kwargs).arguments
    position_bias, attention_mask = given.get("position_bias"), given.get("attention_mask")
    if position_bias is None or given.get("output_attentions") or given.get("head_mask") is not None:
        return own_forward(self, hidden_states, *args, **kwargs)
    attention_bias = position_bias if attention_mask is None else position_bias + attention_mask
    bias = torch.cat([self.q.bias, self.k.bias, self.v.bias])
    context = _MultiHeadAttention.apply(F.linear(hidden_states, self.q.weight), F.linear(hidden_states, self.k.weight),
                                        F.linear(hidden_states, self.v.weight), bias, attention_bias,
                                        self.num_attention_heads)
    return (self.o(context),)


def mpnet_attention_modules(model: torch.nn.Module) -> list[torch.nn.Module]:
    return [m for m in model.modules() if type(m).__name__ == "MPNetSelfAttention"]


@contextmanager
def multi_head_attention_nodes(model: torch.nn.Module) -> Iterator[int]:
    """Within the block, ``model``'s MPNet self-attention modules export as MultiHeadAttention nodes;
    yields how many were patched (0 for other backbones)."""
    modules = mpnet_attention_modules(model)
    for module in modules:
        module.forward = types.MethodType(_fused_forward, module)
    try:
        yield len(modules)
    finally:
        for module in modules:
            del module.forward  # back to the class's own forward


def export_context(model: torch.nn.Module, fuse: bool, exporter: str) -> AbstractContextManager:
    """What to export ``model`` within: MPNet attention as MultiHeadAttention nodes when the graph is to be
    fused and the exporter is the TorchScript one, else nothing."""
    return multi_head_attention_nodes(model) if fuse and exporter == "legacy" else nullcontext(0)
