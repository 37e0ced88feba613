import math

import pytest
import torch

from solution.phrase.contrastive import add_auxiliary_gradient
from solution.phrase.losses import coral_loss, nt_xent_loss, smooth_k2_loss

LEVELS = [0.0, 0.25, 0.5, 0.75, 1.0]
TRAIN_SHARES = [0.20, 0.32, 0.34, 0.11, 0.03]  # USPPPM's label distribution, roughly


def test_smooth_k2_is_zero_inside_a_quarter_label_step():
    pred = torch.tensor([0.5, 0.56, 0.44, 0.5625])
    assert smooth_k2_loss(pred, torch.full((4,), 0.5)).item() == 0.0


def test_smooth_k2_hand_computed_in_label_steps():
    pred = torch.tensor([0.0, 0.5, 1.0])
    target = torch.tensor([0.25, 0.0, 0.25])
    # errors of 1, 2 and 3 label steps, less the 0.25 dead zone, squared, times k = 2
    expected = 2 * (0.75**2 + 1.75**2 + 2.75**2) / 3
    assert smooth_k2_loss(pred, target).item() == pytest.approx(expected, rel=1e-6)
    assert smooth_k2_loss(pred, target, k=2.0, thr=0.0).item() == pytest.approx(2 * (1 + 4 + 9) / 3, rel=1e-6)


def test_smooth_k2_quadratic_outside():
    target = torch.tensor([0.0])
    values = [smooth_k2_loss(torch.tensor([d]), target, k=2.0, thr=0.25).item() for d in (0.125, 0.25, 0.5)]
    assert values == pytest.approx([2 * 0.25**2, 2 * 0.75**2, 2 * 1.75**2])


def test_a_constant_at_the_label_prior_gets_a_gradient_from_the_inner_levels():
    # the flat basin of thr = one whole label step: the 0.25 and 0.5 rows gave a constant at the prior nothing
    prior = sum(level * share for level, share in zip(LEVELS, TRAIN_SHARES))
    for level in (0.25, 0.5):
        pred = torch.tensor([prior], requires_grad=True)
        smooth_k2_loss(pred, torch.tensor([level])).backward()
        assert pred.grad.abs().item() > 0.1, level
        pred = torch.tensor([prior], requires_grad=True)
        loss = smooth_k2_loss(pred, torch.tensor([level]), thr=1.0)  # the old dead zone, in label steps
        assert loss.item() == 0.0  # (why the seed design sat at the prior)


def test_coral_is_the_mean_binary_cross_entropy_of_each_threshold():
    logits = torch.tensor([[2.0, 0.5, -1.0, -3.0], [0.0, 0.0, 0.0, 0.0]])
    target = torch.tensor([0.5, 1.0])
    above = torch.tensor([[1.0, 1.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0]])
    expected = -(above * torch.log(torch.sigmoid(logits)) + (1 - above) * torch.log(1 - torch.sigmoid(logits))).mean()
    assert coral_loss(logits, target).item() == pytest.approx(expected.item(), rel=1e-6)


def test_coral_trains_every_threshold_from_every_row():
    logits = torch.zeros(len(LEVELS), 4, requires_grad=True)
    coral_loss(logits, torch.tensor(LEVELS)).backward()
    assert bool((logits.grad != 0).all())  # the expected score alone leaves a threshold free when others compensate


def reference_nt_xent(a, t, group, score, key, tau, pos_min, hard_max):
    """Loop form: for each positive target j of anchor g, -log softmax over the allowed targets (resp. anchors)."""
    def unit(rows):
        return [[v / math.sqrt(sum(w * w for w in row)) for v in row] for row in rows.tolist()]

    a, t = unit(a), unit(t)
    sim = [[sum(p * q for p, q in zip(a[g], t[j])) / tau for j in range(len(t))] for g in range(len(a))]
    a2t, t2a = [], []
    for j, g in enumerate(group):
        if score[j] < pos_min:
            continue
        targets = [n for n in range(len(t)) if n == j or (group[n] == g and score[n] <= hard_max)
                   or key[group[n]] != key[g]]
        anchors = [h for h in range(len(a)) if h == g or key[h] != key[g]]
        a2t.append(-sim[g][j] + math.log(sum(math.exp(sim[g][n]) for n in targets)))
        t2a.append(-sim[g][j] + math.log(sum(math.exp(sim[h][j]) for h in anchors)))
    return (sum(a2t) / len(a2t) + sum(t2a) / len(t2a)) / 2


