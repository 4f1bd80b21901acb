import math
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn import metrics as skm

from normscope.train import evaluate
from normscope.train.metrics import (
    KERAS_EPSILON,
    classification_metrics,
    crossentropy,
    crossentropy_from_logits,
    keras_auc,
    top_k_accuracy,
)


def _random_case(n=400, k=12, seed=0, sharp=2.0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, k, size=n)
    logits = rng.normal(size=(n, k))
    logits[np.arange(n), labels] += sharp  # better than chance, some p > 0.5
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    return p, labels


def _reference_keras_auc(p, labels, t=200, eps=KERAS_EPSILON):
    """Straightforward loop over thresholds, as tf.keras.metrics.AUC defines it."""
    n, k = p.shape
    y = np.zeros((n, k), bool)
    y[np.arange(n), labels] = True
    thr = np.array([-eps] + [(i + 1) / (t - 1) for i in range(t - 2)] + [1 + eps])
    s, pos = p.ravel(), y.ravel()
    tp = np.array([np.sum((s > th) & pos) for th in thr], float)
    fp = np.array([np.sum((s > th) & ~pos) for th in thr], float)
    tpr, fpr = tp / pos.sum(), fp / (~pos).sum()
    return float(np.sum((fpr[:-1] - fpr[1:]) * (tpr[:-1] + tpr[1:]) / 2))


@pytest.mark.parametrize("seed,k", [(0, 12), (1, 3), (2, 100)])
def test_against_sklearn(seed, k):
    p, y = _random_case(n=500, k=k, seed=seed)
    m = classification_metrics(p, y)
    pred = p.argmax(1)
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    kk = min(5, k)
    if kk < k:
        assert m["top5_accuracy"] == pytest.approx(skm.top_k_accuracy_score(y, p, k=kk, labels=np.arange(k)))
    else:
        assert m["top5_accuracy"] == 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        f1 = skm.f1_score(y, pred, average="macro")
    assert m["macro_f1"] == pytest.approx(f1)
    assert m["confusion_matrix"] == skm.confusion_matrix(y, pred, labels=np.arange(k)).tolist()
    onehot = np.eye(k, dtype=int)[y]
    exact_auc = skm.roc_auc_score(onehot.ravel(), p.ravel())
    # Keras' 200-threshold AUC approximates the exact micro AUC; with many classes
    # most negative (and weak positive) scores fall below the first grid step
    # (1/199) and the coarse trapezoid there costs a few thousandths.
    assert abs(m["auc"] - exact_auc) < (0.002 if k <= 12 else 0.006)
    assert m["auc"] == pytest.approx(_reference_keras_auc(p, y), abs=1e-12)
    thresholded = (p > 0.5).astype(int).ravel()
    assert m["precision"] == pytest.approx(skm.precision_score(onehot.ravel(), thresholded, zero_division=0))
    assert m["recall"] == pytest.approx(skm.recall_score(onehot.ravel(), thresholded))
    assert m["loss"] == pytest.approx(skm.log_loss(y, p, labels=np.arange(k)), rel=1e-9)
    pca = skm.recall_score(y, pred, average=None, labels=np.arange(k), zero_division=0)
    present = np.bincount(y, minlength=k) > 0
    np.testing.assert_allclose(np.array(m["per_class_accuracy"])[present], pca[present])


def test_types_are_plain_python():
    p, y = _random_case(n=50, k=4)
    m = classification_metrics(p, y)
    for key in ("loss", "accuracy", "precision", "recall", "auc", "top5_accuracy", "macro_f1"):
        assert type(m[key]) is float, key
    assert all(type(v) is float for v in m["per_class_accuracy"])
    assert all(type(v) is int for row in m["confusion_matrix"] for v in row)
    assert len(m["confusion_matrix"]) == 4 and len(m["per_class_accuracy"]) == 4


def test_nothing_above_half_gives_zero_precision():
    k = 10
    y = np.arange(40) % k
    p = np.full((40, k), 1.0 / k)
    m = classification_metrics(p, y)
    assert m["precision"] == 0.0
    assert m["recall"] == 0.0


