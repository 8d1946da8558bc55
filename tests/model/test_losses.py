import math

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torchvision.models.detection.roi_heads import fastrcnn_loss

from lvisnb.model import losses as L
from lvisnb.model.normed_predictor import NormedLinear

K = 3  # foreground classes in the small cases: labels 0 (background), 1, 2, 3

# 4 RoIs x (K + 1) logits, torchvision's layout (column 0 background)
LOGITS = [
    [0.2, 1.5, -0.3, 0.1],
    [1.0, -0.5, 0.8, 0.3],
    [-0.7, 0.4, 0.0, 2.0],
    [0.5, 0.9, 1.2, -1.1],
]
LABELS = [1, 2, 0, 3]


def logits(rows=LOGITS, grad=False):
    return torch.tensor(rows, dtype=torch.float32, requires_grad=grad)


def labels(values=LABELS):
    return torch.tensor(values, dtype=torch.int64)


# -- independent numpy formulas ----------------------------------------------------------------


def np_log_softmax(x):
    x = np.asarray(x, dtype=np.float64)
    return x - x.max() - math.log(np.exp(x - x.max()).sum())


def np_sigmoid(x):
    return 1.0 / (1.0 + np.exp(-np.asarray(x, dtype=np.float64)))


def np_bce(z, t):
    z = np.asarray(z, dtype=np.float64)
    return np.maximum(z, 0) - z * t + np.log1p(np.exp(-np.abs(z)))


def np_seesaw(z, y, fg_counts, p=0.8, q=2.0, eps=1e-2):
    """Seesaw loss written RoI by RoI, class by class, from the paper's definition."""
    z = np.asarray(z, dtype=np.float64)
    k = z.shape[1] - 2
    total = 0.0
    for n, label in enumerate(y):
        total -= np_log_softmax([z[n, 0], z[n, k + 1]])[int(label > 0)]
        if label == 0:
            continue
        i, cls = label - 1, z[n, 1 : k + 1]
        sigma = np.exp(np_log_softmax(cls))
        adjusted = cls.copy()
        for j in range(k):
            if j == i:
                continue
            n_i, n_j = max(fg_counts[i], 1), max(fg_counts[j], 1)
            mitigation = (n_j / n_i) ** p if n_j < n_i else 1.0
            ratio = sigma[j] / max(sigma[i], eps)
            compensation = ratio**q if ratio > 1 else 1.0
            adjusted[j] += math.log(mitigation * compensation)
        total -= np_log_softmax(adjusted)[i]
    return total / len(y)


def np_eqlv2_weights(pos_neg, gamma=12.0, mu=0.8, alpha=4.0):
    neg = 1.0 / (1.0 + np.exp(-gamma * (np.asarray(pos_neg, dtype=np.float64) - mu)))
    pos = 1.0 + alpha * (1.0 - neg)
    return np.concatenate([[1.0], pos]), np.concatenate([[1.0], neg])


def np_eqlv2(z, y, pos_neg):
    """(loss, positive statistics, negative statistics) of eqlv2's forward + collect_grad."""
    z = np.asarray(z, dtype=np.float64)
    t = np.eye(z.shape[1])[y]
    pos_w, neg_w = np_eqlv2_weights(pos_neg)
    w = t * pos_w + (1 - t) * neg_w
    loss = (w * np_bce(z, t)).sum() / len(y)
    g = w * np.abs(np_sigmoid(z) - t)
    return loss, (g * t).sum(0)[1:], (g * (1 - t)).sum(0)[1:]


# -- registry and contract ---------------------------------------------------------------------


def test_registry_holds_the_four_losses_with_their_widths():
    assert set(L.CLS_LOSSES) == {"ce", "seesaw", "eqlv2", "federated"}
    widths = {
        name: L.build_cls_loss(name, K, class_image_counts=[1, 2, 3]).num_outputs
        for name in L.CLS_LOSSES
    }
    assert widths == {"ce": 4, "seesaw": 5, "eqlv2": 4, "federated": 4}


def test_build_cls_loss_passes_params_and_refuses_bad_ones():
    assert L.build_cls_loss("seesaw", K, p=0.5).p == 0.5
    with pytest.raises(ValueError, match="unknown classification loss 'focal'"):
        L.build_cls_loss("focal", K)
    with pytest.raises(ValueError, match="class_image_counts"):
        L.build_cls_loss("federated", K)
    with pytest.raises(ValueError, match="3 classes"):
        L.build_cls_loss("federated", K, class_image_counts=[1, 2])
    with pytest.raises(TypeError):
        L.build_cls_loss("eqlv2", K, beta=1.0)
    with pytest.raises(ValueError, match="positive int"):
        L.build_cls_loss("ce", 0)


