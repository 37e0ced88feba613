"""The optimizer: parameter groups, and the fused kernel (used on CPU too) doing plain AdamW's update."""

from __future__ import annotations

import torch

from solution.optim import build_optimizer


class TinyHeadModel(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.encoder = torch.nn.Linear(6, 4)
        self.norm = torch.nn.LayerNorm(4)
        self.head = torch.nn.Linear(4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.norm(self.encoder(x))).squeeze(-1)


def group_of(optimizer: torch.optim.Optimizer, param: torch.nn.Parameter) -> dict:
    return next(g for g in optimizer.param_groups if any(p is param for p in g["params"]))


def test_groups_give_the_head_its_lr_and_spare_biases_and_norms_from_decay():
    model = TinyHeadModel()
    optimizer = build_optimizer(model, lr=1e-4, head_lr=2e-3, weight_decay=0.01)
    assert group_of(optimizer, model.encoder.weight)["lr"] == 1e-4
    assert group_of(optimizer, model.encoder.weight)["weight_decay"] == 0.01
    assert group_of(optimizer, model.head.weight)["lr"] == 2e-3
    assert group_of(optimizer, model.encoder.bias)["weight_decay"] == 0.0
    assert group_of(optimizer, model.norm.weight)["weight_decay"] == 0.0


def test_fused_cpu_steps_match_plain_adamw():
    torch.manual_seed(0)
    model = TinyHeadModel()
    reference = TinyHeadModel()
    reference.load_state_dict(model.state_dict())
    start = {name: p.detach().clone() for name, p in model.named_parameters()}
    optimizer = build_optimizer(model, lr=1e-2, head_lr=1e-2, weight_decay=0.01)
    assert optimizer.defaults["fused"]
    groups = [{"params": [p for n, p in reference.named_parameters() if (p.ndim < 2 or "norm" in n) == no_decay],
               "weight_decay": 0.0 if no_decay else 0.01} for no_decay in (False, True)]
    plain = torch.optim.AdamW(groups, lr=1e-2, foreach=False)
    x, y = torch.randn(16, 6), torch.randn(16)
    for _ in range(5):
        for net, opt in ((model, optimizer), (reference, plain)):
            opt.zero_grad()
            torch.nn.functional.mse_loss(net(x), y).backward()
            opt.step()
    for (name, got), want in zip(model.named_parameters(), reference.parameters()):
        assert not torch.equal(got, start[name]), f"{name} did not move"
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6, msg=name)


def test_layer_decay_scales_each_layer_and_leaves_the_head_alone():
    from transformers import BertConfig, BertModel

    from solution.phrase.model import ModelConfig, PhraseMatcher

    backbone = BertModel(BertConfig(vocab_size=30, hidden_size=8, num_hidden_layers=3, num_attention_heads=2,
                                    intermediate_size=16))
    model = PhraseMatcher(ModelConfig(backbone="tiny", num_classes=5, lora=False, cpc_fusion=True), backbone)
    optimizer = build_optimizer(model, lr=1.0, head_lr=0.3, weight_decay=0.01, layer_decay=0.5)
    lr_of = {name: group_of(optimizer, p)["lr"] for name, p in model.named_parameters()}
    assert lr_of["backbone.embeddings.word_embeddings.weight"] == 0.5**4
    assert lr_of["backbone.encoder.layer.0.attention.self.query.weight"] == 0.5**3
    assert lr_of["backbone.encoder.layer.2.output.dense.bias"] == 0.5
    assert lr_of["head.latent.weight"] == 0.3
    assert lr_of["cpc.proj.weight"] == 1.0  # outside the layer stack: the backbone's lr
    without = build_optimizer(model, lr=1.0, head_lr=0.3, weight_decay=0.01)
    assert group_of(without, model.backbone.embeddings.word_embeddings.weight)["lr"] == 1.0


def test_lora_plus_gives_only_the_b_matrices_the_ratio():
    from transformers import BertConfig, BertModel

    from solution.lora import LoraSpec, wrap_lora

    backbone = wrap_lora(BertModel(BertConfig(vocab_size=30, hidden_size=8, num_hidden_layers=2, num_attention_heads=2,
                                              intermediate_size=16)), LoraSpec(lora_r=2), exclude_modules=r".*pooler.*")
    optimizer = build_optimizer(backbone, lr=1e-3, head_lr=1e-2, weight_decay=0.01, layer_decay=0.5, lora_plus_ratio=16)
    lr_of = {name: group_of(optimizer, p)["lr"] for name, p in backbone.named_parameters() if p.requires_grad}
    a = "base_model.model.encoder.layer.1.attention.self.query.lora_A.default.weight"
    assert lr_of[a] == 1e-3 * 0.5
    assert lr_of[a.replace("lora_A", "lora_B")] == 1e-3 * 0.5 * 16  # on top of its layer's decay
    assert len({lr for name, lr in lr_of.items() if ".lora_B." in name}) == 2  # one per layer, all B


def test_eps_reaches_the_optimizer_and_damps_near_zero_gradients():
    def first_step(eps: float) -> float:
        torch.manual_seed(0)
        model = TinyHeadModel()
        before = model.encoder.weight.detach().clone()
        optimizer = build_optimizer(model, lr=1e-3, head_lr=1e-3, weight_decay=0.0, eps=eps)
        assert all(g["eps"] == eps for g in optimizer.param_groups)
        (1e-8 * model(torch.randn(8, 6)).sum()).backward()  # gradients <1e-7: noise-sized
        optimizer.step()
        return float((model.encoder.weight.detach() - before).abs().max())

    assert first_step(1e-8) > 0.3e-3  # nearly a full lr-sized step from a negligible gradient
    assert first_step(1e-6) < 0.1e-3  # the larger floor keeps it small
