import torch
from transformers import AutoTokenizer

from solution.phrase.model import span_masks
from tests.conftest import make_phrase_model


def batch(tokenizer, n=3):
    enc = tokenizer(["abatement [SEP] act of abating [SEP] furniture"] * n, return_tensors="pt")
    return enc["input_ids"], enc["attention_mask"]


def test_cpc_code_alone_changes_the_score(tiny_model):
    model, tokenizer = make_phrase_model(tiny_model, lora=False)
    with torch.no_grad():  # a trained fusion, not the near-zero start
        model.cpc.proj.weight.normal_(0, 0.5)
    model.eval()
    ids, mask = batch(tokenizer)
    with torch.no_grad():
        score = model(ids, mask, torch.tensor([1, 1, 2]), torch.tensor([3, 4, 3]))
    assert score[0] != score[1] and score[0] != score[2]  # class only, section only
    same = model(ids, mask, torch.tensor([1, 1, 1]), torch.tensor([3, 3, 3]))
    assert torch.allclose(same, same[0].expand(3))


def test_cpc_vector_norm_is_capped(tiny_model):
    model, _ = make_phrase_model(tiny_model, lora=False, cpc_max_norm_ratio=0.25)
    with torch.no_grad():
        model.cpc.proj.weight.fill_(10.0)
    vec = model.cpc(torch.tensor([1, 2]), torch.tensor([1, 2]))
    assert torch.all(vec.norm(dim=-1) <= model.cpc.max_norm * (1 + 1e-5))


def test_ordinal_score_is_an_expected_level(tiny_model):
    model, tokenizer = make_phrase_model(tiny_model, lora=False)
    model.head.init_from_prior([7471, 11519, 12300, 4029, 1154])
    thresholds = model.head.thresholds()
    assert torch.all(thresholds[:-1] > thresholds[1:])
    ids, mask = batch(tokenizer)
    out = model.eval()(ids, mask, torch.ones(3, dtype=torch.long), torch.ones(3, dtype=torch.long), train_outputs=True)
    expected = torch.sigmoid(out["logits"]).sum(-1) / 4
    assert torch.allclose(out["score"], expected) and torch.all((out["score"] >= 0) & (out["score"] <= 1))


def test_a_phrase_vector_depends_on_its_phrase_and_context_alone(tiny_model):
    # NT-Xent on spans of one cross-encoded sequence was solvable by a signature of the sequence; a bare
    # phrase's vector must not see any other phrase of the batch (nor its padding)
    model, tokenizer = make_phrase_model(tiny_model, lora=True, cpc_fusion=True)
    model.eval()
    phrases = ["abatement", "act of abating pollution", "control"]
    encoded = tokenizer(phrases, padding=True, return_tensors="pt")
    sections, classes = torch.tensor([1, 2, 1]), torch.tensor([3, 4, 3])
    with torch.no_grad():
        together = model.phrase_vectors(encoded["input_ids"], encoded["attention_mask"], sections, classes)
        for i, phrase in enumerate(phrases):
            alone = tokenizer([phrase], return_tensors="pt")
            vec = model.phrase_vectors(alone["input_ids"], alone["attention_mask"], sections[i : i + 1], classes[i : i + 1])
            assert torch.allclose(vec[0], together[i], atol=1e-5), phrase
        other_context = model.phrase_vectors(encoded["input_ids"][:1], encoded["attention_mask"][:1], sections[1:2],
                                             classes[1:2])
    assert together.shape == (3, model.config.projection_dim)
    assert not torch.allclose(other_context[0], together[0], atol=1e-4)  # the CPC fusion reaches it


def test_lora_merge_keeps_outputs(tiny_model):
    model, tokenizer = make_phrase_model(tiny_model, lora=True)
    with torch.no_grad():  # LoRA B starts at zero; give the adapters something to merge
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.2)
    model.eval()
    ids, mask = batch(tokenizer)
    args = (ids, mask, torch.tensor([1, 2, 3]), torch.tensor([1, 2, 3]))
    with torch.no_grad():
        before = model(*args)
        model.merge_lora()
        after = model(*args)
    assert not any("lora" in n for n, _ in model.named_parameters())
    assert torch.allclose(before, after, atol=1e-5)