def nt_xent_case():
    torch.manual_seed(0)
    anchors, targets = torch.randn(4, 8), torch.randn(9, 8)
    group = [0, 0, 0, 1, 1, 2, 2, 3, 3]
    score = [1.0, 0.0, 0.75, 0.25, 1.0, 0.75, 0.0, 0.25, 0.75]
    key = [0, 1, 2, 0]  # anchors 0 and 3: the same text under two contexts
    return anchors, targets, group, score, key


def test_nt_xent_matches_the_loop_reference():
    anchors, targets, group, score, key = nt_xent_case()
    got = nt_xent_loss(anchors, targets, torch.tensor(group), torch.tensor(score), torch.tensor(key), tau=0.1)
    assert got.item() == pytest.approx(reference_nt_xent(anchors, targets, group, score, key, 0.1, 0.75, 0.25), rel=1e-5)


def test_nt_xent_hard_negatives_count_and_same_text_groups_do_not():
    anchors, targets, group, score, key = nt_xent_case()
    args = (torch.tensor(group), torch.tensor(score), torch.tensor(key))
    base = nt_xent_loss(anchors, targets, *args).item()
    # moving a hard negative (target 1: anchor 0's, scored 0) onto its anchor raises the loss
    moved = targets.clone()
    moved[1] = anchors[0] * 10
    assert nt_xent_loss(anchors, moved, *args).item() > base + 0.1
    # moving a target of the same anchor text under another context (target 7, group 3) changes nothing for anchor 0
    moved = targets.clone()
    moved[7] = anchors[0] * 10
    only_anchor_0 = torch.tensor([s if g == 0 else 0.5 for g, s in zip(group, score)])
    before = nt_xent_loss(anchors, targets, args[0], only_anchor_0, args[2]).item()
    assert nt_xent_loss(anchors, moved, args[0], only_anchor_0, args[2]).item() == pytest.approx(before, rel=1e-6)


def test_nt_xent_counts_each_other_anchor_once():
    torch.manual_seed(1)
    anchors, target = torch.randn(3, 8), torch.randn(1, 8)
    args = (torch.tensor([0]), torch.tensor([1.0]), torch.arange(3))
    # one positive of anchor 0; the t2a denominator has 3 anchors whatever their number of targets
    sims = (torch.nn.functional.normalize(anchors, dim=-1) @ torch.nn.functional.normalize(target, dim=-1).T)[:, 0] / 0.1
    t2a = -torch.log_softmax(sims, 0)[0]
    a2t = torch.tensor(0.0)  # the only target is the positive itself
    assert nt_xent_loss(anchors, target, *args).item() == pytest.approx(((a2t + t2a) / 2).item(), rel=1e-5)


def test_nt_xent_without_positives_is_zero_with_gradient_path():
    a = torch.randn(3, 4, requires_grad=True)
    loss = nt_xent_loss(a, torch.randn(3, 4), torch.arange(3), torch.zeros(3), torch.arange(3))
    loss.backward()
    assert loss.item() == 0.0 and a.grad is not None


def test_the_auxiliary_gradient_is_capped_relative_to_the_scoring_gradient_on_shared_weights():
    shared, head, projection = (torch.zeros(3, requires_grad=True) for _ in range(3))
    shared.grad, head.grad = torch.tensor([0.0, 3.0, 4.0]), torch.tensor([100.0, 0.0, 0.0])  # scoring: 5 on shared
    aux = [torch.tensor([0.0, 0.0, 20.0]), None, torch.tensor([1.0, 1.0, 1.0])]
    ratio, scale = add_auxiliary_gradient([shared, head, projection], aux, max_ratio=0.5)
    assert ratio == pytest.approx(4.0) and scale == pytest.approx(0.125)  # the head's gradient is not shared
    assert shared.grad.tolist() == pytest.approx([0.0, 3.0, 6.5])
    assert projection.grad.tolist() == pytest.approx([0.125] * 3)  # the whole term scaled alike
    assert head.grad.tolist() == [100.0, 0.0, 0.0]
    weak = torch.zeros(2, requires_grad=True)
    weak.grad = torch.tensor([3.0, 4.0])
    assert add_auxiliary_gradient([weak], [torch.tensor([0.3, 0.4])], max_ratio=0.5) == (pytest.approx(0.1), 1.0)
