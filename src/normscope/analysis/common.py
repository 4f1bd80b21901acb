"""What every part of the attribution shares: the choices, the measure names, the file
names and the error."""

from __future__ import annotations

from typing import Iterable

from normscope.errors import NormscopeError
from normscope.rundir.layout import ATTRIBUTION_JSON as ATTRIBUTION_JSON  # the file name, torch-free

METHODS = ("ig", "logit", "permutation", "ablation")
BASELINES = ("train-mean", "zero")
TARGETS = ("pred", "label")
SPLITS = ("test", "val", "train")


ATTRIBUTION_PNG = "attribution.png"
ATTRIBUTION_CSV = "attribution_per_class.csv"
#: what the default-named files (ATTRIBUTION_JSON, ...) hold: every method, on the test
#: split, the predicted class, from the training-mean baseline (what a study and compare read)
DEFAULT_CHOICES = {"methods": METHODS, "baseline": "train-mean", "target": "pred", "split": "test"}


def attribution_stem(methods: Iterable[str], baseline: str, target: str = "pred", split: str = "test") -> str:
    """The file name (without suffix) of one attribution's outputs: 'attribution' for the
    default choices (DEFAULT_CHOICES), else named by what differs, e.g. 'attribution-ig+logit-zero'
    (methods, baseline), '-label' (target), '-val' (split); so one call does not overwrite another's."""
    chosen = {"methods": tuple(methods), "baseline": baseline, "target": target, "split": split}
    parts = ["attribution"]
    if set(chosen["methods"]) != set(METHODS):
        parts.append("+".join(m for m in METHODS if m in chosen["methods"]))
    parts += [chosen[k] for k in ("baseline", "target", "split") if chosen[k] != DEFAULT_CHOICES[k]]
    return "-".join(parts)


#: the per-unit numbers, in the order of the JSON and the CSV
MEASURES = (
    "ig_share",
    "ig_share_per_dim",
    "ig_dim_ratio",
    "logit_share",
    "logit_contribution",
    "logit_offset",
    "permutation_accuracy_drop",
    "permutation_accuracy_drop_std",
    "permutation_loss_rise",
    "permutation_loss_rise_std",
    "ablation_accuracy_drop",
    "ablation_loss_rise",
)

#: the per-class numbers (attribution_per_class.csv), in their order
CLASS_MEASURES = (
    "ig_share",
    "logit_share",
    "permutation_accuracy_drop",
    "permutation_loss_rise",
    "ablation_accuracy_drop",
    "ablation_loss_rise",
)


class AttributionError(NormscopeError):
    """A bad argument to the attribution analysis."""


def parse_methods(methods: str | Iterable[str] | None) -> tuple[str, ...]:
    """'ig,permutation' or ['ig', ...] or None (= all) -> validated tuple in METHODS order."""
    if methods is None:
        return METHODS
    if isinstance(methods, str):
        methods = [methods]
    wanted = {m.strip().lower() for item in methods for m in item.split(",") if m.strip()}
    if "all" in wanted:
        return METHODS
    unknown = sorted(wanted - set(METHODS))
    if unknown or not wanted:
        raise AttributionError(
            f"unknown method(s) {', '.join(unknown) or '(none given)'}; "
            f"choose from {', '.join(METHODS)} (comma-separated) or all"
        )
    return tuple(m for m in METHODS if m in wanted)


def features_only_message(result: dict) -> str | None:
    if not result.get("features_only"):
        return None
    return (
        "This model does not reuse normalization statistics: its classifier sees the flattened "
        "features only, so all reliance is on the features (stats_share = 0)."
    )