def test_lora_trains_only_adapters_cpc_and_head(tiny_model):
    model, _ = make_phrase_model(tiny_model, lora=True)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n or n.startswith(("cpc.", "head.", "phrase_projection.")) for n in trainable)
    assert set(model.trainable_state_dict()) == set(trainable)


def test_span_masks_split_anchor_and_target(tiny_model):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    enc = tokenizer(["abatement [SEP] act of abating [SEP] furniture"], return_tensors="pt")
    anchor, target = span_masks(enc["input_ids"], enc["attention_mask"], tokenizer.sep_token_id, tokenizer.cls_token_id)
    tokens = tokenizer.convert_ids_to_tokens(enc["input_ids"][0])
    assert [t for t, m in zip(tokens, anchor[0]) if m] == ["abatement"]
    assert [t for t, m in zip(tokens, target[0]) if m] == ["act", "of", "abating"]


def test_pair_pooling_averages_only_anchor_and_target_tokens(tiny_model):
    from solution.backbone import masked_mean

    model, tokenizer = make_phrase_model(tiny_model, lora=False, pooling="pair")
    enc = tokenizer(["abatement [SEP] act of abating [SEP] furniture"], return_tensors="pt")
    hidden = torch.randn(1, enc["input_ids"].shape[1], 32)
    masks = model.target_masks(enc["input_ids"], enc["attention_mask"])
    pooled = model.pool(hidden, enc["attention_mask"], enc["input_ids"], masks)[:, 0]
    tokens = tokenizer.convert_ids_to_tokens(enc["input_ids"][0])
    keep = torch.tensor([[t in ("abatement", "act", "of", "abating") for t in tokens]])
    assert torch.allclose(pooled, masked_mean(hidden, keep))
    assert not torch.allclose(pooled, masked_mean(hidden, enc["attention_mask"].bool()))  # unlike "mean"


def test_dropout_option_sets_every_backbone_and_head_dropout_but_not_loras(tiny_model):
    """dropout=0 switches off the backbone's hidden and attention dropout and the head's (the collapse
    fix for larger backbones, docs/decisions/mpnet-dropout-off.md); None keeps the backbone's config; LoRA keeps lora_dropout."""
    from solution.phrase.config import PhraseTrainConfig

    def rates(model, part):
        return {m.p for name, m in model.named_modules() if isinstance(m, torch.nn.Dropout) and part(name)}

    def not_lora(name):
        return "lora" not in name

    own, _ = make_phrase_model(tiny_model, lora=False)
    assert rates(own, lambda n: n.startswith("backbone.")) == {0.1} and own.head.dropout.p == 0.1
    off, tokenizer = make_phrase_model(tiny_model, lora=True, dropout=0.0, lora_dropout=0.2)
    assert rates(off, lambda n: n.startswith("backbone.") and not_lora(n)) == {0.0} and off.head.dropout.p == 0.0
    assert rates(off, lambda n: "lora_dropout" in n) == {0.2}
    ids, mask = batch(tokenizer)
    sections = classes = torch.ones(3, dtype=torch.long)
    for dropout, deterministic in ((0.0, True), (None, False)):  # training mode: dropout draws masks
        model = make_phrase_model(tiny_model, lora=False, dropout=dropout)[0].train()
        assert torch.equal(model(ids, mask, sections, classes), model(ids, mask, sections, classes)) is deterministic
    cfg = PhraseTrainConfig(dropout=-1.0)
    assert cfg.model_config((10, 8), 102, 101).dropout is None
    assert PhraseTrainConfig(dropout=0.0).model_config((10, 8), 102, 101).dropout == 0.0
