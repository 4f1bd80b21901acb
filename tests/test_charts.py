"""The figures read right: tested on the figures' data (matplotlib artists), not on pixels."""

from __future__ import annotations

import colorsys

import matplotlib.colors as mcolors
import pytest
from matplotlib.container import BarContainer, ErrorbarContainer

from normscope.analysis.chart import attribution_figure
from normscope.analysis.common import attribution_stem
from normscope.study.charts import THESIS_LABEL, bar_figure
from normscope.study.thesis import reference
from normscope.train.tables import curves_figure

VARIANTS = ("none", "bn", "bn_v2", "in", "in_v2")


def _agg(family, variant, n, acc, precision=0.0):
    std = 0.01 if n > 1 else None
    entry = {"family": family, "variant": variant, "n": n, "seeds": list(range(n))}
    for m, v in (("accuracy", acc), ("auc", 0.9), ("precision", precision), ("recall", 0.0)):
        entry[m], entry[m + "_std"] = v, std
    return entry


@pytest.fixture
def agg():
    out = [_agg("vgg16", v, 3, 0.5 + 0.05 * i) for i, v in enumerate(VARIANTS)]
    return out + [_agg("perceptnet", v, 1 if v == "in" else 3, 0.3 + 0.05 * i) for i, v in enumerate(VARIANTS)]


def _bars(ax):
    return [c for c in ax.containers if isinstance(c, BarContainer)]


def _overlaps(a, b) -> bool:
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


def test_bar_chart_one_colour_per_variant_in_every_panel_light_and_dark_of_one_hue(agg):
    fig = bar_figure(agg)
    colours = {}
    for ax in fig.axes:
        for bars in _bars(ax):
            faces = {mcolors.to_hex(p.get_facecolor()) for p in bars.patches}
            assert len(faces) == 1  # a variant's bars share one colour
            colours.setdefault(bars.get_label(), set()).update(faces)
    assert all(len(c) == 1 for c in colours.values()), colours  # and keep it across panels
    hexes = {label: next(iter(c)) for label, c in colours.items()}
    assert len(set(hexes.values())) == len(VARIANTS)  # variants differ
    for norm in ("BatchNorm", "InstanceNorm"):
        light, dark = (colorsys.rgb_to_hls(*mcolors.to_rgb(hexes[k])) for k in (norm, norm + " + reuse"))
        assert light[0] == pytest.approx(dark[0], abs=0.02)  # one hue
        assert light[1] > dark[1] + 0.2  # plain light, reuse dark


def test_bar_chart_hides_metrics_that_are_zero_everywhere_and_says_so(agg):
    fig = bar_figure(agg)
    for ax in fig.axes:
        assert [t.get_text() for t in ax.get_xticklabels()] == ["accuracy", "AUC"]
        assert all(len(b.patches) == 2 for b in _bars(ax))
    notes = [t.get_text() for t in fig.texts]
    assert any("precision" in t and "recall" in t and "0 for every variant" in t for t in notes), notes
    agg[0]["precision"] = 0.4  # one non-zero value: precision is drawn again, recall stays hidden
    ax = bar_figure(agg).axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["accuracy", "AUC", "precision@0.5"]


def test_bar_chart_heights_are_the_means_and_error_bars_only_with_several_seeds(agg):
    fig = bar_figure(agg)
    vgg, perceptnet = fig.axes
    assert [round(b.patches[0].get_height(), 6) for b in _bars(vgg)] == [0.5, 0.55, 0.6, 0.65, 0.7]
    labelled = {b.get_label(): b for b in _bars(perceptnet)}
    assert labelled["InstanceNorm"].errorbar is None  # n = 1: no "± std" bar of zero width
    assert all(b.errorbar is not None for k, b in labelled.items() if k != "InstanceNorm")
    assert sum(isinstance(c, ErrorbarContainer) for c in perceptnet.containers) == len(VARIANTS) - 1


def test_bar_chart_legend_is_outside_every_panel(agg):
    fig = bar_figure(agg, reference="thesis")
    renderer = fig.canvas.get_renderer()
    (legend,) = fig.legends
    box = legend.get_window_extent(renderer)
    for ax in fig.axes:
        assert not _overlaps(box, ax.get_window_extent(renderer))
    labels = [t.get_text() for t in legend.get_texts()]
    assert labels == ["no norm", "BatchNorm", "BatchNorm + reuse", "InstanceNorm", "InstanceNorm + reuse", THESIS_LABEL]


