"""RMSNorm as a normscope plugin: a normalization from outside the package.

    normscope --plugin examples/plugins/rmsnorm.py summary examples/perceptnet.yml --norm rms --reuse

RMSNorm (Zhang & Sennrich, 2019) divides each image by the root mean square of all its
values (C, H, W; C for a flat input) and scales each channel by a gain: no centring, no
bias. The statistic it gives the classifier under reuse is that root mean square, one
value per image and layer.

It declares no parameter-count rule (normscope counts the layer's weights by building it
once on the meta device) and no FLOPs rule (summaries say "not counted").
"""

import torch
from torch import nn

from normscope.norms import NormSpec, Option, Statistic, Style, register_norm


class RMSNorm(nn.Module):
    """y = x / sqrt(mean(x²) + eps) · g, per image; forward returns (y, [("rms", (B, 1))])."""

    def __init__(self, channels: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.gain = nn.Parameter(torch.ones(channels))

    @classmethod
    def from_options(cls, channels: int, options: dict) -> "RMSNorm":
        return cls(channels, eps=options["eps"])

    def forward(self, x: torch.Tensor):
        rms = torch.sqrt(x.flatten(1).pow(2).mean(dim=1, keepdim=True) + self.eps)  # (B, 1)
        shape = (-1,) + (1,) * (x.dim() - 1)
        gain = self.gain.view((1, -1) + (1,) * (x.dim() - 2))
        return x / rms.view(shape) * gain, [("rms", rms)]


register_norm(
    NormSpec(
        short="rms",
        long="rmsnorm",
        display="RMSNorm",
        layer=RMSNorm,
        stats=(Statistic("rms", "image root mean square", r"\mathrm{rms}", "rms", size=lambda channels, options: 1),),
        options={"eps": Option(float, 1e-6, gt=0, help="added to the mean square")},
        style=Style((120, 94, 240)),
        per_image=True,
        image_only=False,
        doc="each image's root mean square over all its values",
    )
)
