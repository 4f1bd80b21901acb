"""BatchNorm that also returns the channel statistics it normalized with."""

import torch
import torch.nn.functional as F
from torch import nn


class BatchNorm(nn.BatchNorm2d):
    """Batch normalization for (B, C, H, W) or (B, C) inputs.

    Defaults follow Keras: eps 1e-3 and Keras momentum 0.99 (torch momentum 0.01).
    forward returns (y, [("mean", m), ("var", v)]) where m and v have shape (B, C).
    With reuse_stats "batch" (the thesis): the biased batch statistics in training mode,
    the running statistics in eval mode, the same C values repeated for every image of
    the batch. With "image": each image's own channel means and biased variances of the
    input over H, W (as InstanceNorm's; a flat input's are the input and 0), in both
    modes. The normalization itself is BatchNorm's either way.
    """

    def __init__(self, channels: int, eps: float = 1e-3, momentum: float = 0.01, reuse_stats: str = "batch"):
        super().__init__(channels, eps=eps, momentum=momentum)
        if reuse_stats not in ("batch", "image"):
            raise ValueError(f"BatchNorm reuse_stats must be 'batch' or 'image', got {reuse_stats!r}")
        self.reuse_stats = reuse_stats

    @classmethod
    def from_options(cls, channels: int, options: dict) -> "BatchNorm":
        """From a description's options; its momentum is Keras' (0.99 is torch's 0.01)."""
        return cls(channels, eps=options["eps"], momentum=1.0 - options["momentum"], reuse_stats=options["reuse_stats"])

    def extra_repr(self) -> str:
        return super().extra_repr() + ("" if self.reuse_stats == "batch" else f", reuse_stats={self.reuse_stats}")

    @property
    def channels(self) -> int:
        return self.num_features

    def _check_input_dim(self, x: torch.Tensor) -> None:
        if x.dim() not in (2, 4):
            raise ValueError(f"BatchNorm expects 2-D or 4-D input, got {x.dim()}-D")

    def forward(self, x: torch.Tensor):
        self._check_input_dim(x)
        if self.training:
            self.num_batches_tracked.add_(1)
        # torch updates the running stats (with the unbiased variance) and normalizes
        y = F.batch_norm(
            x, self.running_mean, self.running_var, self.weight, self.bias, self.training, self.momentum, self.eps
        )
        if self.reuse_stats == "image":
            if x.dim() == 2:
                return y, [("mean", x), ("var", torch.zeros_like(x))]
            var, mean = torch.var_mean(x, dim=(2, 3), unbiased=False)
            return y, [("mean", mean), ("var", var)]
        if self.training:
            dims = (0,) if x.dim() == 2 else (0, 2, 3)
            var, mean = torch.var_mean(x, dim=dims, unbiased=False)
        else:
            mean, var = self.running_mean, self.running_var
        batch = x.shape[0]
        return y, [("mean", mean.expand(batch, -1)), ("var", var.expand(batch, -1))]