def test_bar_chart_reference_thesis_marks_the_thesis_values(agg):
    fig = bar_figure(agg, reference="thesis")
    vgg = fig.axes[0]
    points = [c for c in vgg.collections if c.get_label() == THESIS_LABEL]
    assert len(points) == len(VARIANTS)
    got = sorted(round(float(y), 3) for c in points for y in c.get_offsets()[:, 1])
    want = sorted(reference("vgg16", v)[m] for v in VARIANTS for m in ("accuracy", "auc"))
    assert got == want
    assert not any(c.get_label() == THESIS_LABEL for c in bar_figure(agg).axes[0].collections)


def _history(epochs, lr):
    return [
        {
            "epoch": e,
            "train_loss": 1 / e,
            "val_loss": 1.1 / e,
            "train_accuracy": 0.1 * e,
            "val_accuracy": 0.1 * e,
            "lr": lr(e),
        }
        for e in range(1, epochs + 1)
    ]


def test_curves_of_one_epoch_one_tick_and_the_constant_learning_rate_as_a_note():
    fig = curves_figure(_history(1, lambda e: 0.001), title="m on synthetic")
    assert len(fig.axes) == 2  # no empty learning-rate panel
    for ax in fig.axes:
        ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
        assert ticks == [1.0]
    assert "learning rate 0.001 throughout" in fig._suptitle.get_text()


def test_curves_with_a_schedule_whole_epochs_and_a_learning_rate_panel():
    fig = curves_figure(_history(3, lambda e: 0.01 / e))
    assert len(fig.axes) == 3
    assert list(fig.axes[2].lines[0].get_ydata()) == [0.01, 0.005, 0.01 / 3]
    for ax in fig.axes:
        lo, hi = ax.get_xlim()
        ticks = [t for t in ax.get_xticks() if lo <= t <= hi]
        assert ticks and all(float(t).is_integer() for t in ticks) and len(set(ticks)) == len(ticks)


def _attribution(reuse: bool, baseline="zero", methods=("ig", "logit")):
    totals = [{"name": "features", "ig_share": 0.2 if reuse else 1.0, "logit_share": 0.25 if reuse else 1.0}]
    layers = []
    if reuse:
        totals.append({"name": "statistics", "ig_share": 0.8, "logit_share": 0.75})
        layers = [
            {"name": "in1", "ig_share": 0.5, "logit_share": 0.45},
            {"name": "in2", "ig_share": 0.3, "logit_share": 0.3},
        ]
    return {
        "totals": totals,
        "layers": layers,
        "features_only": not reuse,
        "methods": list(methods),
        "baseline": baseline,
        "target": "pred",
    }


def test_attribution_chart_legend_outside_and_title_names_method_and_baseline():
    fig = attribution_figure(_attribution(True), title="m_in_v2")
    renderer = fig.canvas.get_renderer()
    (legend,) = fig.legends
    assert [t.get_text() for t in legend.get_texts()] == ["IG share", "logit share"]
    for ax in fig.axes:
        assert not _overlaps(legend.get_window_extent(renderer), ax.get_window_extent(renderer))
    title = fig._suptitle.get_text()
    assert "Integrated Gradients, logit decomposition" in title and "zero baseline" in title
    assert [ax.get_title() for ax in fig.axes] == ["features vs statistics", "per norm layer"]
    heights = [p.get_height() for p in fig.axes[0].containers[0].patches]
    assert heights == [0.2, 0.8]


def test_attribution_chart_without_reuse_is_not_features_vs_statistics():
    fig = attribution_figure(_attribution(False, baseline="train-mean"))
    assert [ax.get_title() for ax in fig.axes] == ["features only (no reused statistics)"]
    assert "training-mean baseline" in fig._suptitle.get_text()


def test_attribution_outputs_named_by_method_and_baseline():
    all_methods = ("ig", "logit", "permutation", "ablation")
    assert attribution_stem(all_methods, "train-mean") == "attribution"  # what compare and a study read
    assert attribution_stem(all_methods, "zero") == "attribution-zero"
    assert attribution_stem(("logit", "ig"), "train-mean") == "attribution-ig+logit"
    assert attribution_stem(("ig",), "zero", "label", "val") == "attribution-ig-zero-label-val"
