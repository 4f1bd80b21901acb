"""Attribution: how much does the classifier rely on the reused statistics?

The classifier of a normscope model is one linear layer whose input ``z`` is the
flattened features followed by every tapped norm layer's statistics
(``model.classifier_input`` says which slice is which). :func:`attribute` measures, per
group of ``z``, per norm layer and for "features" versus "all statistics" together:

``ig``           Integrated Gradients (Captum ``LayerIntegratedGradients`` on
                 ``model.classifier`` with ``attribute_to_layer_input=True``) of the
                 target logit with respect to ``z``, from a baseline ``z0``; the share
                 of total |attribution| per group, and per dimension.      (ig.py)
``logit``        The exact decomposition of the target logit: the classifier is linear,
                 so ``logit_t(z) - logit_t(z0) = sum_g w_t[g] . (z[g] - z0[g])``; the
                 share of |group contribution| and its mean signed value.  (logit.py)
``permutation``  The drop in accuracy and rise in cross-entropy loss when a group is
                 shuffled across images (one permutation for all its dimensions).
                                                                           (permutation.py)
``ablation``     The same when a group is replaced by its training mean.   (ablation.py)

Everything after the classifier input is the linear classifier, so the trunk (the
convolutional part) runs once per image (inputs.py); all measures are then computed on
``z`` (problem.py). units.py: the groups, norm layers and totals measured; attribute.py:
:func:`attribute`; report.py: the table, the JSON, the CSV and the chart; run.py:
:func:`attribute_run` on a run directory. See docs/analysis.md for how to read the
numbers and their limits.
"""

from normscope.analysis.attribute import attribute
from normscope.analysis.common import (
    ATTRIBUTION_CSV,
    ATTRIBUTION_JSON,
    ATTRIBUTION_PNG,
    BASELINES,
    MEASURES,
    METHODS,
    SPLITS,
    TARGETS,
    AttributionError,
    parse_methods,
)
from normscope.analysis.inputs import classifier_inputs, run_inputs
from normscope.analysis.report import (
    features_only_message,
    plot_attribution,
    render_table,
    report,
    write_attribution,
    write_per_class_csv,
)
from normscope.analysis.run import attribute_run
from normscope.analysis.units import Unit, build_units

__all__ = [
    "METHODS",
    "BASELINES",
    "TARGETS",
    "SPLITS",
    "MEASURES",
    "AttributionError",
    "Unit",
    "attribute",
    "attribute_run",
    "run_inputs",
    "report",
    "build_units",
    "classifier_inputs",
    "parse_methods",
    "render_table",
    "plot_attribution",
    "write_attribution",
    "write_per_class_csv",
    "features_only_message",
    "ATTRIBUTION_JSON",
    "ATTRIBUTION_PNG",
    "ATTRIBUTION_CSV",
]
