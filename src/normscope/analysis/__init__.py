"""Attribution: how much does the classifier rely on the reused statistics?

The classifier of a normscope model is one linear layer whose input ``z`` is the
flattened features followed by every tapped norm layer"s statistics
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

The names below load on first use (PEP 562), so importing one of the package's
modules does not import every other one (and torch with them)."""

from __future__ import annotations

import sys
import types

from normscope.lazy import lazy_exports

# name -> (module, attribute); attribute None: the module itself
_EXPORTS = {
    "attribute": ("normscope.analysis.attribute", "attribute"),
    "ATTRIBUTION_CSV": ("normscope.analysis.common", "ATTRIBUTION_CSV"),
    "ATTRIBUTION_JSON": ("normscope.analysis.common", "ATTRIBUTION_JSON"),
    "ATTRIBUTION_PNG": ("normscope.analysis.common", "ATTRIBUTION_PNG"),
    "BASELINES": ("normscope.analysis.common", "BASELINES"),
    "MEASURES": ("normscope.analysis.common", "MEASURES"),
    "METHODS": ("normscope.analysis.common", "METHODS"),
    "SPLITS": ("normscope.analysis.common", "SPLITS"),
    "TARGETS": ("normscope.analysis.common", "TARGETS"),
    "AttributionError": ("normscope.analysis.common", "AttributionError"),
    "parse_methods": ("normscope.analysis.common", "parse_methods"),
    "classifier_inputs": ("normscope.analysis.inputs", "classifier_inputs"),
    "run_inputs": ("normscope.analysis.inputs", "run_inputs"),
    "features_only_message": ("normscope.analysis.report", "features_only_message"),
    "plot_attribution": ("normscope.analysis.report", "plot_attribution"),
    "render_table": ("normscope.analysis.report", "render_table"),
    "report": ("normscope.analysis.report", "report"),
    "write_attribution": ("normscope.analysis.report", "write_attribution"),
    "write_per_class_csv": ("normscope.analysis.report", "write_per_class_csv"),
    "attribute_run": ("normscope.analysis.run", "attribute_run"),
    "Unit": ("normscope.analysis.units", "Unit"),
    "build_units": ("normscope.analysis.units", "build_units"),
}

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


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)


class _Package(types.ModuleType):
    """The package, whose `attribute` and `report` stay the functions once their modules
    (attribute.py, report.py) are imported: the import system would set the package's
    attribute of a submodule's name to the module."""

    def __setattr__(self, name: str, value) -> None:
        if name in ("attribute", "report") and isinstance(value, types.ModuleType):
            return  # the module stays in sys.modules
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
