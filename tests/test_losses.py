import math

import pytest
import torch

from solution.phrase.losses import nt_xent_loss, smooth_k2_loss


def test_smooth_k2_is_zero_inside_the_threshold():
    pred = torch.tensor([0.5, 0.6, 0.4, 0.74])
    assert smooth_k2_loss(pred, torch.full((4,), 0.5), k=4.0, thr=0.25).item() == 0.0


def test_smooth_k2_hand_computed():
    pred = torch.tensor([0.9, 0.0, 0.5, 1.0])
    target = torch.tensor([0.5, 0.5, 0.5, 0.25])
    # |d| = .4, .5, 0, .75 ; thr .25 -> excess .15, .25, 0, .5 ; k=4 -> .09, .25, 0, 1.0 ; mean .335
    assert smooth_k2_loss(pred, target, k=4.0, thr=0.25).item() == pytest.approx(0.335, abs=1e-6)
    # thr 0: plain k * squared error: 4 * (.16 + .25 + 0 + .5625) / 4
    assert smooth_k2_loss(pred, target, k=4.0, thr=0.0).item() == pytest.approx(0.9725, abs=1e-6)


def test_smooth_k2_quadratic_outside():
    target = torch.zeros(1)
    values = [smooth_k2_loss(torch.tensor([d]), target, k=2.0, thr=0.1).item() for d in (0.2, 0.3, 0.5)]
    assert values == pytest.approx([2 * 0.1**2, 2 * 0.2**2, 2 * 0.4**2])


def reference_nt_xent(a, t, scores, groups, tau, min_score):
    """Loop form: for each positive row i, -log softmax over allowed targets (resp. anchors)."""
    def unit(rows):
        return [[v / math.sqrt(sum(w * w for w in row)) for v in row] for row in rows.tolist()]

    a, t = unit(a), unit(t)
    n = len(a)
    sim = [[sum(p * q for p, q in zip(a[i], t[j])) / tau for j in range(n)] for i in range(n)]
    losses_a2t, losses_t2a = [], []
    for i in range(n):
        if scores[i] < min_score:
            continue
        allowed = [j for j in range(n) if j == i or groups[j] != groups[i]]
        losses_a2t.append(-sim[i][i] + math.log(sum(math.exp(sim[i][j]) for j in allowed)))
        losses_t2a.append(-sim[i][i] + math.log(sum(math.exp(sim[j][i]) for j in allowed)))
    return (sum(losses_a2t) / len(losses_a2t) + sum(losses_t2a) / len(losses_t2a)) / 2


def test_nt_xent_matches_reference():
    torch.manual_seed(0)
    a, t = torch.randn(6, 8), torch.randn(6, 8)
    scores = torch.tensor([1.0, 0.75, 0.5, 0.0, 1.0, 0.25])
    groups = torch.tensor([0, 0, 1, 2, 3, 3])
    got = nt_xent_loss(a, t, scores, groups, tau=0.1, positive_min_score=0.75).item()
    assert got == pytest.approx(reference_nt_xent(a, t, scores.tolist(), groups.tolist(), 0.1, 0.75), rel=1e-5)


def test_nt_xent_without_positives_is_zero_with_gradient_path():
    a = torch.randn(3, 4, requires_grad=True)
    loss = nt_xent_loss(a, torch.randn(3, 4), torch.zeros(3), torch.arange(3))
    loss.backward()
    assert loss.item() == 0.0 and a.grad is not None
