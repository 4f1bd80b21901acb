"""The lowest level of preparing inputs, shared by the in-memory and the streaming paths:
the normalization statistics (:func:`normalization`), an epoch's order, crops and flips
(:func:`epoch_order`) and :func:`to_input`, the one preprocessing function of normscope."""

from __future__ import annotations

import numpy as np
import torch

from normscope.errors import NormscopeError

__all__ = ["NORMALIZE", "IMAGENET", "normalization", "epoch_order", "to_input"]

NORMALIZE = ("imagenet", "dataset", "none")
# ImageNet's channel means and standard deviations on the [0, 1] scale (torchvision's transforms)
IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


def normalization(normalize: str, c: int, train_stats) -> tuple[np.ndarray, np.ndarray]:
    """(mean, std) per channel for ``normalize``: ImageNet's, the training split's own
    (``train_stats()``, computed only then), or 0 and 1 (plain [0, 1] scaling)."""
    if normalize == "imagenet":
        if c != 3:
            raise NormscopeError(f"normalize: imagenet needs 3-channel (RGB) images; these have {c}")
        return np.array(IMAGENET[0]), np.array(IMAGENET[1])
    if normalize == "dataset":
        mean, std = train_stats()
        return np.asarray(mean, dtype=np.float64), np.where(np.asarray(std) > 0, std, 1.0)
    if normalize == "none":
        return np.zeros(c), np.ones(c)
    raise NormscopeError(f"normalize must be one of {', '.join(NORMALIZE)}, got {normalize!r}")


def to_input(x_uint8: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """uint8 N x C x H x W -> float32, standardized with the training statistics. The one
    preprocessing function of normscope (the trainer, evaluation and Run.split use it)."""
    return (x_uint8.float() / 255.0 - mean) / std


def epoch_order(n: int, seed: int, epoch: int, crop: int, flip: bool):
    """The permutation, crop offsets and flips of one epoch, from a generator seeded by
    (seed, epoch): an epoch is reproducible on its own, which makes resuming exact."""
    g = torch.Generator().manual_seed(int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0]))
    perm = torch.randperm(n, generator=g)
    offsets = torch.randint(0, 2 * crop + 1, (n, 2), generator=g) if crop > 0 else None
    flips = torch.rand(n, generator=g) < 0.5 if flip else None
    return perm, offsets, flips