def test_perfect_predictions():
    k = 7
    y = np.arange(70) % k
    p = np.full((70, k), 1e-4)
    p[np.arange(70), y] = 1 - 1e-4 * (k - 1)
    m = classification_metrics(p, y)
    assert m["auc"] == pytest.approx(1.0, abs=1e-9)
    assert m["accuracy"] == m["precision"] == m["recall"] == m["macro_f1"] == 1.0
    assert m["loss"] < 1e-3


def _softmax(z):
    z = np.asarray(z, dtype=np.float64)
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def test_loss_from_logits_closed_forms():
    # log(e + e² + e³) - 1 = 2 + log(1 + 1/e + 1/e²)
    assert crossentropy_from_logits([[1.0, 2.0, 3.0]], [0]) == pytest.approx(2 + math.log(1 + math.e**-1 + math.e**-2))
    # equal logits: log K
    assert crossentropy_from_logits(np.zeros((4, 100)), [0, 5, 50, 99]) == pytest.approx(math.log(100))
    # the mean over images
    assert crossentropy_from_logits([[0.0, 0.0], [3.0, 0.0]], [0, 0]) == pytest.approx(
        (math.log(2) + math.log(1 + math.exp(-3))) / 2
    )


def test_saturated_loss_is_not_capped():
    """Keras computes the loss of a softmax classifier from its logits: a correct logit that
    trails by 4000 costs 4000, not -log(1e-7) = 16.12."""
    logits, y = np.array([[0.0, 4000.0]]), np.array([0])
    assert crossentropy_from_logits(logits, y) == 4000.0
    m = classification_metrics(_softmax(logits), y, logits=logits)
    assert m["loss"] == 4000.0 and m["accuracy"] == 0.0
    assert m["auc"] == pytest.approx(0.0, abs=1e-9)  # the probability-based metrics are as before
    # evaluation (results.json, `normscope eval`) and validation, from torch logits
    t_logits, t_y = torch.tensor([[0.0, 4000.0], [4000.0, 0.0]]), torch.tensor([0, 0])
    assert evaluate.test_metrics(t_logits, t_y)["loss"] == 2000.0
    assert evaluate.loss_and_accuracy(t_logits, t_y) == (2000.0, 0.5)
    # probabilities alone cannot carry it: a zero probability on the label is an infinite loss, not 16.12
    assert crossentropy(_softmax(logits), y) == math.inf


def test_loss_from_logits_matches_torch():
    p, y = _random_case(n=300, k=10, seed=4)
    logits = np.log(p) * 7.0 + 3.0  # large margins; the logits of softmax(logits) below
    expected = F.cross_entropy(torch.from_numpy(logits), torch.from_numpy(y)).item()
    m = classification_metrics(_softmax(logits), y, logits=logits)
    assert m["loss"] == pytest.approx(expected, rel=1e-12)
    assert m["loss"] == pytest.approx(crossentropy(_softmax(logits), y), rel=1e-9)
    with pytest.raises(ValueError, match="logits must have the shape"):
        classification_metrics(p, y, logits=logits[:, :5])


def test_auc_vectorized_matches_loop_with_ties_on_threshold_grid():
    rng = np.random.default_rng(3)
    k, n = 5, 60
    y = rng.integers(0, k, n)
    # scores exactly on the threshold grid exercise the strict '>' comparison
    p = rng.integers(0, 200, size=(n, k)) / 199.0
    assert keras_auc(p, y) == pytest.approx(_reference_keras_auc(p, y), abs=1e-12)


def test_top_k_clamped_to_num_classes():
    p, y = _random_case(n=30, k=3)
    assert top_k_accuracy(p, y, 5) == 1.0
    assert classification_metrics(p, y, k_top=1)["top5_accuracy"] == pytest.approx(
        classification_metrics(p, y)["accuracy"]
    )


def test_absent_class_per_class_accuracy_is_nan():
    y = np.array([0, 0, 1, 1])
    p = np.array([[0.9, 0.05, 0.05], [0.2, 0.7, 0.1], [0.1, 0.8, 0.1], [0.3, 0.6, 0.1]])
    m = classification_metrics(p, y)
    assert m["per_class_accuracy"][:2] == [0.5, 1.0]
    assert math.isnan(m["per_class_accuracy"][2])


def test_bad_input():
    with pytest.raises(ValueError):
        classification_metrics(np.ones((3, 2)) / 2, np.array([0, 1]))
    with pytest.raises(ValueError):
        classification_metrics(np.ones((2, 2)) / 2, np.array([0, 2]))
