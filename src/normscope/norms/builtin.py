"""The built-in normalizations: BatchNorm, InstanceNorm, GDN and GroupNorm (the thesis'),
LayerNorm and AlexNet's local response normalization, each one `NormSpec` registered
through the same door a plugin uses (`register_norm`, docs/plugins.md).

FLOPs per image (docs/dsl.md, "FLOPs"), one FLOP per arithmetic operation on a value,
in evaluation mode, with n = C·H·W values of the input (C for a flat one) and C channels:

- BatchNorm: (x − μ)·s + β, 3 per value, and s = γ/√(σ² + ε), 3 per channel: 3n + 3C;
  reused with `reuse_stats: image`: + 4n for each image's means and variances.
- InstanceNorm: its statistics, 4 per value (sum; subtract the mean, square, sum), then the
  same normalization: 7n + 3C.
- GroupNorm with G groups: 4n for the statistics, 3n to normalize, 2G for √(σ² + ε) per
  group and C for γ per channel: 7n + 2G + C. LayerNorm is GroupNorm with one group.
- GDN with a k×k kernel on C×H×W: the convolution 2·H·W·C²·k², then |z|, ^α, + β, ^ε and
  z / D, 5 per value: 2·H·W·C²·k² + 5n; reused: + n for the denominator's mean over H, W.
- LRN over `size` channels: x², the window's sum (size − 1 additions, the zero padding at
  the channel ends included), ·α, + k, ^β and x / D: (size + 4)·n; reused: + n for the
  denominator's mean over H, W.
"""

from __future__ import annotations

import math

from normscope.keys import odd_positive
from normscope.norms.records import NormSpec, Option, Statistic, Style
from normscope.norms.registry import register_norm

MEAN = Statistic("mean", "channel means", r"\mu", "μ")
VAR = Statistic("var", "channel variances", r"\sigma^2", "σ²")
DENOMINATOR = Statistic("denominator", "mean denominator", "D", "D")
LAYERS = "normscope.model.layers"
GDN_DEFAULT_KERNEL = 3

# --- option rules -----------------------------------------------------------------------


def default_groups(channels: int) -> int:
    """GroupNorm's default group count: the largest divisor of `channels` not above 32
    (32 groups as in Wu & He 2018; 3 channels -> 3 groups, 6 -> 6, 128 -> 32)."""
    return max(g for g in range(1, min(channels, 32) + 1) if channels % g == 0)


def _groups(channels: int, options: dict) -> int:
    return options.get("groups") or default_groups(channels)


def _gn_shape_problem(shape: tuple, options: dict) -> str | None:
    groups = options.get("groups")
    if groups and shape[0] % groups:
        return f"groupnorm groups={groups} must divide the {shape[0]} input channels"
    return None


def _pixels(shape: tuple) -> int:
    """Values per channel of one image: H·W, or 1 for a flat (C,) input."""
    return shape[1] * shape[2] if len(shape) == 3 else 1


def _in_one_pixel(shape: tuple, options: dict, reused: bool) -> str | None:
    if _pixels(shape) > 1:
        return None
    return "each channel's variance over a 1×1 map is 0, so every output is its β, whatever the image"


def _gn_fixed_mean(channels: int, options: dict) -> bool:
    return _groups(channels, options) == channels  # one channel per group: InstanceNorm


def _gn_one_pixel(shape: tuple, options: dict, reused: bool) -> str | None:
    if _pixels(shape) > 1 or not _gn_fixed_mean(shape[0], options):
        return None
    return "each group holds one value (one channel of a 1×1 map): its variance is 0 and every output is β"


def _bn_one_pixel(shape: tuple, options: dict, reused: bool) -> str | None:
    if _pixels(shape) > 1 or not reused or options.get("reuse_stats") != "image":
        return None
    return "the per-image statistics it reuses (reuse_stats: image) are the input itself and a variance of 0"


def _gdn_kernel(options: dict) -> int:
    return options.get("kernel") or GDN_DEFAULT_KERNEL


def _gdn_shape_problem(shape: tuple, options: dict) -> str | None:
    k = _gdn_kernel(options)
    if min(shape[1:]) <= k // 2:
        return f"gdn kernel {k}×{k} needs an input larger than {k // 2}×{k // 2} for its reflect padding"
    return None


def _gdn_params(c: int, options: dict) -> tuple[int, int]:
    k = _gdn_kernel(options)
    exponents = 2 * c  # alpha and epsilon
    trainable = k * k * c * c + c  # gamma, beta
    if options.get("trainable_exponents"):
        return trainable + exponents, 0
    return trainable, exponents


REUSE_STATS = ("batch", "image")  # BatchNorm's `reuse_stats` option


def _values(shape: tuple) -> int:
    return math.prod(shape)


def _bn_flops(shape: tuple, options: dict, tapped: bool) -> int:
    n, c = _values(shape), shape[0]
    return 3 * n + 3 * c + (4 * n if tapped and options["reuse_stats"] == "image" else 0)


def _in_flops(shape: tuple, options: dict, tapped: bool) -> int:
    return 7 * _values(shape) + 3 * shape[0]


def _gn_flops(shape: tuple, options: dict, tapped: bool) -> int:
    return 7 * _values(shape) + 2 * _groups(shape[0], options) + shape[0]


def _gdn_flops(shape: tuple, options: dict, tapped: bool) -> int:
    n, (c, h, w) = _values(shape), shape
    k = options["kernel"]
    return 2 * h * w * c * c * k * k + 5 * n + (n if tapped else 0)


