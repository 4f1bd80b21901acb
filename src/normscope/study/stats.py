"""The statistics of a comparison, paired by seed (scipy.stats; pandas for the grouping).

A claim is (family, normalization, metric): does reusing the normalization's statistics
(`<norm>_v2`) change the metric against the same model without reuse (`<norm>`)? Seed s
of both variants starts from the same weights in every shared layer and sees the images
in the same order (`normscope.model.init`), so each seed gives one paired difference
d_s = v2_s − plain_s. Per claim:

- `difference`: the mean of d; `ci_low`, `ci_high`: its 95% t interval (n − 1 degrees of
  freedom);
- `p_value`: the paired t-test (scipy.stats.ttest_rel), two-sided;
- `p_wilcoxon`: the Wilcoxon signed-rank test (scipy.stats.wilcoxon, exact for small n),
  from WILCOXON_MIN_PAIRS pairs on (with 5 pairs its smallest possible p is 0.0625);
- `effect_size`: Cohen's d_z = mean(d) / sd(d);
- `p_holm`: the t-test p-values adjusted by Holm's step-down over all claims of one metric
  in the comparison (the family of tests a reader scans at once);
- `verdict`: "too few paired seeds" under MIN_PAIRS pairs; else "reuse helps" or "reuse
  hurts" when p_holm < ALPHA (by the sign of the difference; for the loss lower is
  better), else "no evidence of a difference".

Seeds that only one side has are left out of the pairs and listed (`unpaired`). When all
differences are exactly equal the t statistic is 0/0 or infinite and no test applies: p,
the Wilcoxon p and d_z are left out and the verdict says what the seeds do show,
"identical in every seed" (all differences 0) or "constant difference, test undefined"
(the same non-zero difference in every seed: seen in these seeds, but with no spread there
is no estimate of how it varies with the seed, so no p-value and no claim). Such a claim
takes no part in Holm's adjustment.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
from scipy import stats

from normscope import norms

ALPHA = 0.05
CONFIDENCE = 0.95
MIN_PAIRS = 3
WILCOXON_MIN_PAIRS = 5
CLAIM_METRICS = ("auc", "accuracy")
LOWER_IS_BETTER = frozenset({"loss"})
HELPS, HURTS, NO_EVIDENCE, TOO_FEW = "reuse helps", "reuse hurts", "no evidence of a difference", "too few paired seeds"
IDENTICAL, CONSTANT = "identical in every seed", "constant difference, test undefined"
VERDICTS = (HELPS, HURTS, NO_EVIDENCE, TOO_FEW, IDENTICAL, CONSTANT)

__all__ = [
    "ALPHA",
    "CLAIM_METRICS",
    "MIN_PAIRS",
    "VERDICTS",
    "WILCOXON_MIN_PAIRS",
    "claims",
    "holm",
    "mean_interval",
    "paired_test",
    "stats_share",
    "verdict",
]


def _float(v) -> float | None:
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)


def mean_interval(values, confidence: float = CONFIDENCE) -> tuple[float | None, float | None, float | None]:
    """(mean, low, high): the mean and its t confidence interval; no interval under 2 values,
    a point when they are all equal."""
    x = np.asarray([v for v in values if _float(v) is not None], dtype=float)
    if len(x) == 0:
        return None, None, None
    mean = float(x.mean())
    if len(x) < 2:
        return mean, None, None
    sem = float(stats.sem(x))
    if sem == 0:
        return mean, mean, mean
    low, high = stats.t.interval(confidence, len(x) - 1, loc=mean, scale=sem)
    return mean, float(low), float(high)


def holm(p_values) -> list[float | None]:
    """Holm's step-down adjustment: sort the m p-values ascending, multiply the i-th smallest
    (i from 0) by m − i, carry the running maximum, cap at 1. None stays None (not counted)."""
    present = [(p, i) for i, p in enumerate(p_values) if p is not None]
    m = len(present)
    adjusted: list[float | None] = [None] * len(p_values)
    running = 0.0
    for rank, (p, i) in enumerate(sorted(present)):
        running = max(running, min(1.0, (m - rank) * p))
        adjusted[i] = running
    return adjusted


def _constant(d: np.ndarray) -> bool:
    return len(d) > 0 and bool(np.all(d == d[0]))


def _t_test(plain: np.ndarray, v2: np.ndarray, d: np.ndarray) -> float | None:
    """The paired t-test's p; None where every difference is the same (no test applies)."""
    if _constant(d):
        return None
    return float(stats.ttest_rel(v2, plain).pvalue)


