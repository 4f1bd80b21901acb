"""AlexNet's local response normalization, returning its denominator."""

import torch
import torch.nn.functional as F
from torch import nn


class LocalResponseNorm(nn.Module):
    """Local response normalization across channels (Krizhevsky et al., 2012, section 3.3):

        b_c = a_c / D_c,   D_c = (k + alpha * sum_{c' within size/2 of c} a_c'^2)^beta

    with AlexNet's constants by default (size 5, alpha 1e-4, beta 0.75, k 2). alpha is not
    divided by `size` (AlexNet's form; torch's LocalResponseNorm divides it): the window is
    the one torch uses, zero-padded at the channel ends. No weights.

    forward returns (y, [("denominator", D averaged over H and W)]) of shape (B, C).
    """

    def __init__(self, channels: int, size: int = 5, alpha: float = 1e-4, beta: float = 0.75, k: float = 2.0):
        super().__init__()
        if size < 1:
            raise ValueError(f"LocalResponseNorm size must be >= 1, got {size}")
        self.channels, self.size, self.alpha, self.beta, self.k = channels, size, alpha, beta, k

    @classmethod
    def from_options(cls, channels: int, options: dict) -> "LocalResponseNorm":
        return cls(channels, size=options["size"], alpha=options["alpha"], beta=options["beta"], k=options["k"])

    def extra_repr(self) -> str:
        return f"{self.channels}, size={self.size}, alpha={self.alpha}, beta={self.beta}, k={self.k}"

    def forward(self, x: torch.Tensor):
        if x.dim() != 4:
            raise ValueError(f"LocalResponseNorm expects 4-D input, got {x.dim()}-D")
        squares = (x * x).unsqueeze(1)  # (B, 1, C, H, W): the window slides over C
        squares = F.pad(squares, (0, 0, 0, 0, self.size // 2, (self.size - 1) // 2))
        window_sum = F.avg_pool3d(squares, (self.size, 1, 1), stride=1).squeeze(1) * self.size
        denominator = (self.k + self.alpha * window_sum).pow(self.beta)
        return x / denominator, [("denominator", denominator.mean(dim=(2, 3)))]
