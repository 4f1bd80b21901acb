"""InstanceNorm that also returns each image's channel statistics."""

import torch
from torch import nn


class InstanceNorm(nn.Module):
    """Affine instance normalization for (B, C, H, W) inputs, no running statistics.

    forward returns (y, [("mean", m), ("var", v)]) with m, v of shape (B, C): each
    image's channel mean and biased variance over H and W.
    """

    def __init__(self, channels: int, eps: float = 1e-3):
        super().__init__()
        self.channels = channels
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    @classmethod
    def from_options(cls, channels: int, options: dict) -> "InstanceNorm":
        return cls(channels, eps=options["eps"])

    def extra_repr(self) -> str:
        return f"{self.channels}, eps={self.eps}"

    def forward(self, x: torch.Tensor):
        if x.dim() != 4:
            raise ValueError(f"InstanceNorm expects 4-D input, got {x.dim()}-D")
        var, mean = torch.var_mean(x, dim=(2, 3), keepdim=True, unbiased=False)
        scale = torch.rsqrt(var + self.eps) * self.weight.view(1, -1, 1, 1)
        y = (x - mean) * scale + self.bias.view(1, -1, 1, 1)
        return y.to(x.dtype), [("mean", mean.flatten(1)), ("var", var.flatten(1))]
