"""GroupNorm that also returns each image's per-group statistics."""

import torch
from torch import nn

from normscope.norms import default_groups


class GroupNorm(nn.Module):
    """Affine group normalization (Wu & He, 2018) for (B, C, H, W) inputs.

    The C channels are split into `groups` groups of C/groups consecutive channels; each
    image is normalized per group over the group's channels, H and W. forward returns
    (y, [("mean", m), ("var", v)]) with m, v of shape (B, groups): each image's group
    means and biased variances. Weights: gamma and beta per channel (2C).
    """

    def __init__(self, channels: int, groups: int, eps: float = 1e-3):
        super().__init__()
        if groups < 1 or channels % groups:
            raise ValueError(f"GroupNorm groups={groups} must divide the {channels} channels")
        self.channels = channels
        self.groups = groups
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    @classmethod
    def from_options(cls, channels: int, options: dict) -> "GroupNorm":
        return cls(channels, groups=options["groups"] or default_groups(channels), eps=options["eps"])

    def extra_repr(self) -> str:
        return f"{self.channels}, groups={self.groups}, eps={self.eps}"

    def forward(self, x: torch.Tensor):
        if x.dim() != 4:
            raise ValueError(f"GroupNorm expects 4-D input, got {x.dim()}-D")
        b, c, h, w = x.shape
        grouped = x.reshape(b, self.groups, (c // self.groups) * h * w)
        var, mean = torch.var_mean(grouped, dim=2, keepdim=True, unbiased=False)
        normalized = ((grouped - mean) * torch.rsqrt(var + self.eps)).reshape(b, c, h, w)
        y = normalized * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)
        return y.to(x.dtype), [("mean", mean.flatten(1)), ("var", var.flatten(1))]
