"""LayerNorm that also returns each image's mean and variance."""

import torch
from torch import nn


class LayerNorm(nn.Module):
    """Affine layer normalization (Ba et al., 2016) over all of an image's values: (C, H, W)
    for an image input, (C,) for a flat one, with gamma and beta per channel (2C weights),
    as GroupNorm with one group (Wu & He, 2018) computes it.

    forward returns (y, [("mean", m), ("var", v)]) with m, v of shape (B, 1): each image's
    mean and biased variance.
    """

    def __init__(self, channels: int, eps: float = 1e-3):
        super().__init__()
        self.channels = channels
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    @classmethod
    def from_options(cls, channels: int, options: dict) -> "LayerNorm":
        return cls(channels, eps=options["eps"])

    def extra_repr(self) -> str:
        return f"{self.channels}, eps={self.eps}"

    def forward(self, x: torch.Tensor):
        if x.dim() not in (2, 4):
            raise ValueError(f"LayerNorm expects 2-D or 4-D input, got {x.dim()}-D")
        flat = x.flatten(1)
        var, mean = torch.var_mean(flat, dim=1, keepdim=True, unbiased=False)
        shape = (1, -1) + (1,) * (x.dim() - 2)
        normalized = ((flat - mean) * torch.rsqrt(var + self.eps)).view_as(x)
        y = normalized * self.weight.view(shape) + self.bias.view(shape)
        return y.to(x.dtype), [("mean", mean), ("var", var)]