@pytest.mark.parametrize("name", ["ce", "eqlv2", "federated"])
def test_wrong_shapes_and_dtypes_are_refused(name):
    loss = L.build_cls_loss(name, K, class_image_counts=[1, 2, 3])
    with pytest.raises(ValueError, match=r"\(N, 4\)"):
        loss(torch.zeros(4, 5), labels())
    with pytest.raises(ValueError, match="int64"):
        loss(logits(), labels().int())
    with pytest.raises(ValueError, match=r"\(N, 4\)"):
        loss.scores(torch.zeros(4, 3))


@pytest.mark.parametrize("name", sorted(L.CLS_LOSSES))
def test_an_empty_batch_gives_zero_with_a_graph(name):
    loss = L.build_cls_loss(name, K, class_image_counts=[1, 2, 3])
    z = torch.zeros(0, loss.num_outputs, requires_grad=True)
    value = loss(z, torch.zeros(0, dtype=torch.int64))
    value.backward()
    assert value.item() == 0.0 and z.grad.shape == (0, loss.num_outputs)


# -- softmax cross-entropy ---------------------------------------------------------------------


def test_ce_is_torchvisions_fastrcnn_classification_loss():
    z, y = logits(), labels()
    pairs = zip(LOGITS, LABELS, strict=True)
    expected = -np.mean([np_log_softmax(row)[label] for row, label in pairs])
    boxes = torch.zeros(4, 4 * (K + 1))
    tv_loss, _ = fastrcnn_loss(z, boxes, [y[:2], y[2:]], [torch.zeros(2, 4)] * 2)
    ours = L.build_cls_loss("ce", K)(z, y)
    assert ours.item() == pytest.approx(expected, rel=1e-6)
    assert ours.item() == pytest.approx(tv_loss.item(), rel=1e-6)


# -- Seesaw ------------------------------------------------------------------------------------


def test_seesaw_mitigation_by_hand():
    counts = torch.tensor([10, 5, 20])  # classes i = 0, 1, 2 (labels 1, 2, 3)
    m = L.seesaw_mitigation(counts, torch.tensor([0, 2, 1]), p=0.8)
    expected = [
        [1.0, 0.5**0.8, 1.0],  # class 0 (10 seen): class 1 (5) is rarer, class 2 (20) is not
        [0.5**0.8, 0.25**0.8, 1.0],  # class 2 (20 seen): both others rarer
        [1.0, 1.0, 1.0],  # class 1 (5 seen): the rarest, nothing mitigated
    ]
    np.testing.assert_allclose(m.numpy(), expected, rtol=1e-6)


def test_seesaw_mitigation_clamps_unseen_counts_to_one():
    m = L.seesaw_mitigation(torch.tensor([4, 0, 1]), torch.tensor([0]), p=0.5)
    np.testing.assert_allclose(m.numpy(), [[1.0, 0.5, 0.5]], rtol=1e-6)  # (1/4) ** 0.5


def test_seesaw_compensation_by_hand():
    z = torch.log(torch.tensor([[0.2, 0.5, 0.3], [0.2, 0.5, 0.3], [1e-4, 0.5, 0.4999]]))
    c = L.seesaw_compensation(z, torch.tensor([0, 1, 0]), q=2.0, eps=1e-2)
    expected = [
        [1.0, 2.5**2, 1.5**2],  # class 0 scored 0.2: classes scored above it are compensated
        [1.0, 1.0, 1.0],  # class 1 has the top score: no compensation
        [1.0, (0.5 / 1e-2) ** 2, (0.4999 / 1e-2) ** 2],  # sigma_i 1e-4 floored at eps
    ]
    np.testing.assert_allclose(c.numpy(), expected, rtol=1e-4)
    assert not c.requires_grad


SEESAW_LOGITS = [  # (N, K + 2): background objectness, classes 1..3, object objectness
    [-0.5, 0.5, 2.0, -1.0, 1.0],  # label 1 scored below label 2: compensated
    [0.3, 0.1, 1.2, 0.4, 0.2],
    [1.5, -0.2, 0.3, 0.9, -0.4],
    [0.0, 1.0, -0.5, 0.7, 0.8],
]