def _ln_flops(shape: tuple, options: dict, tapped: bool) -> int:
    return 7 * _values(shape) + 2 + shape[0]


def _lrn_flops(shape: tuple, options: dict, tapped: bool) -> int:
    n = _values(shape)
    return (options["size"] + 4) * n + (n if tapped else 0)


def _one(channels: int, options: dict) -> int:
    return 1


EPS = Option(float, 1e-3, gt=0, help="epsilon added to the variance (default 1e-3, Keras)")

for _norm in (
    NormSpec(
        "bn",
        "batchnorm",
        "BatchNorm",
        f"{LAYERS}.batchnorm:BatchNorm",
        (MEAN, VAR),
        options={
            "eps": EPS,
            "momentum": Option(
                float,
                0.99,
                ge=0,
                lt=1,
                help="running-average momentum, Keras convention (default 0.99: running = 0.99·running + 0.01·batch)",
            ),
            "reuse_stats": Option(
                str,
                "batch",
                choices=REUSE_STATS,
                help="the statistics reuse gives the classifier: batch (default, the thesis: the batch's in "
                "training, the running ones in evaluation) or image (each image's channel means and variances "
                "of the BatchNorm input)",
            ),
        },
        params=lambda c, o: (2 * c, 2 * c),  # gamma, beta; running mean, variance
        flops=_bn_flops,
        style=Style((0, 114, 178)),
        per_image=False,  # reuse_stats: batch; `stats_per_image` follows the option
        image_only=False,
        in_study=True,
        one_pixel=_bn_one_pixel,
        doc="batch statistics in training, running statistics in evaluation",
    ),
    NormSpec(
        "in",
        "instancenorm",
        "InstanceNorm",
        f"{LAYERS}.instancenorm:InstanceNorm",
        (MEAN, VAR),
        options={"eps": EPS},
        params=lambda c, o: (2 * c, 0),
        flops=_in_flops,
        style=Style((17, 119, 51)),
        per_image=True,
        in_study=True,
        fixed_channel_mean=lambda c, o: True,  # the mean over H, W of each output channel is β
        one_pixel=_in_one_pixel,
        doc="each image's channel means and variances over H, W",
    ),
    NormSpec(
        "gdn",
        "gdn",
        "GDN",
        f"{LAYERS}.gdn:GDN",
        (DENOMINATOR,),
        options={
            "kernel": Option(int, GDN_DEFAULT_KERNEL, check=odd_positive, help="kernel size (odd)"),
            "trainable_exponents": Option(bool, False, help="train alpha and epsilon"),
        },
        params=_gdn_params,
        flops=_gdn_flops,
        style=Style((136, 34, 85), shape="octagon"),
        per_image=True,
        in_study=True,
        shape_problem=_gdn_shape_problem,
        doc="the denominator averaged over H, W, one value per channel",
    ),
    NormSpec(
        "gn",
        "groupnorm",
        "GroupNorm",
        f"{LAYERS}.groupnorm:GroupNorm",
        (
            Statistic("mean", "group means", r"\mu_g", "μg", size=_groups),
            Statistic("var", "group variances", r"\sigma_g^2", "σg²", size=_groups),
        ),
        options={
            "eps": EPS,
            "groups": Option(
                int,
                None,
                ge=1,
                help="number of groups; must divide the channels (default: the largest divisor of the channel "
                "count up to 32)",
            ),
        },
        params=lambda c, o: (2 * c, 0),
        flops=_gn_flops,
        style=Style((238, 119, 51)),
        per_image=True,
        shape_problem=_gn_shape_problem,
        fixed_channel_mean=_gn_fixed_mean,
        one_pixel=_gn_one_pixel,
        doc="each image's per-group means and variances over channels of the group, H, W",
    ),
    NormSpec(
        "ln",
        "layernorm",
        "LayerNorm",
        f"{LAYERS}.layernorm:LayerNorm",
        (
            Statistic("mean", "image mean over C, H, W", r"\mu_\ell", "μℓ", size=_one),
            Statistic("var", "image variance over C, H, W", r"\sigma_\ell^2", "σℓ²", size=_one),
        ),
        options={"eps": EPS},
        params=lambda c, o: (2 * c, 0),  # gamma, beta per channel
        flops=_ln_flops,
        style=Style((51, 34, 0)),
        per_image=True,
        image_only=False,
        doc="each image's mean and variance over all its values (C, H, W), one of each",
    ),
    NormSpec(
        "lrn",
        "lrn",
        "LRN",
        f"{LAYERS}.lrn:LocalResponseNorm",
        (DENOMINATOR,),
        options={
            "size": Option(int, 5, ge=1, help="channels summed over, centred on each channel (AlexNet: 5)"),
            "alpha": Option(float, 1e-4, ge=0, help="scale of the sum of squares, not divided by size (AlexNet: 1e-4)"),
            "beta": Option(float, 0.75, ge=0, help="exponent of the denominator (AlexNet: 0.75)"),
            "k": Option(float, 2.0, gt=0, help="constant added to the scaled sum (AlexNet: 2)"),
        },
        params=lambda c, o: (0, 0),
        flops=_lrn_flops,
        style=Style((187, 119, 255), shape="octagon"),
        per_image=True,
        doc="AlexNet's local response normalization; reused: its denominator averaged over H, W",
    ),
):
    register_norm(_norm, verify=False)  # torch-free here; tests verify each one (tests/test_plugins.py)
