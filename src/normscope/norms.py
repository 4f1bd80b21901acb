"""The one table of normalizations.

Every other module reads this table: the language (which `norm:` values and options
exist), the graph (shape rules, parameter counts, the statistics a norm layer exposes and
their sizes), the torch build (the layer class), summaries, diagrams (names, colours,
symbols), attribution and studies (the variant names). Adding a normalization is one
entry here plus one layer file under `normscope/model/layers/`.

Variant names: `none`, and for each normalization `<short>` (the normalization alone)
and `<short>_v2` (with reuse of its statistics). `variant_key` and `parse_variant` are
the rule in both directions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from normscope.keys import Arg, odd_positive, positive, unit_rate


@dataclass(frozen=True)
class Statistic:
    """One statistic a norm layer exposes per image: its name and how it is written."""

    name: str  # suffix of the classifier group: "in1.mean"
    what: str  # "channel means"
    tex: str  # symbol in LaTeX math mode
    text: str  # symbol in plain text (graphviz, terminal)


MEAN = Statistic("mean", "channel means", r"\mu", "μ")
VAR = Statistic("var", "channel variances", r"\sigma^2", "σ²")
DENOMINATOR = Statistic("denominator", "mean denominator", "D", "D")
GROUP_MEAN = Statistic("mean", "group means", r"\mu_g", "μg")
GROUP_VAR = Statistic("var", "group variances", r"\sigma_g^2", "σg²")


@dataclass(frozen=True)
class Style:
    """How diagrams draw the layer: fill colour (RGB) and graphviz node shape."""

    rgb: tuple[int, int, int]
    shape: str = "hexagon"

    @property
    def hex(self) -> str:
        return "#" + "".join(f"{v:02x}" for v in self.rgb)


def _no_shape_problem(shape: tuple, options: dict) -> str | None:
    return None


def _never(channels: int, options: dict) -> bool:
    return False


def _fine_on_one_pixel(shape: tuple, options: dict, reused: bool) -> str | None:
    return None


@dataclass(frozen=True)
class Norm:
    short: str  # "bn": the `norm:` value and the variant prefix
    long: str  # "batchnorm": the kind of a fixed layer in a description
    display: str  # "BatchNorm"
    layer: str  # "module:Class" in normscope.model.layers (torch; imported on build)
    stats: tuple[Statistic, ...]  # reused statistics, in their order in the classifier input
    defaults: dict  # option -> default value (options not listed do not apply)
    params: Callable[[int, dict], tuple[int, int]]  # (trainable, non-trainable), Keras convention
    style: Style
    per_image: bool  # statistics differ from image to image (BatchNorm's do not)
    image_only: bool = True  # needs a (C, H, W) input
    in_study: bool = False  # one of the thesis' seven default variants
    stat_size: Callable[[int, dict], int] = lambda channels, options: channels
    shape_problem: Callable[[tuple, dict], str | None] = _no_shape_problem
    # each output channel's spatial mean is the same for every image (InstanceNorm: β)
    fixed_channel_mean: Callable[[int, dict], bool] = _never
    # what the layer computes (or reuses, when `reused`) on one value per channel (1×1 maps), where degenerate
    one_pixel: Callable[[tuple, dict, bool], str | None] = _fine_on_one_pixel
    doc: str = ""

    def options(self, given: dict | None = None) -> dict:
        """This normalization's options: the defaults, overridden by `given` (None = unset)."""
        given = given or {}
        return {k: (given[k] if given.get(k) is not None else v) for k, v in self.defaults.items()}

    def stats_per_image(self, given: dict | None = None) -> bool:
        """The reused statistics differ from image to image under these options: `per_image`,
        unless the normalization takes `reuse_stats` (BatchNorm), which then decides."""
        reuse_stats = self.options(given).get("reuse_stats")
        return self.per_image if reuse_stats is None else reuse_stats == "image"

    @property
    def variants(self) -> tuple[str, str]:
        return (self.short, f"{self.short}_v2")


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


GDN_DEFAULT_KERNEL = 3
REUSE_STATS = ("batch", "image")  # BatchNorm's `reuse_stats` option