def test_seesaw_loss_counts_cumulatively_over_two_calls():
    loss = L.build_cls_loss("seesaw", K)
    first, second = [1, 2, 0, 1], [3, 1, 0, 0]
    value = loss(logits(SEESAW_LOGITS), labels(first))
    # after the first call: label 1 twice, label 2 once, label 3 never (background once)
    assert loss.cum_samples.tolist() == [1, 2, 1, 0]
    assert value.item() == pytest.approx(np_seesaw(SEESAW_LOGITS, first, [2, 1, 0]), rel=1e-5)
    value = loss(logits(SEESAW_LOGITS), labels(second))
    assert loss.cum_samples.tolist() == [3, 3, 1, 1]
    assert value.item() == pytest.approx(np_seesaw(SEESAW_LOGITS, second, [3, 1, 1]), rel=1e-5)
    # the counts are part of the state_dict, so a resumed run keeps them
    assert loss.state_dict()["cum_samples"].tolist() == [3, 3, 1, 1]


def test_seesaw_case_exercises_both_factors():
    """The two-call case above is not plain cross-entropy: both factors differ from 1."""
    z = logits(SEESAW_LOGITS)[:, 1:-1]
    targets = torch.tensor([0, 1, 0])  # the positive RoIs of the first call
    assert (L.seesaw_mitigation(torch.tensor([2, 1, 0]), targets, 0.8) < 1).any()
    assert (L.seesaw_compensation(z[[0, 1, 3]], targets, 2.0, 1e-2) > 1).any()
    plain = np_seesaw(SEESAW_LOGITS, [1, 2, 0, 1], [2, 1, 0], p=0.0, q=0.0)
    assert np_seesaw(SEESAW_LOGITS, [1, 2, 0, 1], [2, 1, 0]) != pytest.approx(plain, rel=1e-3)


def test_seesaw_without_factors_is_class_ce_on_positives_plus_objectness():
    loss = L.build_cls_loss("seesaw", K, p=0.0, q=0.0, loss_weight=2.0)
    z, y = logits(SEESAW_LOGITS), labels([1, 2, 0, 1])
    positive = y > 0
    class_ce = F.cross_entropy(z[positive, 1:-1], y[positive] - 1, reduction="sum")
    objectness = F.cross_entropy(z[:, [0, -1]], positive.long(), reduction="sum")
    expected = 2.0 * (class_ce + objectness) / 4
    assert loss(z, y).item() == pytest.approx(expected.item(), rel=1e-6)


# -- EQLv2 -------------------------------------------------------------------------------------


def test_eqlv2_first_call_is_unweighted_bce():
    loss = L.build_cls_loss("eqlv2", K)
    expected, _, _ = np_eqlv2(LOGITS, LABELS, [100.0] * K)
    bce = np_bce(LOGITS, np.eye(K + 1)[LABELS]).sum() / 4
    assert expected == pytest.approx(bce, rel=1e-12)  # weights start at 1
    assert loss(logits(), labels()).item() == pytest.approx(expected, rel=1e-6)


def test_eqlv2_statistics_and_weights_update_after_backward():
    loss = L.build_cls_loss("eqlv2", K)
    loss(logits(grad=True), labels()).backward()
    _, pos, neg = np_eqlv2(LOGITS, LABELS, [100.0] * K)
    np.testing.assert_allclose(loss.pos_grad.numpy(), pos, rtol=1e-5)
    np.testing.assert_allclose(loss.neg_grad.numpy(), neg, rtol=1e-5)
    ratio = pos / (neg + 1e-10)
    np.testing.assert_allclose(loss.pos_neg.numpy(), ratio, rtol=1e-5)
    # the next batch is weighted by the new ratio, and its weighted statistics accumulate
    rows, ys = [row[::-1] for row in LOGITS], [3, 0, 1, 1]
    expected, pos2, neg2 = np_eqlv2(rows, ys, ratio)
    assert expected != pytest.approx(np_eqlv2(rows, ys, [100.0] * K)[0], rel=1e-3)
    value = loss(logits(rows, grad=True), labels(ys))
    assert value.item() == pytest.approx(expected, rel=1e-5)
    value.backward()
    np.testing.assert_allclose(loss.pos_grad.numpy(), pos + pos2, rtol=1e-5)
    np.testing.assert_allclose(loss.neg_grad.numpy(), neg + neg2, rtol=1e-5)


