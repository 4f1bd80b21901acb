"""The thesis' reference numbers, shown beside measured ones by `compare --reference thesis`."""

from __future__ import annotations

# The data set the thesis trained on (CIFAR-100); numbers on other data are not comparable.
DATA = "cifar100"
THESIS_METRICS = ("loss", "precision", "recall", "auc", "accuracy")

# The thesis' test-set numbers (docs/thesis.md, held equal to these by a test): loss, precision,
# recall, AUC, accuracy; one run each.
THESIS = {
    "vgg16": {
        "none": (2.974, 0.544, 0.331, 0.878, 0.394),
        "bn": (3.275, 0.532, 0.464, 0.859, 0.483),
        "bn_v2": (53879.512, 0.475, 0.475, 0.735, 0.475),
        "gdn": (2.923, 0.613, 0.204, 0.886, 0.335),
        "gdn_v2": (2.324, 0.737, 0.218, 0.935, 0.398),
        "in": (3.948, 0.483, 0.410, 0.825, 0.429),
        "in_v2": (2.383, 0.633, 0.306, 0.916, 0.413),
    },
    "perceptnet": {
        "none": (3.430, 0.598, 0.032, 0.855, 0.193),
        "bn": (3.519, 0.566, 0.026, 0.842, 0.181),
        "bn_v2": (3.641, 0.561, 0.028, 0.825, 0.162),
        "gdn": (3.133, 0.644, 0.073, 0.878, 0.242),
        "gdn_v2": (2.904, 0.679, 0.090, 0.900, 0.285),
        "in": (4.606, 0.0, 0.0, 0.500, 0.010),
        "in_v2": (3.102, 0.621, 0.089, 0.881, 0.265),
    },
}


def reference(family: str, variant: str) -> dict | None:
    """The thesis' numbers for one variant of one family, metric -> value; None if it has none."""
    values = THESIS.get(family, {}).get(variant)
    return dict(zip(THESIS_METRICS, values)) if values else None


def comparable(rows: list[dict]) -> bool:
    """Whether every run is on the thesis' data set."""
    return all(str(r.get("data", "")).startswith(DATA) for r in rows)


def thesis_difference(family: str, norm: str, metric: str) -> float | None:
    """The thesis' v2 − plain for one normalization and metric (one run each); None if it has none."""
    plain, v2 = reference(family, norm), reference(family, f"{norm}_v2")
    if not plain or not v2 or metric not in plain:
        return None
    return v2[metric] - plain[metric]