def _wilcoxon(d: np.ndarray) -> float:
    """The signed-rank test's p; scipy's note that zeros or ties make it leave the exact
    distribution for the normal approximation is not printed (the p says which it is)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return float(stats.wilcoxon(d).pvalue)


def paired_test(plain: dict, v2: dict) -> dict:
    """The paired statistics of one claim from {seed: value} of each side (module docstring);
    `p_holm` and `verdict` are filled in by `claims`."""
    seeds = sorted(set(plain) & set(v2))
    a = np.array([plain[s] for s in seeds], dtype=float)
    b = np.array([v2[s] for s in seeds], dtype=float)
    d = b - a
    n = len(seeds)
    mean, low, high = mean_interval(d)
    sd = float(d.std(ddof=1)) if n > 1 else None
    return {
        "n_pairs": n,
        "difference": mean,
        "ci_low": low,
        "ci_high": high,
        "p_value": _t_test(a, b, d) if n >= MIN_PAIRS else None,
        "p_wilcoxon": _wilcoxon(d) if n >= WILCOXON_MIN_PAIRS and not _constant(d) else None,
        "effect_size": mean / sd if sd else None,
        "seeds": seeds,
        "plain": a.tolist(),
        "v2": b.tolist(),
        "differences": d.tolist(),
        "unpaired": {"plain": sorted(set(plain) - set(v2)), "v2": sorted(set(v2) - set(plain))},
    }


def verdict(claim: dict, alpha: float = ALPHA) -> str:
    if claim["n_pairs"] < MIN_PAIRS:
        return TOO_FEW
    if _constant(np.asarray(claim["differences"])):
        return IDENTICAL if claim["differences"][0] == 0 else CONSTANT
    if claim["p_holm"] is None or claim["p_holm"] >= alpha:
        return NO_EVIDENCE
    better = claim["difference"] < 0 if claim["metric"] in LOWER_IS_BETTER else claim["difference"] > 0
    return HELPS if better else HURTS


def _by_seed(frame: pd.DataFrame, metric: str) -> dict:
    """{seed: value} of one variant's runs (`collect` guarantees one run per seed)."""
    values = frame[["seed", metric]].dropna()
    return {int(s): float(v) for s, v in zip(values["seed"], values[metric])}


def claims(rows: list[dict], metrics=CLAIM_METRICS, alpha: float = ALPHA, extra=()) -> list[dict]:
    """The reuse claims (``contrast: reuse``): one per (family, normalization present with both
    sides, metric), families in the order of the rows, normalizations in the norms table's;
    then ``extra`` claims (a factor study's contrasts between levels). Holm's adjustment runs
    over the whole family of claims the comparison makes (every contrast and metric), then
    the verdicts."""
    df = pd.DataFrame(rows)
    out = []
    for family, runs in df.groupby("family", sort=False):
        present = {norms.parse_variant(v)[0] for v in runs["variant"]}
        for norm in (n for n in norms.NORMS if n in present):
            plain = runs[runs["variant"] == norms.variant_key(norm, False)]
            v2 = runs[runs["variant"] == norms.variant_key(norm, True)]
            if plain.empty or v2.empty:
                continue
            for metric in metrics:
                test = paired_test(_by_seed(plain, metric), _by_seed(v2, metric))
                out.append({"contrast": "reuse", "family": family, "norm": norm, "metric": metric, **test})
    out += list(extra)
    for c, p in zip(out, holm([c["p_value"] for c in out])):
        c["p_holm"] = p
    for c in out:
        c["verdict"] = verdict(c, alpha) if c["contrast"] == "reuse" else level_verdict(c, alpha)
    return out


def level_verdict(claim: dict, alpha: float = ALPHA) -> str:
    """A contrast between two levels of a factor: which level is better, where Holm's p says so."""
    base = verdict(claim, alpha)
    if base in (TOO_FEW, NO_EVIDENCE):
        return base
    return f"{claim['to']} better" if base == HELPS else f"{claim['from']} better"


def _layer_shares(attribution_layers) -> dict:
    return {r["name"]: r.get("ig_share") for r in attribution_layers or [] if r.get("ig_share") is not None}


def stats_share(rows: list[dict]) -> list[dict]:
    """Per reuse variant with attributions: the reliance on the reused statistics over seeds,
    `stats_share` (share of |IG| on all statistics) with its mean and 95% t interval, the
    accuracy drop when all statistics are permuted across images (mean and interval), and
    the tapped layer with the largest mean IG share."""
    df = pd.DataFrame(rows)
    out = []
    for (family, variant), runs in df.groupby(["family", "variant"], sort=False):
        if not norms.parse_variant(variant)[1] or runs["stats_share"].isna().all():
            continue
        runs = runs.sort_values("seed")
        mean, low, high = mean_interval(runs["stats_share"])
        drop = mean_interval(runs["stats_permutation_drop"]) if "stats_permutation_drop" in runs else (None,) * 3
        layers = pd.DataFrame([_layer_shares(v) for v in runs.get("layer_ig_shares", [])]).mean()
        layers = layers[layers > 0]  # a layer with no share at all is nobody's largest
        out.append(
            {
                "family": family,
                "variant": variant,
                "n": int(runs["stats_share"].notna().sum()),
                "mean": mean,
                "ci_low": low,
                "ci_high": high,
                "seeds": [int(s) for s in runs["seed"]],
                "values": [_float(v) for v in runs["stats_share"]],
                "permutation_accuracy_drop": dict(zip(("mean", "ci_low", "ci_high"), drop)),
                "largest_layer": str(layers.idxmax()) if len(layers.dropna()) else None,
                "largest_layer_share": _float(layers.max()) if len(layers.dropna()) else None,
            }
        )
    return out