# Every option any normalization takes; a `norm` slot accepts all of them (its kind
# changes with the variant) and each normalization reads those in its `defaults`.
OPTIONS: dict[str, Arg] = {
    "kernel": Arg((int,), None, check=odd_positive, help="GDN kernel size (gdn only)"),
    "trainable_exponents": Arg((bool,), None, help="GDN: train alpha and epsilon (gdn only)"),
    "eps": Arg((float,), None, check=positive, help="bn/in/gn: epsilon added to the variance (default 1e-3, Keras)"),
    "momentum": Arg(
        (float,),
        None,
        check=unit_rate,
        help="bn: running-average momentum, Keras convention (default 0.99: running = 0.99·running + 0.01·batch)",
    ),
    "groups": Arg(
        (int,),
        None,
        check=positive,
        help="gn: number of groups; must divide the channels (default: the largest "
        "divisor of the channel count up to 32)",
    ),
    "reuse_stats": Arg(
        (str,),
        None,
        choices=REUSE_STATS,
        help="bn: the statistics reuse gives the classifier: batch (default, the thesis: the batch's in "
        "training, the running ones in evaluation) or image (each image's channel means and variances "
        "of the BatchNorm input)",
    ),
}


# --- the table --------------------------------------------------------------------------

NORMS: dict[str, Norm] = {
    n.short: n
    for n in (
        Norm(
            "bn",
            "batchnorm",
            "BatchNorm",
            "batchnorm:BatchNorm",
            (MEAN, VAR),
            defaults={"eps": 1e-3, "momentum": 0.99, "reuse_stats": "batch"},
            params=lambda c, o: (2 * c, 2 * c),  # gamma, beta; running mean, variance
            style=Style((0, 114, 178)),
            per_image=False,  # reuse_stats: batch; `stats_per_image` follows the option
            image_only=False,
            in_study=True,
            one_pixel=_bn_one_pixel,
            doc="batch statistics in training, running statistics in evaluation",
        ),
        Norm(
            "in",
            "instancenorm",
            "InstanceNorm",
            "instancenorm:InstanceNorm",
            (MEAN, VAR),
            defaults={"eps": 1e-3},
            params=lambda c, o: (2 * c, 0),
            style=Style((17, 119, 51)),
            per_image=True,
            in_study=True,
            fixed_channel_mean=lambda c, o: True,  # the mean over H, W of each output channel is β
            one_pixel=_in_one_pixel,
            doc="each image's channel means and variances over H, W",
        ),
        Norm(
            "gdn",
            "gdn",
            "GDN",
            "gdn:GDN",
            (DENOMINATOR,),
            defaults={"kernel": GDN_DEFAULT_KERNEL, "trainable_exponents": False},
            params=_gdn_params,
            style=Style((136, 34, 85), shape="octagon"),
            per_image=True,
            in_study=True,
            shape_problem=_gdn_shape_problem,
            doc="the denominator averaged over H, W, one value per channel",
        ),
        Norm(
            "gn",
            "groupnorm",
            "GroupNorm",
            "groupnorm:GroupNorm",
            (GROUP_MEAN, GROUP_VAR),
            defaults={"eps": 1e-3, "groups": None},
            params=lambda c, o: (2 * c, 0),
            style=Style((238, 119, 51)),
            per_image=True,
            stat_size=_groups,
            shape_problem=_gn_shape_problem,
            fixed_channel_mean=_gn_fixed_mean,
            one_pixel=_gn_one_pixel,
            doc="each image's per-group means and variances over channels of the group, H, W",
        ),
    )
}


BY_KIND: dict[str, Norm] = {n.long: n for n in NORMS.values()}
NORM_CHOICES: tuple[str, ...] = ("none", *NORMS)


def norm_of_kind(kind: str) -> Norm | None:
    """The normalization a fixed layer kind is (`batchnorm` -> BatchNorm), else None."""
    return BY_KIND.get(kind)


# --- variant names, both directions ------------------------------------------------------


def variant_key(norm: str, reuse: bool) -> str:
    """('bn', True) -> 'bn_v2'; reuse without a normalization is just 'none'."""
    return norm + ("_v2" if reuse and norm != "none" else "")


def parse_variant(key: str) -> tuple[str, bool]:
    """'bn_v2' -> ('bn', True); 'none' -> ('none', False). ValueError for an unknown key."""
    if key not in ALL_VARIANTS:
        raise ValueError(f"unknown variant '{key}' (choose from {', '.join(ALL_VARIANTS)})")
    norm, _, v2 = key.partition("_")
    return norm, bool(v2)


def variant_name(family: str, norm: str, reuse: bool) -> str:
    key = variant_key(norm, reuse)
    return family if key == "none" else f"{family}_{key}"


ALL_VARIANTS: tuple[str, ...] = ("none", *(v for n in NORMS.values() for v in n.variants))
# the thesis' seven: a study runs these unless told otherwise
VARIANTS: tuple[str, ...] = ("none", *(v for n in NORMS.values() if n.in_study for v in n.variants))
STUDY_NORMS: tuple[str, ...] = tuple(n.short for n in NORMS.values() if n.in_study)
