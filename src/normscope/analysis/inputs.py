"""The classifier input: of images (the trunk, once per image) and of a run's split."""

from __future__ import annotations

import numpy as np
import torch

from normscope.analysis.common import AttributionError
from normscope.data.batches import to_input


@torch.no_grad()
def classifier_inputs(
    model, x: torch.Tensor, batch_size: int = 256, device: torch.device | str | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(z, logits)``: the classifier's input (N x D, float32, CPU) and the model's
    output for images ``x``, in eval mode, in batches of ``batch_size``."""
    clf = model.classifier
    device = torch.device(device) if device is not None else next(model.parameters()).device
    captured: list[torch.Tensor] = []
    hook = clf.register_forward_pre_hook(lambda mod, inp: captured.append(inp[0].detach().float().cpu()))
    was_training = model.training
    model.eval()
    outs = []
    try:
        for i in range(0, len(x), batch_size):
            outs.append(model(x[i : i + batch_size].to(device)).detach().float().cpu())
    finally:
        hook.remove()
        model.train(was_training)
    if not outs:
        raise AttributionError("no images to attribute")
    return torch.cat(captured), torch.cat(outs)


def classifier_outputs(model, z: torch.Tensor) -> torch.Tensor:
    """The model's output for precomputed classifier inputs ``z`` (float32, CPU)."""
    with torch.no_grad():
        return model.classifier(z.to(next(model.classifier.parameters()).device)).float().cpu()


def classifier_parts(model):
    """(W, b, act) of the classifier on CPU in float32; act is None for plain logits."""
    clf = model.classifier
    w = clf.weight.detach().float().cpu()
    b = clf.bias.detach().float().cpu() if clf.bias is not None else torch.zeros(w.shape[0])
    return w, b, getattr(clf, "act", None)


def sample_indices(n: int, samples: int | None, seed: int) -> np.ndarray:
    """All indices when ``samples`` is None/0 or >= n, else a seeded random subset (sorted)."""
    if not samples or samples >= n:
        return np.arange(n)
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n, size=samples, replace=False))


def run_inputs(run, split: str, samples: int | None = None, seed: int = 0, device=None):
    """``(x, y, indices)``: ``samples`` images of a run's split (seeded subset; None/0 =
    all), preprocessed exactly as the trainer's input (``normscope.data.batches.to_input``)."""
    s = run.splits()
    if split not in s.x:
        raise AttributionError(f"unknown split {split!r}; use test, val or train")
    n = len(s.y[split])
    if n == 0:
        raise AttributionError(f"{run.path}: the {split} split is empty")
    idx = sample_indices(n, samples, seed)
    dev = torch.device(device) if device is not None else torch.device("cpu")
    xu = torch.from_numpy(np.ascontiguousarray(s.x[split][idx])).permute(0, 3, 1, 2).contiguous().to(dev)
    mean, std = s.stat_tensors(dev)
    return to_input(xu, mean, std), torch.from_numpy(s.y[split][idx]).long(), idx
