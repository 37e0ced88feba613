"""MPNet's attention exported as onnxruntime MultiHeadAttention nodes: one per layer, same outputs as PyTorch."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from export.mpnet_attention import multi_head_attention_nodes
from export.onnx_graph import GraphSpec, export_graph


class _Hidden(torch.nn.Module):
    def __init__(self, backbone):
        super().__init__()
        self.backbone = backbone

    def forward(self, input_ids, attention_mask):
        return self.backbone(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state


@pytest.fixture(scope="module")
def tiny_mpnet():
    from transformers import MPNetConfig, MPNetModel

    torch.manual_seed(0)
    config = MPNetConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                         intermediate_size=64, max_position_embeddings=80, attn_implementation="eager")
    return _Hidden(MPNetModel(config).eval())


def test_each_layer_becomes_one_multi_head_attention_node_with_the_same_outputs(tiny_mpnet, tmp_path):
    ids = torch.randint(3, 100, (3, 11))
    mask = torch.ones_like(ids)
    mask[1, 7:] = 0  # padding: the mask must reach the fused node through attention_bias
    mask[2, 4:] = 0
    spec = GraphSpec({"input_ids": {0: "batch", 1: "sequence"}, "attention_mask": {0: "batch", 1: "sequence"}},
                     {"hidden": {0: "batch", 1: "sequence"}})
    with multi_head_attention_nodes(tiny_mpnet) as patched:
        path = export_graph(tiny_mpnet, (ids, mask), spec, tmp_path / "mpnet.onnx")
    assert patched == 2
    ops = [node.op_type for node in onnx.load(str(path)).graph.node]
    assert ops.count("MultiHeadAttention") == 2 and "Softmax" not in ops
    with torch.no_grad():
        expected = tiny_mpnet(ids, mask).numpy()  # the unpatched model: patching is undone on exit
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {"input_ids": ids.numpy(), "attention_mask": mask.numpy()})[0]
    assert np.abs(got - expected)[mask.numpy().astype(bool)].max() < 1e-4
    longer = torch.randint(3, 100, (2, 19))  # dynamic axes: another batch and length
    with torch.no_grad():
        expected = tiny_mpnet(longer, torch.ones_like(longer)).numpy()
    got = session.run(None, {"input_ids": longer.numpy(), "attention_mask": np.ones((2, 19), dtype=np.int64)})[0]
    assert np.abs(got - expected).max() < 1e-4


def test_the_optimizer_fuses_the_rest_around_the_attention_nodes(tiny_mpnet, tmp_path):
    """Before, fuse_transformer found no attention to fuse in MPNet and kept the graph unfused."""
    from export.fusion import fuse_transformer

    ids = torch.randint(3, 100, (2, 9))
    mask = torch.ones_like(ids)
    mask[0, 6:] = 0
    spec = GraphSpec({"input_ids": {0: "batch", 1: "sequence"}, "attention_mask": {0: "batch", 1: "sequence"}},
                     {"hidden": {0: "batch", 1: "sequence"}})
    with multi_head_attention_nodes(tiny_mpnet):
        path = export_graph(tiny_mpnet, (ids, mask), spec, tmp_path / "mpnet.onnx")
    counts = fuse_transformer(path, num_heads=4, hidden_size=32, num_layers=2)
    assert counts["MultiHeadAttention"] == 2 and counts["BiasGelu"] == 2 and counts["SkipLayerNormalization"] >= 4
    with torch.no_grad():
        expected = tiny_mpnet(ids, mask).numpy()
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {"input_ids": ids.numpy(), "attention_mask": mask.numpy()})[0]
    assert np.abs(got - expected)[mask.numpy().astype(bool)].max() < 1e-4
    alone = session.run(None, {"input_ids": ids[:1, :6].numpy(), "attention_mask": mask[:1, :6].numpy()})[0]
    assert np.abs(alone[0] - got[0, :6]).max() <= 1e-5  # per-row determinism: padding and batch mates change nothing


def test_other_backbones_are_left_alone(tiny_model):
    from transformers import AutoModel

    bert = AutoModel.from_pretrained(tiny_model)
    with multi_head_attention_nodes(bert) as patched:
        assert patched == 0