def test_eqlv2_statistics_wait_for_a_backward_pass():
    loss = L.build_cls_loss("eqlv2", K)
    loss(logits(grad=True), labels())  # no backward
    with torch.no_grad():
        loss(logits(grad=True), labels())
    assert loss.pos_grad.abs().sum() == 0 and (loss.pos_neg == 100).all()


def test_eqlv2_hook_leaves_gradients_alone_and_ignores_other_losses():
    loss = L.build_cls_loss("eqlv2", K, loss_weight=2.0)
    z = logits(grad=True)
    (loss(z, labels()) + (z**2).sum()).backward()
    t = np.eye(K + 1)[LABELS]
    expected_grad = 2.0 * (np_sigmoid(LOGITS) - t) / 4 + 2 * np.asarray(LOGITS)
    np.testing.assert_allclose(z.grad.numpy(), expected_grad, rtol=1e-5, atol=1e-7)
    _, pos, neg = np_eqlv2(LOGITS, LABELS, [100.0] * K)  # not scaled by loss_weight
    np.testing.assert_allclose(loss.pos_grad.numpy(), pos, rtol=1e-5)
    np.testing.assert_allclose(loss.neg_grad.numpy(), neg, rtol=1e-5)


def test_eqlv2_non_finite_gradient_leaves_statistics():
    loss = L.build_cls_loss("eqlv2", K)
    loss(logits(grad=True), labels()).backward()
    before = [b.clone() for b in (loss.pos_grad, loss.neg_grad, loss.pos_neg)]
    grad = torch.ones(4, K + 1)
    grad[1, 2] = float("inf")
    loss.collect(grad, labels())
    for old, new in zip(before, (loss.pos_grad, loss.neg_grad, loss.pos_neg), strict=True):
        torch.testing.assert_close(new, old)
    fresh = L.build_cls_loss("eqlv2", K)
    fresh.collect(grad, labels())  # an overflow first: weights stay at their start (ratio 100)
    assert (fresh.pos_neg == 100).all() and fresh.neg_grad.abs().sum() == 0


