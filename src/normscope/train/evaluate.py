"""Evaluation: logits of whole splits in large batches, the thesis' metrics of them, the
final test (and validation) metrics of a run's best checkpoint, and :func:`evaluate_run`
to re-compute them later, with BatchNorm's running statistics (the default, as Keras
evaluates) or with batch statistics (what the classifier saw in training)."""

from __future__ import annotations

import contextlib
from pathlib import Path

import torch
import torch.nn.functional as F

import normscope.train.runs as runs
from normscope.data.batches import to_input
from normscope.errors import NormscopeError
from normscope.model.layers.batchnorm import BatchNorm
from normscope.model.weights import load_weights
from normscope.rundir.layout import CONFUSION_PNG
from normscope.train.metrics import classification_metrics
from normscope.train.settings import pick_device
from normscope.train.tables import plot_confusion

__all__ = [
    "SCALAR_METRICS",
    "autocast",
    "predict_logits",
    "predict_batches",
    "loss_and_accuracy",
    "test_metrics",
    "evaluate_best",
    "evaluate_run",
    "evaluate_run_bn_stats",
    "BN_STATS",
]

# the metrics of results.json (and `normscope eval`), in their order
SCALAR_METRICS = ("loss", "accuracy", "precision", "recall", "auc", "top5_accuracy", "macro_f1")
# what BatchNorm normalizes (and, with reuse_stats: batch, reuses) with in an evaluation
BN_STATS = ("running", "batch")


def autocast(device: torch.device, amp: bool):
    """bfloat16 autocast (on by default on CUDA; on the CPU only when asked for)."""
    if amp:
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


@torch.no_grad()
def predict_logits(
    model, x_uint8: torch.Tensor, mean, std, batch_size: int = 1024, amp: bool = False, channels_last: bool = False
) -> torch.Tensor:
    """float32 logits of every image, in large batches, model in eval mode."""
    was_training = model.training
    model.eval()
    out = []
    device = x_uint8.device
    for i in range(0, len(x_uint8), batch_size):
        xb = to_input(x_uint8[i : i + batch_size], mean, std)
        if channels_last:
            xb = xb.contiguous(memory_format=torch.channels_last)
        with autocast(device, amp):
            out.append(model(xb).float())
    model.train(was_training)
    return torch.cat(out) if out else torch.empty(0)


@torch.no_grad()
def predict_batches(model, batches, amp: bool = False, channels_last: bool = False, forward=None):
    """(float32 logits, labels) of every (input, label) batch, ``model`` in eval mode;
    ``forward`` (default: the model) maps a batch's input to its logits."""
    was_training = model.training
    model.eval()
    forward = forward or model
    out, labels = [], []
    for xb, yb in batches:
        if channels_last and xb.ndim == 4:
            xb = xb.contiguous(memory_format=torch.channels_last)
        with autocast(xb.device, amp):
            out.append(forward(xb).float())
        labels.append(yb)
        del xb  # not held while the next batch is made
    model.train(was_training)
    if not out:
        return torch.empty(0), torch.empty(0, dtype=torch.long)
    return torch.cat(out), torch.cat(labels)


