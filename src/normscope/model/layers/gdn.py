"""Generalized divisive normalization (GDN) with a k x k spatial-channel kernel.

    y = z / D,   D_i = (beta_i + sum_j conv_kxk(|z_j|^alpha_j; gamma_ij))^epsilon_i

gamma (C x C x k x k) and beta (C) are stored reparametrized so they stay
non-negative / above a floor whatever the optimizer does: a stored value r maps to
max(r, bound)^2 - pedestal, with a bound whose gradient still lets r grow back up
(the scheme tensorflow_compression and CompressAI use). alpha and epsilon are plain
per-channel parameters, frozen unless trainable_exponents; the forward pass uses them
bounded below (max(value, 1e-3) with the same gradient rule), so trained exponents stay
positive. Since |z|^alpha feeds a convolution, alpha is indexed by the input channel j:
one power per input channel makes the sum over j a single convolution of |z|^alpha.
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

_OFFSET = 2.0**-18  # smallest stored value
_PEDESTAL = _OFFSET**2  # subtracted so that a stored _OFFSET means exactly 0
_BETA_MIN = 1e-6  # floor of the effective beta
_EXPONENT_MIN = 1e-3  # floor of the effective alpha and epsilon
_ABS_MIN = 1e-30  # |z| is floored here before the log
_LOG_POW_MAX = math.log(1e30)  # |z|^alpha is capped at 1e30 to stay finite


class _LowerBound(torch.autograd.Function):
    """max(x, bound); the gradient passes where x >= bound or where it pushes x up."""

    @staticmethod
    def forward(x, bound):
        return torch.clamp(x, min=bound)

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, bound = inputs
        ctx.save_for_backward(x)
        ctx.bound = bound

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        passes = (x >= ctx.bound) | (grad < 0)
        return torch.where(passes, grad, torch.zeros_like(grad)), None


def _to_stored(value: torch.Tensor) -> torch.Tensor:
    return torch.sqrt(torch.clamp(value + _PEDESTAL, min=_PEDESTAL))


def _from_stored(stored: torch.Tensor, floor: float) -> torch.Tensor:
    bound = math.sqrt(floor + _PEDESTAL)
    return _LowerBound.apply(stored, bound) ** 2 - _PEDESTAL


class GDN(nn.Module):
    """GDN over (B, C, H, W) inputs; reflect padding keeps H x W.

    forward returns (y, [("denominator", D averaged over H and W)]) of shape (B, C).
    The denominator is computed in float32, also under autocast.
    Weights: k*k*C*C (gamma) + C (beta) + C (alpha) + C (epsilon).
    """

    def __init__(self, channels: int, kernel_size: int = 3, trainable_exponents: bool = False):
        super().__init__()
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"GDN kernel_size must be odd and positive, got {kernel_size}")
        self.channels = channels
        self.kernel_size = kernel_size
        self.trainable_exponents = trainable_exponents

        gamma = torch.zeros(channels, channels, kernel_size, kernel_size)
        centre = kernel_size // 2
        gamma[:, :, centre, centre] = 0.1 * torch.eye(channels)
        self.gamma_stored = nn.Parameter(_to_stored(gamma))
        self.beta_stored = nn.Parameter(_to_stored(torch.ones(channels)))
        self.alpha = nn.Parameter(torch.full((channels,), 2.0), requires_grad=trainable_exponents)
        self.epsilon = nn.Parameter(torch.full((channels,), 0.5), requires_grad=trainable_exponents)

    @classmethod
    def from_options(cls, channels: int, options: dict) -> "GDN":
        return cls(channels, kernel_size=options["kernel"], trainable_exponents=options["trainable_exponents"])

    def extra_repr(self) -> str:
        return f"{self.channels}, kernel_size={self.kernel_size}, trainable_exponents={self.trainable_exponents}"

    @property
    def gamma(self) -> torch.Tensor:
        """Effective gamma (C, C, k, k), always >= 0."""
        return _from_stored(self.gamma_stored, 0.0)

    @property
    def beta(self) -> torch.Tensor:
        """Effective beta (C,), always >= 1e-6."""
        return _from_stored(self.beta_stored, _BETA_MIN)

    @property
    def exponents(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Effective (alpha, epsilon), each (C,) and >= 1e-3 whatever training did to them."""
        return (
            _LowerBound.apply(self.alpha, _EXPONENT_MIN),
            _LowerBound.apply(self.epsilon, _EXPONENT_MIN),
        )

    @torch.no_grad()
    def set_gamma(self, gamma: torch.Tensor) -> None:
        """Set the effective gamma; a (C, C) matrix is accepted for kernel_size 1."""
        gamma = torch.as_tensor(gamma, dtype=self.gamma_stored.dtype, device=self.gamma_stored.device)
        self.gamma_stored.copy_(_to_stored(gamma.reshape(self.gamma_stored.shape)))

    @torch.no_grad()
    def set_beta(self, beta: torch.Tensor) -> None:
        beta = torch.as_tensor(beta, dtype=self.beta_stored.dtype, device=self.beta_stored.device)
        self.beta_stored.copy_(_to_stored(beta.reshape(self.beta_stored.shape).clamp(min=_BETA_MIN)))

    def forward(self, x: torch.Tensor):
        if x.dim() != 4:
            raise ValueError(f"GDN expects 4-D input, got {x.dim()}-D")
        with torch.autocast(device_type=x.device.type, enabled=False):
            z = x.float()
            alpha, epsilon = (e.float().view(1, -1, 1, 1) for e in self.exponents)
            # |z|^alpha in the log domain: no log(0), no 0 * inf, no overflow
            log_abs = torch.log(torch.clamp(z.abs(), min=_ABS_MIN))
            powered = torch.exp(torch.clamp(alpha * log_abs, max=_LOG_POW_MAX))
            pad = self.kernel_size // 2
            if pad > 0:
                powered = F.pad(powered, (pad, pad, pad, pad), mode="reflect")
            pooled = F.conv2d(powered, self.gamma.float(), self.beta.float())
            # pooled >= beta >= 1e-6, so its log is finite
            denominator = torch.exp(epsilon * torch.log(pooled))
            y = z / denominator
        return y.to(x.dtype), [("denominator", denominator.mean(dim=(2, 3)))]
