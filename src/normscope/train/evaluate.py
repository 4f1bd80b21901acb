"""Evaluation: logits of whole splits in large batches, metrics.md's metrics of them, the
final test (and validation) metrics of a run's best checkpoint, and :func:`evaluate_run`
to re-compute them later."""

from __future__ import annotations

import contextlib
from pathlib import Path

import torch
import torch.nn.functional as F

import normscope.train.runs as runs
from normscope.data.batches import DeviceData, to_input
from normscope.errors import NormscopeError
from normscope.train.metrics import classification_metrics
from normscope.train.settings import pick_device

__all__ = [
    "SCALAR_METRICS",
    "autocast",
    "predict_logits",
    "loss_and_accuracy",
    "test_metrics",
    "evaluate_best",
    "evaluate_run",
]

# the metrics of results.json (and `normscope eval`), in their order
SCALAR_METRICS = ("loss", "accuracy", "precision", "recall", "auc", "top5_accuracy", "macro_f1")


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


def loss_and_accuracy(logits: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    loss = F.cross_entropy(logits, y)
    correct = (logits.argmax(1) == y).sum()
    return float(loss), int(correct) / len(y)


def test_metrics(logits: torch.Tensor, y: torch.Tensor) -> dict:
    """metrics.md's metrics of softmax(logits) (normscope.train.metrics)."""
    probs = torch.softmax(logits.double(), dim=1).cpu().numpy()
    return classification_metrics(probs, y.cpu().numpy())


def evaluate_best(
    run_dir: Path, model, data: DeviceData, class_names: list[str], batch_size: int, amp: bool, channels_last: bool
) -> dict:
    """Test (and validation) metrics of best.pt, loaded into ``model``, as results.json
    holds them; writes per_class.csv and confusion_matrix.csv of the test split."""
    best = runs.load_checkpoint(run_dir / runs.BEST, map_location="cpu")
    model.load_state_dict(best["model"])
    out = {}
    for split in ("val", "test"):
        if data.n(split) == 0:
            continue
        logits = predict_logits(model, data.x[split], data.mean, data.std, batch_size, amp, channels_last)
        m = test_metrics(logits, data.y[split])
        out[split] = {k: m[k] for k in SCALAR_METRICS} | {"n": int(data.n(split))}
        if split == "test":
            runs.write_per_class(run_dir / runs.PER_CLASS, class_names, m["per_class_accuracy"], m["confusion_matrix"])
            runs.write_confusion(run_dir / runs.CONFUSION, class_names, m["confusion_matrix"])
    return out


def evaluate_run(
    run_dir, device: str | None = "auto", data_dir=None, split: str = "test", checkpoint: str = "best"
) -> dict:
    """Re-compute the metrics of a run's checkpoint (best by default) on ``split``;
    returns metrics.md's metrics plus per_class_accuracy and confusion_matrix."""
    dev = pick_device(device)
    run = runs.load_run(run_dir, device=dev, checkpoint=checkpoint, data_dir=data_dir)
    model = run.load_model(checkpoint, device=dev)
    s = run.splits()
    if len(s.y[split]) == 0:
        raise NormscopeError(f"{run_dir}: the {split} split is empty")
    mean, std = s.stat_tensors(dev)
    amp, channels_last = run.config.precision_on(dev)  # on another kind of device: its defaults
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    logits = predict_logits(
        model, s.images(split, dev), mean, std, run.config.eval_batch_size, amp=amp, channels_last=channels_last
    )
    return test_metrics(logits, torch.from_numpy(s.y[split]).to(dev))