def _eqlv2_rank(rank: int, store: str, out: str, batches: list[list[int]]) -> None:
    """One of two gloo processes: EQLv2 on this rank's batch (zero logits), two steps; its
    statistics saved to ``out/rank{rank}.pt``."""
    dist.init_process_group("gloo", init_method=store, rank=rank, world_size=2)
    try:
        loss = L.build_cls_loss("eqlv2", K)
        for _ in range(2):
            zeros = torch.zeros(len(batches[rank]), K + 1, requires_grad=True)
            loss(zeros, labels(batches[rank])).backward()
        stats = {name: getattr(loss, name) for name in ("pos_grad", "neg_grad", "pos_neg")}
        torch.save(stats, f"{out}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.mark.skipif(not dist.is_available(), reason="torch.distributed not built")
@pytest.mark.parametrize("batches", [[[1, 0], [2, 3]], [[3, 3, 0], [1]]])
def test_eqlv2_statistics_under_two_gloo_processes_are_one_process_of_both_batches(
    tmp_path, batches
):
    """Two ranks see what one process that sees both ranks' batches sees, on both ranks, and
    eqlv2's own formula: the sums are all-reduced whole (issue 24: a non-contiguous view
    reduced the background's column and left the last class's out)."""
    store = f"file://{tmp_path / 'store'}"
    torch.multiprocessing.spawn(_eqlv2_rank, args=(store, str(tmp_path), batches), nprocs=2)
    both = labels(batches[0] + batches[1])
    alone = L.build_cls_loss("eqlv2", K)
    pos_neg, pos_sum, neg_sum = [100.0] * K, 0.0, 0.0
    for _ in range(2):
        alone(torch.zeros(len(both), K + 1, requires_grad=True), both).backward()
        _, pos, neg = np_eqlv2(np.zeros((len(both), K + 1)), both.numpy(), pos_neg)
        pos_sum, neg_sum = pos_sum + pos, neg_sum + neg
        pos_neg = pos_sum / (neg_sum + 1e-10)
    np.testing.assert_allclose(alone.pos_neg.numpy(), pos_neg, rtol=1e-5)
    for rank in (0, 1):
        saved = torch.load(tmp_path / f"rank{rank}.pt", weights_only=True)
        for name, value in saved.items():
            torch.testing.assert_close(value, getattr(alone, name), msg=f"rank {rank} {name}")


def test_eqlv2_weights_formula():
    pos_w, neg_w = L.eqlv2_weights(torch.tensor([0.8, 0.0, 100.0]), gamma=12, mu=0.8, alpha=4)
    np.testing.assert_allclose(neg_w.numpy(), [0.5, 1 / (1 + math.exp(9.6)), 1.0], rtol=1e-6)
    np.testing.assert_allclose(pos_w.numpy(), 1 + 4 * (1 - neg_w.numpy()), rtol=1e-6)


# -- federated ---------------------------------------------------------------------------------


def seeded(seed):
    return torch.Generator().manual_seed(seed)


def test_federated_weights_are_image_count_to_the_power():
    w = L.federated_class_weights([1, 4, 9, 0], power=0.5)
    assert w.dtype == torch.float32 and w.tolist() == [1.0, 2.0, 3.0, 0.0]
    with pytest.raises(ValueError, match="finite counts"):
        L.federated_class_weights([1, -1, 2])


def test_federated_keeps_gt_classes_and_counts_background_like_detectron2():
    weights = torch.ones(100)
    with_bg = L.federated_classes(labels([0, 3, 7, 7, 42]), weights, 50, seeded(0))
    assert {3, 7, 42} <= set(with_bg.tolist()) and 0 not in with_bg.tolist()
    assert len(with_bg) == 49 and len(set(with_bg.tolist())) == 49  # background counted
    without_bg = L.federated_classes(labels([3, 7]), weights, 50, seeded(0))
    assert {3, 7} <= set(without_bg.tolist()) and len(without_bg) == 50
    assert without_bg.min() >= 1 and without_bg.max() <= 100


def test_federated_draws_nothing_once_the_gt_classes_fill_the_quota():
    kept = L.federated_classes(labels([0, 1, 2, 2]), torch.ones(5), 2, seeded(0))
    assert kept.tolist() == [1, 2]


def test_federated_draw_is_capped_by_classes_with_weight():
    # labels 2 and 5 have no training images: never drawn, and no error for want of classes
    kept = L.federated_classes(labels([0, 1]), torch.tensor([1.0, 0.0, 4.0, 9.0, 0.0]), 50)
    assert kept.tolist() == [1, 3, 4]


def test_federated_draw_probabilities_are_the_weights():
    # weights sqrt([1, 4, 9, 16, 25]) = [1, 2, 3, 4, 5]; label 2 present, background weight 0
    weights = L.federated_class_weights([1, 4, 9, 16, 25])
    expected_prob = torch.tensor([0.0, 1.0, 0.0, 3.0, 4.0, 5.0])
    for seed in range(5):
        kept = L.federated_classes(labels([2]), weights, 3, seeded(seed))
        drawn = torch.multinomial(expected_prob, 2, replacement=False, generator=seeded(seed))
        assert kept.tolist() == sorted([2, *drawn.tolist()])


def test_federated_draw_frequencies_follow_sqrt_image_count():
    weights = L.federated_class_weights([100, 4, 9, 16, 25])  # label 1 present: not drawn
    generator, draws = seeded(0), np.zeros(6)
    for _ in range(2000):
        kept = L.federated_classes(labels([1]), weights, 2, generator).tolist()
        draws[[c for c in kept if c != 1]] += 1
    expected = np.array([0, 0, 2, 3, 4, 5]) / 14  # sqrt of the counts; counts would give 4/54..
    np.testing.assert_allclose(draws / 2000, expected, atol=0.03)


def test_federated_draw_is_reproducible_with_a_seed():
    weights = torch.rand(200, generator=seeded(1)) + 0.1
    first = L.federated_classes(labels([0, 5]), weights, 50, seeded(7))
    again = L.federated_classes(labels([0, 5]), weights, 50, seeded(7))
    other = L.federated_classes(labels([0, 5]), weights, 50, seeded(8))
    assert first.tolist() == again.tolist() and first.tolist() != other.tolist()


def test_federated_loss_is_bce_on_kept_classes_only():
    # labels 2 and 4 have no training images and are absent: only columns 1 and 3 are trained
    loss = L.build_cls_loss("federated", 4, class_image_counts=[5, 0, 7, 0])
    rows = [row + [0.6] for row in LOGITS]
    y = [0, 1, 3, 1]
    t = np.eye(5)[y]
    expected = np_bce(rows, t)[:, [1, 3]].sum() / 4
    assert loss(logits(rows), labels(y)).item() == pytest.approx(expected, rel=1e-6)


def test_federated_loss_with_a_generator_repeats_and_matches_numpy():
    counts = np.arange(1, 61) ** 2
    z = torch.randn(6, 61, generator=seeded(2))
    y = labels([0, 4, 4, 17, 0, 33])
    a = L.build_cls_loss("federated", 60, counts, fed_loss_num_classes=10, generator=seeded(3))
    b = L.build_cls_loss("federated", 60, counts, fed_loss_num_classes=10, generator=seeded(3))
    draws = seeded(3)
    for _ in range(3):
        kept = L.federated_classes(y, a.class_weights, 10, draws).numpy()
        expected = np_bce(z.numpy(), np.eye(61)[y.numpy()])[:, kept].sum() / 6
        value = a(z, y).item()
        assert value == b(z, y).item()
        assert value == pytest.approx(expected, rel=1e-5)


# -- gradients reach the classifier ------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(L.CLS_LOSSES))
def test_gradients_reach_the_classifier(name):
    torch.manual_seed(0)
    params = {"generator": seeded(0)} if name == "federated" else {}
    loss = L.build_cls_loss(name, K, class_image_counts=[3, 1, 2], **params)
    layer = (NormedLinear if name == "seesaw" else nn.Linear)(6, loss.num_outputs)
    features = torch.randn(8, 6)
    y = labels([0, 1, 2, 3, 0, 1, 0, 2])
    loss(layer(features), y).backward()
    grad = layer.weight.grad
    assert torch.isfinite(grad).all()
    assert (grad.abs().sum(dim=1) > 0).sum() >= K  # every trained row moves
    if name == "federated":
        assert grad[0].abs().sum() == 0  # the background logit is not trained


# -- scores ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(L.CLS_LOSSES))
def test_scores_shape_and_range(name):
    loss = L.build_cls_loss(name, K, class_image_counts=[1, 2, 3])
    z = torch.randn(7, loss.num_outputs, generator=seeded(4)) * 5
    s = loss.scores(z)
    assert s.shape == (7, K + 1) and s.dtype == torch.float32
    assert (s >= 0).all() and (s <= 1).all()


def test_ce_scores_are_softmax_rows():
    s = L.build_cls_loss("ce", K).scores(logits())
    np.testing.assert_allclose(s.sum(1).numpy(), 1.0, rtol=1e-6)
    np.testing.assert_allclose(s[0].numpy(), np.exp(np_log_softmax(LOGITS[0])), rtol=1e-6)


def test_seesaw_scores_are_class_softmax_times_objectness():
    s = L.build_cls_loss("seesaw", K).scores(logits(SEESAW_LOGITS))
    np.testing.assert_allclose(s.sum(1).numpy(), 1.0, rtol=1e-6)
    for row, z in zip(s.numpy(), SEESAW_LOGITS, strict=True):
        background, obj = np.exp(np_log_softmax([z[0], z[-1]]))
        assert row[0] == pytest.approx(background, rel=1e-5)
        np.testing.assert_allclose(row[1:], obj * np.exp(np_log_softmax(z[1:-1])), rtol=1e-5)


def test_eqlv2_scores_are_sigmoids_times_not_background():
    z = logits()
    sig = np_sigmoid(LOGITS)
    with_obj = L.build_cls_loss("eqlv2", K).scores(z).numpy()
    np.testing.assert_allclose(with_obj[:, 0], sig[:, 0], rtol=1e-6)
    np.testing.assert_allclose(with_obj[:, 1:], sig[:, 1:] * (1 - sig[:, :1]), rtol=1e-6)
    plain = L.build_cls_loss("eqlv2", K, test_with_obj=False).scores(z).numpy()
    np.testing.assert_allclose(plain, sig, rtol=1e-6)


def test_federated_scores_are_independent_sigmoids():
    s = L.build_cls_loss("federated", K, class_image_counts=[1, 2, 3]).scores(logits())
    np.testing.assert_allclose(s.numpy(), np_sigmoid(LOGITS), rtol=1e-6)
