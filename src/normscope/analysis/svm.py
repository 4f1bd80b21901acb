"""A linear SVM on features written by ``normscope features`` (the clip-art project's step 1).

:func:`fit_svm` reads the .npz (x_train, y_train, x_val, y_val, x_test, y_test), standardizes
the features with the training split's statistics, fits scikit-learn's ``LinearSVC`` (one
versus rest) for every ``C`` of a grid on the training split, keeps the ``C`` with the best
validation accuracy (the smaller ``C`` on a tie) and reports its validation and test metrics
in the form of a run's results.json: loss, accuracy, precision, recall, AUC, top-5 accuracy,
macro F1 and n. The SVM has no probabilities: its decision values stand for the logits, so
the loss and the probability-based metrics (precision, recall, AUC) are those of
softmax(decision values) - rankings (accuracy, top-5, macro F1) are the SVM's own.
:meth:`SvmResult.save` writes them beside the features (svm.json).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from normscope.errors import NormscopeError
from normscope.fileio import write_json
from normscope.train.metrics import classification_metrics

__all__ = ["DEFAULT_CS", "SCALARS", "SvmError", "SvmResult", "fit_svm", "svm_path"]

DEFAULT_CS = (0.001, 0.01, 0.1, 1.0, 10.0)
SCALARS = ("loss", "accuracy", "precision", "recall", "auc", "top5_accuracy", "macro_f1")
MAX_ITER = 10_000


class SvmError(NormscopeError):
    """Features an SVM cannot be fitted on."""


@dataclass
class SvmResult:
    """The chosen ``C``, the validation accuracy of every ``C`` tried, and the metrics per split."""

    features: str
    layer: str
    classifier: str
    C: float
    grid: list[dict] = field(default_factory=list)
    train: dict = field(default_factory=dict)
    val: dict = field(default_factory=dict)
    test: dict = field(default_factory=dict)
    class_names: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)

    def save(self, path=None) -> Path:
        path = Path(path) if path is not None else svm_path(self.features)
        write_json(path, self.to_dict())
        return path


def svm_path(features) -> Path:
    """svm.json beside the features file."""
    return Path(features).with_name("svm.json")


def _load(path: Path) -> dict[str, np.ndarray]:
    if not path.is_file():
        raise SvmError(f"{path}: no such features file (write one with: normscope features SOURCE --layer NAME)")
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except (OSError, ValueError) as exc:
        raise SvmError(f"{path}: not a readable .npz of features ({exc})") from None
    for key in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test"):
        if key not in arrays:
            raise SvmError(
                f"{path}: no array '{key}'; an SVM needs the train, val and test splits of "
                "`normscope features` (--splits train,val,test)"
            )
    for split in ("train", "val", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if x.ndim != 2 or len(x) != len(y):
            raise SvmError(f"{path}: x_{split} must be N x D with N = len(y_{split}); got {x.shape}, {y.shape}")
    if len(arrays["y_val"]) == 0:
        raise SvmError(f"{path}: the validation split is empty; C is chosen on it (train with validation > 0)")
    return arrays


def _logits(scores: np.ndarray) -> np.ndarray:
    """Decision values as N x K logits (a binary SVM's one column as [0, s])."""
    return np.stack([np.zeros_like(scores), scores], axis=1) if scores.ndim == 1 else scores


def _metrics(model, x, y) -> dict:
    logits = _logits(model.decision_function(x)).astype(np.float64)
    z = logits - logits.max(axis=1, keepdims=True)
    probs = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    m = classification_metrics(probs, y, logits=logits)
    return {k: m[k] for k in SCALARS} | {"n": int(len(y))}


def fit_svm(features, cs=DEFAULT_CS, seed: int = 0) -> SvmResult:
    """Fit the SVM of ``features`` (an .npz path) for each ``C`` in ``cs``; the best on the
    validation split, with its metrics on every split."""
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import LinearSVC

    path = Path(features)
    a = _load(path)
    classes = [str(c) for c in a["class_names"]] if "class_names" in a else []
    k = max(len(classes), int(max(a[f"y_{s}"].max(initial=0) for s in ("train", "val", "test"))) + 1)
    missing = sorted(set(range(k)) - set(np.unique(a["y_train"]).tolist()))
    if missing:
        raise SvmError(f"{path}: class {missing[0]} has no training features; the SVM needs every class in y_train")
    cs = [float(c) for c in cs]
    if not cs or any(not np.isfinite(c) or c <= 0 for c in cs):
        raise SvmError(f"C values must be positive numbers, got {cs}")
    grid, best, best_acc = [], None, -1.0
    for c in cs:
        model = make_pipeline(StandardScaler(), LinearSVC(C=c, max_iter=MAX_ITER, random_state=seed))
        model.fit(a["x_train"], a["y_train"])
        acc = float(model.score(a["x_val"], a["y_val"]))
        grid.append({"C": c, "val_accuracy": acc})
        if acc > best_acc:
            best, best_acc = (c, model), acc
    c, model = best
    return SvmResult(
        features=str(path),
        layer=str(a["layer"]) if "layer" in a else "",
        classifier="LinearSVC on standardized features (scikit-learn)",
        C=c,
        grid=grid,
        train=_metrics(model, a["x_train"], a["y_train"]),
        val=_metrics(model, a["x_val"], a["y_val"]),
        test=_metrics(model, a["x_test"], a["y_test"]) if len(a["y_test"]) else {},
        class_names=classes,
    )
