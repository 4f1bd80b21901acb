"""How the comparison's tables write names and numbers (shared by Markdown and LaTeX)."""

from __future__ import annotations

import numpy as np

from normscope import norms

LABELS = {
    "loss": "loss",
    "precision": "precision@0.5",  # Keras' thresholded metrics: (image, class) pairs with p > 0.5
    "recall": "recall@0.5",
    "auc": "AUC",
    "accuracy": "accuracy",
    "top5_accuracy": "top-5",
    "macro_f1": "macro F1",
    "params": "params",
    "stats_share": "reliance on stats",
}
TABLE_COLUMNS = ("loss", "precision", "recall", "auc", "accuracy", "top5_accuracy", "params", "stats_share")


def variant_label(variant: str) -> str:
    """A variant key -> what a legend calls it: 'bn_v2' -> 'BatchNorm + reuse', 'none' -> 'no norm'."""
    norm, reuse = norms.parse_variant(variant)
    return "no norm" if norm == "none" else norms.NORMS[norm].display + (" + reuse" if reuse else "")


def variant_colour(variant: str) -> str:
    """A variant key -> its colour in every chart: the norm's diagram colour (the norms table),
    dark for reuse and light (mixed halfway with white) for plain; grey without a norm."""
    norm, reuse = norms.parse_variant(variant)
    if norm == "none":
        return "#808080"
    rgb = norms.NORMS[norm].style.rgb
    if reuse:
        rgb = tuple(round(0.8 * v) for v in rgb)
    else:
        rgb = tuple(round(v + 0.55 * (255 - v)) for v in rgb)
    return "#" + "".join(f"{v:02x}" for v in rgb)


def model_name(family: str, variant: str) -> str:
    """A family and a variant key -> the model's name (as `normscope.norms.variant_name` writes it);
    a family with a factor cell (``vgg16 [momentum=0.9]``) -> ``vgg16_bn_v2 [momentum=0.9]``."""
    base, bracket, cell = family.partition(" [")
    return norms.variant_name(base, *norms.parse_variant(variant)) + (f" [{cell}" if bracket else "")


def fmt(mean, std, key, pm: str = " ± ", missing: str = "—") -> str:
    """mean ± std as the tables write it: params as an integer, 3 decimals otherwise (1 for a huge loss)."""
    if mean is None:
        return missing
    if key == "params":
        return f"{mean:,.0f}"
    digits = 3 if key != "loss" or abs(mean) < 1000 else 1
    return f"{mean:.{digits}f}" + (f"{pm}{std:.{digits}f}" if std is not None else "")


def fmt_p(p, missing: str = "—") -> str:
    """A p-value: 3 decimals, or 2 significant digits below 0.001."""
    if p is None:
        return missing
    if p == 0:
        return "0"  # every difference equal and not 0 (see normscope.study.stats)
    return f"{p:.3f}" if p >= 0.001 else f"{p:.1e}"


def fmt_signed(v, digits: int = 4, missing: str = "—") -> str:
    return missing if v is None else f"{v:+.{digits}f}"


def fmt_unsigned(v, digits: int = 3) -> str:
    """A number that rounds to 0 prints as 0.000, never -0.000."""
    text = f"{v:.{digits}f}"
    return text.lstrip("-") if float(text) == 0 else text


def fmt_interval(low, high, digits: int = 4, signed: bool = True, missing: str = "—") -> str:
    if low is None:
        return missing
    if not signed:
        return f"[{fmt_unsigned(low, digits)}, {fmt_unsigned(high, digits)}]"
    return f"[{low:+.{digits}f}, {high:+.{digits}f}]"


def side(values) -> tuple[float | None, float | None]:
    """Mean and sample std of one side's paired values."""
    x = np.asarray(values, dtype=float)
    return (float(x.mean()) if len(x) else None), (float(x.std(ddof=1)) if len(x) > 1 else None)
