"""Classification metrics computed exactly as the thesis' Keras metrics were.

All pooled metrics (precision, recall, AUC) treat the N x K (image, class) pairs
as one binary problem against the one-hot labels, like Keras' ``Precision()``,
``Recall()`` and ``AUC()`` on softmax outputs.  docs/thesis.md ("Metrics") defines each.

The loss is the cross-entropy from the logits, never clipped: for a classifier whose last
layer is a softmax Dense, Keras computes ``categorical_crossentropy`` from the logits
(checked with Keras 3.15 on TensorFlow 2.21: logits [0, 4000] with label 0 give loss 4000),
so the thesis' losses (VGG16_BN_v2: 53,879) are not capped at -log(1e-7) = 16.12.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.special import logsumexp

__all__ = [
    "KERAS_EPSILON",
    "classification_metrics",
    "crossentropy",
    "crossentropy_from_logits",
    "keras_auc",
    "pooled_precision_recall",
    "top_k_accuracy",
    "confusion_matrix",
    "macro_f1",
]

KERAS_EPSILON = 1e-7  # the edges of Keras' AUC thresholds


def _check(probs: Any, labels: Any, what: str = "probs") -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(probs, dtype=np.float64)
    y = np.asarray(labels)
    if p.ndim != 2:
        raise ValueError(f"{what} must be N x K, got shape {p.shape}")
    if y.ndim != 1 or len(y) != len(p):
        raise ValueError(f"labels must be a vector of {len(p)} class indices, got shape {y.shape}")
    if not np.issubdtype(y.dtype, np.integer):
        if np.issubdtype(y.dtype, np.floating) and np.all(np.mod(y, 1) == 0):
            y = y.astype(np.int64)
        else:
            raise ValueError(f"labels must be integers, got {y.dtype}")
    y = y.astype(np.int64)
    if len(p) == 0:
        raise ValueError("metrics need at least one example")
    k = p.shape[1]
    if y.min() < 0 or y.max() >= k:
        raise ValueError(f"labels must lie in 0..{k - 1}, got range {y.min()}..{y.max()}")
    if not np.all(np.isfinite(p)):
        raise ValueError(f"{what} contain NaN or infinite values")
    return p, y


def crossentropy_from_logits(logits: np.ndarray, labels: np.ndarray) -> float:
    """Mean of logsumexp(logits) - logits[label] over the images: the cross-entropy of
    softmax(logits), as Keras computes it for a softmax classifier; not clipped, so an image
    whose correct logit trails by 4000 costs 4000."""
    z, y = _check(logits, labels, "logits")
    return float(np.mean(logsumexp(z, axis=1) - z[np.arange(len(y)), y]))


def crossentropy(probs: np.ndarray, labels: np.ndarray) -> float:
    """Mean of -log p[label] of probabilities (rows rescaled to sum to 1), not clipped: a zero
    probability on the label gives inf. Use :func:`crossentropy_from_logits` where the logits
    exist: probabilities lose the loss of saturated images."""
    p, y = _check(probs, labels)
    s = p.sum(axis=1, keepdims=True)
    p = np.divide(p, s, out=np.full_like(p, 1.0 / p.shape[1]), where=s > 0)
    with np.errstate(divide="ignore"):
        return float(-np.mean(np.log(p[np.arange(len(y)), y])))


def keras_auc(probs: np.ndarray, labels: np.ndarray, num_thresholds: int = 200, eps: float = KERAS_EPSILON) -> float:
    """Keras ``AUC()`` with its defaults (ROC, 200 thresholds, trapezoidal
    'interpolation'), micro over all N x K pairs.

    Thresholds are ``i / (T - 1)`` for ``i = 0..T-1`` with the first replaced by
    ``-eps`` and the last by ``1 + eps``; a pair counts as predicted positive at
    threshold t when ``p > t``.  As in Keras' fast path for evenly spaced
    thresholds, each score is put in the bucket of the highest threshold it
    exceeds (found with ``searchsorted`` against the exact threshold values, so
    scores lying on a threshold are not nudged by rounding) and true/false
    positives per threshold are reverse cumulative sums of the bucket counts.
    """
    p, y = _check(probs, labels)
    n, k = p.shape
    onehot = np.zeros((n, k), dtype=bool)
    onehot[np.arange(n), y] = True
    scores = np.clip(p.ravel(), 0.0, 1.0)
    pos = onehot.ravel()
    t = num_thresholds
    thresholds = np.array([-eps] + [(i + 1) * 1.0 / (t - 1) for i in range(t - 2)] + [1.0 + eps])
    # bucket b: p exceeds thresholds 0..b (searchsorted counts thresholds < p)
    buckets = np.maximum(np.searchsorted(thresholds, scores, side="left") - 1, 0)
    pos_hist = np.bincount(buckets[pos], minlength=t).astype(np.float64)
    neg_hist = np.bincount(buckets[~pos], minlength=t).astype(np.float64)
    tp = np.cumsum(pos_hist[::-1])[::-1]  # tp[j] = #(pos, p > thr_j)
    fp = np.cumsum(neg_hist[::-1])[::-1]
    # the last threshold (1 + eps) is never exceeded
    tp[-1] = 0.0
    fp[-1] = 0.0
    n_pos = float(pos.sum())
    n_neg = float((~pos).sum())
    tpr = tp / n_pos if n_pos > 0 else np.zeros_like(tp)
    fpr = fp / n_neg if n_neg > 0 else np.zeros_like(fp)
    heights = (tpr[:-1] + tpr[1:]) / 2.0
    return float(np.sum((fpr[:-1] - fpr[1:]) * heights))


def pooled_precision_recall(probs: np.ndarray, labels: np.ndarray, threshold: float = 0.5) -> tuple[float, float]:
    """Keras ``Precision()`` / ``Recall()`` at ``threshold`` over all N x K pairs
    (0 when the denominator is 0)."""
    p, y = _check(probs, labels)
    above = p > threshold
    n_pred_pos = int(above.sum())
    tp = int(above[np.arange(len(y)), y].sum())
    precision = tp / n_pred_pos if n_pred_pos else 0.0
    recall = tp / len(y)  # each image has exactly one positive pair
    return float(precision), float(recall)


def top_k_accuracy(probs: np.ndarray, labels: np.ndarray, k: int = 5) -> float:
    """Fraction of images whose label is among the ``min(k, K)`` highest scores."""
    p, y = _check(probs, labels)
    k = max(1, min(int(k), p.shape[1]))
    if k == p.shape[1]:
        return 1.0
    true_score = p[np.arange(len(y)), y]
    # label is in the top k iff fewer than k classes score strictly higher
    higher = (p > true_score[:, None]).sum(axis=1)
    return float(np.mean(higher < k))


def confusion_matrix(pred: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
    """K x K counts, rows = true class, columns = predicted class."""
    pred = np.asarray(pred, dtype=np.int64)
    labels = np.asarray(labels, dtype=np.int64)
    return np.bincount(labels * num_classes + pred, minlength=num_classes * num_classes).reshape(
        num_classes, num_classes
    )


def macro_f1(cm: np.ndarray) -> float:
    """Macro-averaged F1 from a confusion matrix, like sklearn's
    ``f1_score(average='macro')``: classes that occur in neither the labels nor
    the predictions are left out; an undefined F1 counts as 0."""
    cm = np.asarray(cm, dtype=np.float64)
    tp = np.diag(cm)
    support = cm.sum(axis=1)
    predicted = cm.sum(axis=0)
    present = (support + predicted) > 0
    if not present.any():
        return 0.0
    denom = support + predicted  # 2TP + FP + FN
    f1 = np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0)
    return float(f1[present].mean())


def classification_metrics(
    probs: np.ndarray, labels: np.ndarray, k_top: int = 5, logits: np.ndarray | None = None
) -> dict[str, Any]:
    """All of the study's metrics for softmax outputs ``probs`` (N x K) and
    integer ``labels`` (N,); the loss from ``logits`` (whose softmax ``probs`` are) when
    given, else from ``probs`` (both unclipped).

    Returns a dict of plain Python values: ``loss``, ``accuracy``, ``precision``,
    ``recall``, ``auc`` (thesis/Keras definitions, pooled over N x K pairs),
    ``top5_accuracy`` (top-``min(k_top, K)``), ``macro_f1``,
    ``per_class_accuracy`` (list of K floats; NaN for a class with no examples)
    and ``confusion_matrix`` (K x K nested list of ints, rows = true class).
    """
    p, y = _check(probs, labels)
    n, k = p.shape
    pred = p.argmax(axis=1)
    cm = confusion_matrix(pred, y, k)
    support = cm.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_class = np.where(support > 0, np.diag(cm) / np.maximum(support, 1), np.nan)
    precision, recall = pooled_precision_recall(p, y)
    if logits is not None and np.shape(logits) != p.shape:
        raise ValueError(f"logits must have the shape of probs {p.shape}, got {np.shape(logits)}")
    return {
        "loss": crossentropy(p, y) if logits is None else crossentropy_from_logits(logits, y),
        "accuracy": float(np.mean(pred == y)),
        "precision": precision,
        "recall": recall,
        "auc": keras_auc(p, y),
        "top5_accuracy": top_k_accuracy(p, y, k_top),
        "macro_f1": macro_f1(cm),
        "per_class_accuracy": [float(v) for v in per_class],
        "confusion_matrix": cm.astype(int).tolist(),
    }
