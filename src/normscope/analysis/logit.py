"""The exact decomposition of the target logit. The classifier is linear, so
``logit_t(z) - logit_t(z0) = sum_g w_t[g] . (z[g] - z0[g])``: per unit the share of
|contribution| (within its partition: groups, features + norm layers, features +
statistics), its mean signed value and the mean of the baseline's own part w_t[g] . z0[g]."""

from __future__ import annotations

from normscope.analysis.problem import Problem, Tally


def completeness_error(p: Problem) -> float:
    """The largest |sum of the per-dimension contributions - (logit_t(z) - logit_t(z0))|."""
    pre0 = p.z0 @ p.w.T + p.b
    gap = p.pre.gather(1, p.targets[:, None])[:, 0] - pre0[p.targets]
    return float((p.contrib.sum(1) - gap).abs().max())


def measure(p: Problem, tally: Tally) -> None:
    """logit_share, logit_contribution, logit_offset of every unit (and logit_share per class)."""
    sums = {u.key: p.contrib[:, u.index].sum(1) for u in p.units}
    # shares over a partition: groups over groups, layers and totals over totals
    # (features + per-layer for the layer level)
    partitions = {"group": p.groups, "layer": p.totals[:1] + p.layers, "total": p.totals}
    c = p.by_class
    for level, units in partitions.items():
        denom = sum(float(sums[u.key].abs().sum()) for u in units)
        denom_c = sum(c.sum(sums[u.key].abs()) for u in units) if c is not None else None
        for u in units:
            if u.level != level:
                continue  # the features' total-level share is the one reported
            tally.row(u)["logit_share"] = float(sums[u.key].abs().sum()) / denom if denom > 0 else 0.0
            if c is not None:
                tally.of_class(u)["logit_share"] = c.ratio(c.sum(sums[u.key].abs()), denom_c)
    for u in p.units:
        tally.row(u)["logit_contribution"] = float(sums[u.key].mean())
        tally.row(u)["logit_offset"] = float(p.offset[:, u.index].sum(1).mean())
