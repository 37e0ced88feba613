"""onnxruntime's transformer fusions on an exported graph: Attention, SkipLayerNormalization, BiasGelu.

The unfused graph spells attention out op by op (MatMul, Div, Add, Softmax, MatMul per head) and
int8 quantisation then sees dozens of small MatMuls. onnxruntime's optimizer rewrites each layer into
fused contrib operators that its CPU and CUDA kernels run in one call, and its quantiser turns a fused
Attention into QAttention. The optimizer matches the TorchScript exporter's graph of a backbone with
eager attention; it does not fuse dynamo-exported graphs (onnxruntime PR #23887), which is why the
``legacy`` exporter is the default.

A fusion that does not cover every layer (an architecture the optimizer does not know) leaves the
graph as exported: the counts in the manifest say which happened. MPNet's attention (relative position
bias) does not match the optimizer's pattern; ``export/mpnet_attention.py`` writes it as
MultiHeadAttention nodes at export time, and the optimizer fuses the layer norms and GELUs around them.

Example:
    >>> fuse_transformer("model.onnx", num_heads=12, hidden_size=384, num_layers=6)   # doctest: +SKIP
    {'Attention': 6, 'BiasGelu': 6, 'SkipLayerNormalization': 12, 'LayerNormalization': 2}
"""

from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger(__name__)


def fuse_transformer(path: str | Path, num_heads: int, hidden_size: int, num_layers: int) -> dict[str, int]:
    """Fuse ``path`` in place when every layer's attention fuses; returns the fused operator counts
    (empty when the graph was left as exported)."""
    from onnxruntime.transformers.optimizer import optimize_model

    # opt_level=0: only the python fusions; onnxruntime's own graph optimizations run at session load
    model = optimize_model(str(path), model_type="bert", num_heads=num_heads, hidden_size=hidden_size, opt_level=0)
    counts = {k: v for k, v in model.get_fused_operator_statistics().items() if v}
    fused_attention = counts.get("Attention", 0) + counts.get("MultiHeadAttention", 0)
    if fused_attention < num_layers:
        log.warning("%s: onnxruntime fused attention in %d of %d layers; keeping the unfused graph", path,
                    fused_attention, num_layers)
        return {}
    model.save_model_to_file(str(path))
    return counts