def loss_and_accuracy(logits: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    loss = F.cross_entropy(logits, y)
    correct = (logits.argmax(1) == y).sum()
    return float(loss), int(correct) / len(y)


def test_metrics(logits: torch.Tensor, y: torch.Tensor) -> dict:
    """The thesis' metrics (docs/thesis.md) of softmax(logits) (normscope.train.metrics); the loss is the
    cross-entropy from the logits, unclipped, as Keras computes it."""
    logits = logits.double()
    probs = torch.softmax(logits, dim=1).cpu().numpy()
    return classification_metrics(probs, y.cpu().numpy(), logits=logits.cpu().numpy())


def evaluate_best(
    run_dir: Path, model, data, class_names: list[str], batch_size: int, amp: bool, channels_last: bool
) -> dict:
    """Test (and validation) metrics of best.pt, loaded into ``model``, as results.json
    holds them; writes per_class.csv and confusion_matrix.csv of the test split."""
    best = runs.load_checkpoint(run_dir / runs.BEST, map_location="cpu")
    model.load_state_dict(best["model"])
    out = {}
    for split in ("val", "test"):
        if data.n(split) == 0:
            continue
        logits, y = predict_batches(model, data.batches(split, batch_size), amp, channels_last)
        m = test_metrics(logits, y)
        out[split] = {k: m[k] for k in SCALAR_METRICS} | {"n": int(data.n(split))}
        if split == "test":
            runs.write_per_class(run_dir / runs.PER_CLASS, class_names, m["per_class_accuracy"], m["confusion_matrix"])
            runs.write_confusion(run_dir / runs.CONFUSION, class_names, m["confusion_matrix"])
            title = f"{run_dir.name}: test set, best checkpoint"
            plot_confusion(run_dir / CONFUSION_PNG, class_names, m["confusion_matrix"], title)
    return out


def evaluate_run(
    run_dir,
    device: str | None = "auto",
    data_dir=None,
    split: str = "test",
    checkpoint: str = "best",
    bn_stats: str = "running",
    weights=None,
) -> dict:
    """Re-compute the metrics of a run's checkpoint (best by default) on ``split``;
    returns the thesis' metrics plus per_class_accuracy and confusion_matrix.
    ``bn_stats``, ``weights``: see :func:`evaluate_run_bn_stats`."""
    return evaluate_run_bn_stats(run_dir, device, data_dir, split, checkpoint, (bn_stats,), weights)[bn_stats]


def evaluate_run_bn_stats(
    run_dir,
    device: str | None = "auto",
    data_dir=None,
    split: str = "test",
    checkpoint: str = "best",
    bn_stats=BN_STATS,
    weights=None,
) -> dict[str, dict]:
    """:func:`evaluate_run` once per entry of ``bn_stats`` (the run and data loaded once):
    "running" evaluates as Keras does, BatchNorm with its running statistics; "batch" with
    the statistics of each batch, as in training: batches of the run's training batch size
    in a seeded random order (running statistics left unchanged, dropout off). ``weights`` (a
    .pth state dict or ``torchvision:NAME``) replaces the checkpoint: the run's model with those
    weights, loaded by structure; each result's "weights_report" says what was loaded."""
    unknown = [m for m in bn_stats if m not in BN_STATS]
    if unknown:
        raise NormscopeError(f"--bn-stats must be running or batch, got {unknown[0]!r}")
    dev = pick_device(device)
    run = runs.load_run(run_dir, device=dev, checkpoint=checkpoint, data_dir=data_dir)
    report = None
    if weights is None:
        model = run.load_model(checkpoint, device=dev)
    else:
        model = run.build_model()
        report = load_weights(model, weights)
        model = model.to(dev).eval()
    if "batch" in bn_stats and not any(isinstance(m, BatchNorm) for m in model.modules()):
        raise NormscopeError(f"{run_dir}: --bn-stats batch needs a model with BatchNorm layers ({run.name} has none)")
    s = run.splits()
    if len(s.y[split]) == 0:
        raise NormscopeError(f"{run_dir}: the {split} split is empty")
    mean, std = s.stat_tensors(dev)
    amp, channels_last = run.config.precision_on(dev)  # on another kind of device: its defaults
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    y = torch.from_numpy(s.y[split]).to(dev)
    out = {}
    for mode in bn_stats:
        if mode == "running":  # streamed batches: an image folder is never loaded whole
            batches = ((to_input(xb.to(dev), mean, std), yb) for xb, yb in s.batches(split, run.config.eval_batch_size))
            logits, _ = predict_batches(model, batches, amp, channels_last)
        else:
            x = s.images(split, dev)
            logits = _batch_stats_logits(model, x, mean, std, run.config.train.batch_size, amp, channels_last)
        out[mode] = test_metrics(logits, y) | ({"weights_report": report} if report is not None else {})
    return out


@torch.no_grad()
def _batch_stats_logits(model, x_uint8, mean, std, batch_size: int, amp: bool, channels_last: bool) -> torch.Tensor:
    """Logits with every BatchNorm normalizing by (and reusing) its batch's statistics:
    seeded random batches of ``batch_size``, in the images' order again."""
    order = torch.randperm(len(x_uint8), generator=torch.Generator().manual_seed(0)).to(x_uint8.device)
    batches = list(order.split(batch_size))
    if len(batches) > 1 and len(batches[-1]) == 1:  # one image has no batch variance: join the previous batch
        batches[-2:] = [torch.cat(batches[-2:])]
    bns = [m for m in model.modules() if isinstance(m, BatchNorm)]
    saved = [(m, m.momentum) for m in bns]
    model.eval()
    for m in bns:
        m.train()
        m.momentum = 0.0  # running = (1 - 0)·running + 0·batch: unchanged
    try:
        logits = torch.empty((len(x_uint8), model.classifier.out_features), device=x_uint8.device)
        for idx in batches:
            xb = to_input(x_uint8[idx], mean, std)
            if channels_last:
                xb = xb.contiguous(memory_format=torch.channels_last)
            with autocast(x_uint8.device, amp):
                logits[idx] = model(xb).float()
    finally:
        for m, momentum in saved:
            m.momentum = momentum
        model.eval()
    return logits
