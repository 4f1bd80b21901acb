"""Integrated Gradients (Captum ``LayerIntegratedGradients`` on ``model.classifier`` with
``attribute_to_layer_input=True``) of the target logit with respect to the classifier
input ``z``, from the baseline ``z0``: the share of total |attribution| per unit, and per
dimension. The classifier is linear, so IG equals the exact decomposition w_t . (z - z0);
the checks record the difference."""

from __future__ import annotations

import torch

from normscope.analysis.problem import Problem, Tally


def integrated_gradients(classifier, z, z0, targets, n_steps, batch_size):
    """Captum LayerIntegratedGradients of the target logit w.r.t. the classifier input,
    from baseline z0, batched; returns (N x D attributions, max |convergence delta|)."""
    from captum.attr import LayerIntegratedGradients  # heavy optional dependency: only IG needs it

    dev = classifier.weight.device
    lig = LayerIntegratedGradients(classifier, classifier)
    parts, delta = [], 0.0
    for i in range(0, len(z), batch_size):
        zb = z[i : i + batch_size].to(dev)
        attr, d = lig.attribute(
            zb,
            baselines=z0.to(dev).expand_as(zb),
            target=targets[i : i + batch_size].to(dev),
            n_steps=n_steps,
            internal_batch_size=len(zb) * n_steps,
            attribute_to_layer_input=True,
            return_convergence_delta=True,
        )
        if isinstance(attr, (tuple, list)):
            attr = attr[0]
        parts.append(attr.detach().float().cpu())
        delta = max(delta, float(d.detach().abs().max()))
    return torch.cat(parts), delta


def measure(p: Problem, tally: Tally) -> None:
    """ig_share, ig_share_per_dim, ig_dim_ratio of every unit (and ig_share per class)."""
    attr, delta = integrated_gradients(p.classifier, p.z, p.z0, p.targets, p.settings.n_steps, p.settings.batch_size)
    tally.checks["ig_convergence_delta_max"] = delta
    tally.checks["ig_minus_exact_max"] = float((attr - p.contrib).abs().max())
    mag = attr.abs()
    total = float(mag.sum())
    for u in p.units:
        r = tally.row(u)
        share = float(mag[:, u.index].sum()) / total if total > 0 else 0.0
        r["ig_share"] = share
        r["ig_share_per_dim"] = share / u.size
        r["ig_dim_ratio"] = share * p.d / u.size
        if p.by_class is not None:
            c = p.by_class
            tally.of_class(u)["ig_share"] = c.ratio(c.sum(mag[:, u.index].sum(1)), c.sum(mag.sum(1)))
