"""`normscope report`: one self-contained HTML page, loaded in a real headless browser
(Debian's chromium over the DevTools protocol): no console errors, no request beyond the
file itself and its data: URIs, every image decoded, a screenshot that is not blank."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

import browser  # tests/browser.py
from normscope.cli import app

pytestmark = pytest.mark.skipif(browser.CHROMIUM is None, reason="chromium is not installed (scripts/setup.sh)")

ROOT = Path(__file__).resolve().parents[1]
FASHION = ROOT / "docs" / "results" / "fashion_study_comparison.json"


@pytest.fixture(scope="module")
def tiny_study(tmp_path_factory):
    """A real study: PerceptNet with and without InstanceNorm reuse, 2 seeds, 1 epoch, synthetic data."""
    import torch

    from normscope.study import run_study

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        out = tmp_path_factory.mktemp("study")
        return run_study(
            "examples/perceptnet.yml",
            out=out,
            variants="in,in_v2",
            seeds=2,
            data="synthetic",
            epochs=1,
            device="cpu",
            attribute_samples=50,
            log=lambda *a: None,
        )
    finally:
        torch.set_num_threads(before)


def _report(source, out) -> Path:
    res = CliRunner().invoke(app, ["report", str(source), "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert res.output.strip() == f"wrote {out}"
    return out


def _loads_cleanly(page: Path) -> "browser.Loaded":
    loaded = browser.load(page)
    assert loaded.errors == []
    external = [u for u in loaded.requests if not u.startswith("data:") and u != page.resolve().as_uri()]
    assert external == []
    assert loaded.images and all(complete and width > 0 and height > 0 for complete, width, height, _ in loaded.images)
    assert browser.not_blank(loaded.screenshot) > 0.05
    text = page.read_text()
    assert (
        "http://"
        not in text.replace('xmlns="http://www.w3.org/2000/svg"', "").replace(
            'xmlns:xlink="http://www.w3.org/1999/xlink"', ""
        )
        and "https://" not in text
    )
    return loaded


def test_report_of_a_study_shows_design_claims_curves_confusion_attribution_and_diagrams(tiny_study, tmp_path):
    page = _report(tiny_study, tmp_path / "study.html")
    loaded = _loads_cleanly(page)
    alts = [alt for *_, alt in loaded.images]
    # the chart, one learning-curve figure (one family), a confusion matrix per variant (2 seeds
    # summed), the attribution of the reuse variant (the plain one has none), a diagram per variant
    assert alts == [
        "bar chart",
        "learning curves of perceptnet",
        "perceptnet_in (test set, 2 seeds summed)",
        "perceptnet_in_v2 (test set, 2 seeds summed)",
        "attribution of perceptnet_in_v2, seed 0",
    ]
    assert loaded.svgs == 2
    html = page.read_text()
    assert "<th>seeds</th><td>2: 0, 1</td>" in html and "<th>epochs</th><td>1</td>" in html
    assert "too few paired seeds" in html  # the claims' verdict with 2 pairs
    assert "perceptnet_in_v2" in html and "InstanceNorm + reuse" in html
    assert "not where the comparison saw them" not in html


def test_report_of_the_committed_fashion_mnist_comparison_alone(tmp_path):
    page = _report(FASHION, tmp_path / "fashion.html")
    loaded = _loads_cleanly(page)
    assert [alt for *_, alt in loaded.images] == ["bar chart"]  # the runs were not kept
    html = page.read_text()
    assert "80 of the 80 runs are not where the comparison saw them" in html
    assert "1.8e-10" in html and "reuse helps" in html  # PerceptNet: InstanceNorm reuse, AUC (Holm)


def test_report_of_one_run_and_the_factors_of_a_study(tiny_study, tmp_path):
    run = tiny_study / "runs" / "perceptnet_in_v2-s1"
    loaded = _loads_cleanly(_report(run, tmp_path / "run.html"))
    assert len(loaded.images) == 4 and loaded.svgs == 1  # chart, curves, confusion, attribution; diagram
    # a study with factors (study.json `factors`, each run's `cell`) shows them in the design
    copy = tmp_path / "factors"
    shutil.copytree(tiny_study, copy)
    plan = json.loads((copy / "study.json").read_text())
    plan["factors"] = {"norm_options.bn.momentum": [0.9, 0.99]}
    for entry in plan["runs"]:
        entry["cell"] = {"norm_options.bn.momentum": 0.9 if entry["seed"] == 0 else 0.99}
    (copy / "study.json").write_text(json.dumps(plan))
    html = _report(copy, tmp_path / "factors.html").read_text()
    assert "<th>factor norm_options.bn.momentum</th><td>0.9, 0.99</td>" in html
    # and each run's levels
    assert "<td>perceptnet_in_v2-s1</td><td>InstanceNorm + reuse</td><td>1</td><td>0.99</td>" in html


def test_report_refuses_what_it_cannot_read(tiny_study, tmp_path):
    runner = CliRunner()
    cases = [
        (tmp_path / "missing", "no such file or directory"),
        (tmp_path, "not a study, comparison or run directory"),
    ]
    bare = tmp_path / "bare"
    bare.mkdir()
    shutil.copy(tiny_study / "study.json", bare / "study.json")
    cases.append((bare, "the study has no comparison.json yet; write it with: normscope compare"))
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    cases.append((broken, "not readable JSON"))
    for source, message in cases:
        res = runner.invoke(app, ["report", str(source), "-o", str(tmp_path / "r.html")])
        assert res.exit_code == 2 and message in res.output and "Traceback" not in res.output, res.output
    assert not (tmp_path / "r.html").exists()


def test_the_browser_check_sees_errors_and_requests(tmp_path):
    """The checks above can fail: a page that logs an error and asks the network for an image."""
    page = tmp_path / "bad.html"
    page.write_text(
        '<!DOCTYPE html><html><body><p>x</p><img src="http://127.0.0.1:9/missing.png" alt="far">'
        '<script>console.error("broken on purpose")</script></body></html>'
    )
    loaded = browser.load(page)
    assert "http://127.0.0.1:9/missing.png" in loaded.requests
    assert any("broken on purpose" in e for e in loaded.errors)
    assert loaded.images == [[True, 0, 0, "far"]]  # not decoded
