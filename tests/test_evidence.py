"""The study's evidence: paired initialization, the paired statistics, the LaTeX tables, provenance."""

import json
import math
import shutil
import subprocess

import pytest
import torch
from typer.testing import CliRunner

import normscope
from normscope.cli import app
from normscope.spec import load_spec
from normscope.spec.provenance import description_hash
from normscope.study import claims, collect, holm, paired_test, stats_share, write_comparison
from normscope.study.stats import verdict
from normscope.train import load_run, runs, train

HAVE_TEX = all(shutil.which(t) for t in ("pdflatex", "pdfinfo"))
needs_tex = pytest.mark.skipif(not HAVE_TEX, reason="pdflatex and poppler-utils are not installed")


def convs(model) -> dict:
    return {k: v for k, v in model.state_dict().items() if k.startswith("layers.conv")}


# --------------------------------------------------------------------------- #
# Paired initialization
# --------------------------------------------------------------------------- #


def test_one_seed_starts_every_variant_alike_in_the_shared_layers():
    plain = normscope.build_model("examples/vgg16.yml", seed=3)
    reuse = normscope.build_model("examples/vgg16.yml", norm="in", reuse=True, seed=3)
    assert plain.classifier_input.features.size == 512
    a, b = convs(plain), convs(reuse)
    assert len(a) == 20 and a.keys() == b.keys()  # 10 convolutions, weight and bias
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert torch.equal(plain.classifier.weight, reuse.classifier.weight[:, :512])
    assert torch.equal(plain.classifier.bias, reuse.classifier.bias)
    for norm in ("bn", "gdn", "gn"):
        other = normscope.build_model("examples/vgg16.yml", norm=norm, reuse=True, seed=3)
        assert all(torch.equal(a[k], convs(other)[k]) for k in a)
        assert torch.equal(plain.classifier.weight, other.classifier.weight[:, :512])

    # another seed: every layer differs, the reused columns too
    reuse4 = normscope.build_model("examples/vgg16.yml", norm="in", reuse=True, seed=4)
    assert not any(torch.equal(b[k], convs(reuse4)[k]) for k in b)
    assert not torch.equal(reuse.classifier.weight[:, 512:], reuse4.classifier.weight[:, 512:])

    # nothing is left to torch's global generator: the same seed gives the same model whatever its state
    torch.manual_seed(123)
    again = normscope.build_model("examples/vgg16.yml", norm="in", reuse=True, seed=3)
    for k, v in reuse.state_dict().items():
        assert torch.equal(v, again.state_dict()[k]), k


def test_seeded_weights_follow_torchs_default_distribution():
    """kaiming_uniform_(a=sqrt(5)) as nn.Conv2d / nn.Linear draw it: uniform in ±1/sqrt(fan_in),
    so max |w| stays under the bound and the std is bound/sqrt(3)."""
    model = normscope.build_model("examples/vgg16.yml", norm="in", reuse=True, seed=0)
    for name in ("conv9", "conv10"):  # 128 × 128 × 3 × 3 = 147,456 weights each
        w = model.layers[name].weight
        bound = 1 / math.sqrt(128 * 9)
        assert w.abs().max() <= bound
        assert w.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.01)
        default = torch.nn.Conv2d(128, 128, 3).weight
        assert w.std().item() == pytest.approx(default.std().item(), rel=0.02)
    ci = model.classifier_input
    features, stats_cols = model.classifier.weight[:, :512], model.classifier.weight[:, 512:]
    assert features.abs().max() <= 1 / math.sqrt(512)  # as a classifier that reads the features alone
    assert stats_cols.abs().max() <= 1 / math.sqrt(ci.size)  # torch's bound for the whole input (992)
    assert stats_cols.abs().max() > 0.9 / math.sqrt(ci.size)


def test_the_trainer_pairs_initial_weights_and_data_order(tmp_path, one_thread):
    """A learning rate of 1e-30 leaves every weight where it started (Adam's steps are ~lr, far
    below float32's resolution), so best.pt holds the initial weights; BatchNorm's running mean
    of the input (perceptnet's first layer) is an average over the batches in their order."""
    common = dict(
        data="synthetic", out=tmp_path, epochs=1, subset=120, batch_size=16, lr=1e-30, device="cpu", fit_data=True
    )
    made = {}
    for norm, reuse, seed in (("bn", False, 0), ("bn", True, 0), ("bn", False, 1)):
        made[(reuse, seed)] = train(
            "examples/perceptnet.yml",
            norm=norm,
            reuse=reuse,
            seed=seed,
            name=f"{reuse}-{seed}",
            progress="none",
            **common,
        )
    best = {k: runs.load_checkpoint(d / runs.BEST)["model"] for k, d in made.items()}
    for key in ("layers.conv1.weight", "layers.conv2.weight", "layers.conv3.weight"):
        assert torch.equal(best[(False, 0)][key], best[(True, 0)][key])
        assert not torch.equal(best[(False, 0)][key], best[(False, 1)][key])
    assert torch.equal(
        best[(False, 0)]["layers.classifier.weight"], best[(True, 0)]["layers.classifier.weight"][:, :128]
    )
    initial = load_run(made[(True, 0)]).build_model().state_dict()
    assert torch.equal(initial["layers.classifier.weight"], best[(True, 0)]["layers.classifier.weight"])
    mean = "layers.bn1.running_mean"
    assert torch.equal(best[(False, 0)][mean], best[(True, 0)][mean])  # the same images in the same order
    assert not torch.equal(best[(False, 0)][mean], best[(False, 1)][mean])

    # every run records where it came from
    res = json.loads((made[(True, 0)] / runs.RESULTS).read_text())
    spec = load_spec(made[(True, 0)] / runs.DESCRIPTION)
    assert res["provenance"]["description_sha256"] == description_hash(spec)
    assert res["provenance"]["normscope"] == normscope.__version__
    seed1 = json.loads((made[(False, 1)] / runs.RESULTS).read_text())["provenance"]["description_sha256"]
    seed0 = json.loads((made[(False, 0)] / runs.RESULTS).read_text())["provenance"]["description_sha256"]
    assert seed0 == seed1 != res["provenance"]["description_sha256"]  # the seed is not part of it


# --------------------------------------------------------------------------- #
# Statistics
# --------------------------------------------------------------------------- #


def test_holm_step_down_by_hand():
    # sorted: 0.005·4 = 0.02, 0.01·3 = 0.03, 0.03·2 = 0.06, 0.04·1 = 0.04 -> running max 0.06
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.2, None, 0.01]) == [pytest.approx(0.2), None, pytest.approx(0.02)]
    assert holm([0.6, 0.7]) == [1.0, 1.0]  # capped at 1
    assert holm([]) == []


def test_paired_test_against_hand_computation():
    plain = {0: 0.80, 1: 0.82, 2: 0.84, 3: 0.81, 4: 0.83}
    v2 = {0: 0.85, 1: 0.86, 2: 0.90, 3: 0.84, 4: 0.88, 7: 0.99}
    got = paired_test(plain, v2)
    # d = 0.05, 0.04, 0.06, 0.03, 0.05: mean 0.046, sd sqrt(0.00052 / 4) = 0.0114018
    sd = math.sqrt(0.00052 / 4)
    half = 2.7764451 * sd / math.sqrt(5)  # t(0.975, 4 df) from a table
    assert got["n_pairs"] == 5 and got["seeds"] == [0, 1, 2, 3, 4]
    assert got["unpaired"] == {"plain": [], "v2": [7]}
    assert got["difference"] == pytest.approx(0.046)
    assert (got["ci_low"], got["ci_high"]) == (pytest.approx(0.046 - half), pytest.approx(0.046 + half))
    assert got["effect_size"] == pytest.approx(0.046 / sd)
    # t = 0.046 / (sd / sqrt 5) = 9.0213; two-sided p with 4 df
    assert got["p_value"] == pytest.approx(0.00083619, rel=1e-4)
    assert got["p_wilcoxon"] == pytest.approx(2 / 2**5)  # exact: all 5 differences positive
    assert got["differences"] == pytest.approx([0.05, 0.04, 0.06, 0.03, 0.05])


def test_too_few_seeds_and_degenerate_differences():
    two = paired_test({0: 0.5, 1: 0.6}, {0: 0.7, 1: 0.9, 2: 0.1})
    assert two["n_pairs"] == 2 and two["p_value"] is None and two["p_wilcoxon"] is None
    # d = 0.2, 0.3: mean 0.25, sd 0.05·sqrt(2), standard error 0.05; t(0.975, 1 df) = 12.7062047
    assert two["ci_low"] == pytest.approx(0.25 - 12.7062047 * 0.05) and two["ci_high"] == pytest.approx(
        0.25 + 12.7062047 * 0.05
    )
    assert verdict({**two, "metric": "auc", "p_holm": None}) == "too few paired seeds"
    same = paired_test({s: 0.5 for s in range(3)}, {s: 0.5 for s in range(3)})
    assert same["p_value"] is None and same["effect_size"] is None and same["ci_low"] == same["ci_high"] == 0
    assert verdict({**same, "metric": "auc", "p_holm": None}) == "identical in every seed"
    shifted = paired_test({s: 0.5 for s in range(3)}, {s: 0.75 for s in range(3)})
    assert shifted["p_value"] is None and shifted["difference"] == 0.25
    assert verdict({**shifted, "metric": "auc", "p_holm": None}) == "constant difference, test undefined"


def fake_run(root, family, variant, seed, accuracy, auc, stats_share=None, sha="a" * 64, loss=1.0):
    d = root / f"{family}_{variant}-s{seed}"
    d.mkdir(parents=True)
    test = {"loss": loss, "accuracy": accuracy, "precision": 0.5, "recall": 0.25, "auc": auc}
    test.update({"top5_accuracy": 0.9, "macro_f1": 0.4})
    res = {"status": "completed", "name": family, "variant": variant, "seed": seed, "data": "synthetic"}
    res.update({"test": test, "params": {"total": 1000}, "provenance": {"description_sha256": sha}})
    (d / "results.json").write_text(json.dumps(res))
    (d / "config.json").write_text(json.dumps({"family": family}))
    if stats_share is not None:
        att = {
            "stats_share": stats_share,
            "totals": [{"name": "statistics", "permutation_accuracy_drop": stats_share / 2}],
            "layers": [{"name": "in1", "ig_share": stats_share / 4}, {"name": "in2", "ig_share": stats_share * 3 / 4}],
        }
        (d / "attribution.json").write_text(json.dumps(att))
    return d


def study_of_three_claims(root):
    """in: reuse clearly helps; bn: clearly hurts; gdn: noise. Four seeds; gdn_v2 has a fifth."""
    for seed in range(4):
        wobble = (0.01, -0.012, 0.008, -0.006)[seed]
        fake_run(root, "net", "in", seed, 0.50 + 0.01 * seed, 0.80)
        fake_run(root, "net", "in_v2", seed, 0.60 + 0.01 * seed + wobble / 5, 0.90, stats_share=0.2 + 0.1 * seed)
        fake_run(root, "net", "bn", seed, 0.70 + 0.01 * seed, 0.80)
        fake_run(root, "net", "bn_v2", seed, 0.60 + 0.01 * seed - wobble / 5, 0.80, stats_share=0.0)
        fake_run(root, "net", "gdn", seed, 0.70, 0.80)
        fake_run(root, "net", "gdn_v2", seed, 0.70 + wobble, 0.80)
    fake_run(root, "net", "gdn_v2", 4, 0.71, 0.80)


def test_claims_holm_and_verdicts(tmp_path):
    study_of_three_claims(tmp_path)
    found = claims(collect([tmp_path]), metrics=("accuracy",))
    assert [c["norm"] for c in found] == ["bn", "in", "gdn"]  # the norms table's order
    by = {c["norm"]: c for c in found}
    assert by["in"]["difference"] == pytest.approx(0.1) and by["in"]["verdict"] == "reuse helps"
    assert by["bn"]["difference"] == pytest.approx(-0.1) and by["bn"]["verdict"] == "reuse hurts"
    assert by["gdn"]["verdict"] == "no evidence of a difference"
    assert by["gdn"]["n_pairs"] == 4 and by["gdn"]["unpaired"] == {"plain": [], "v2": [4]}
    p = sorted(c["p_value"] for c in found)
    holm_by_hand = [min(1, 3 * p[0]), min(1, max(3 * p[0], 2 * p[1])), min(1, max(3 * p[0], 2 * p[1], p[2]))]
    assert sorted(c["p_holm"] for c in found) == pytest.approx(holm_by_hand)
    assert by["in"]["p_holm"] < 0.05 < by["gdn"]["p_holm"]
    # the loss: lower is better
    loss = claims(collect([tmp_path]), metrics=("loss",))
    assert {c["verdict"] for c in loss} == {"identical in every seed"}  # all 1.0: differences of 0, no test


def test_stats_share_mean_and_interval(tmp_path):
    study_of_three_claims(tmp_path)
    shares = {s["variant"]: s for s in stats_share(collect([tmp_path]))}
    assert list(shares) == ["bn_v2", "in_v2"]
    s = shares["in_v2"]  # 0.2, 0.3, 0.4, 0.5: mean 0.35, sd sqrt(0.05 / 3)
    half = 3.1824463 * math.sqrt(0.05 / 3) / 2  # t(0.975, 3 df) · sd / sqrt(4)
    assert (s["n"], s["mean"], s["ci_low"], s["ci_high"]) == (
        4,
        pytest.approx(0.35),
        pytest.approx(0.35 - half),
        pytest.approx(0.35 + half),
    )
    assert s["values"] == pytest.approx([0.2, 0.3, 0.4, 0.5]) and s["seeds"] == [0, 1, 2, 3]
    assert s["largest_layer"] == "in2" and s["largest_layer_share"] == pytest.approx(0.35 * 3 / 4)
    assert s["permutation_accuracy_drop"]["mean"] == pytest.approx(0.175)
    assert shares["bn_v2"]["ci_low"] == shares["bn_v2"]["ci_high"] == 0.0


def test_compare_writes_paired_claims_and_warns_on_mixed_descriptions(tmp_path):
    study_of_three_claims(tmp_path / "runs")
    fake_run(tmp_path / "runs", "net", "in", 9, 0.5, 0.8, sha="b" * 64)
    out = tmp_path / "cmp"
    result = CliRunner().invoke(app, ["compare", str(tmp_path / "runs"), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert (
        "the runs of net_in were made from 2 different descriptions: "
        "aaaaaaaaaaaa (seeds 0, 1, 2, 3); bbbbbbbbbbbb (seed 9)" in result.output
    )
    data = json.loads((out / "comparison.json").read_text())
    assert data["warnings"] and data["provenance"]["normscope"] == normscope.__version__
    assert data["provenance"]["descriptions"]["net_in"] == ["a" * 64, "b" * 64]
    fields = {"family", "norm", "metric", "n_pairs", "difference", "ci_low", "ci_high", "p_value", "p_holm"}
    fields |= {"effect_size", "verdict", "seeds", "plain", "v2"}
    assert all(fields <= set(c) for c in data["claims"]) and len(data["claims"]) == 6
    paired_md = (out / "paired.md").read_text()
    assert (
        "| net | in | accuracy | 4 | 0.515 ± 0.013 | 0.615 ± 0.012 | +0.1000 | [+0.0966, +0.1034] | +46.69 |"
        in paired_md
    )
    assert (
        "- net gdn: seed 4 only in v2, left out\n" in paired_md
        and "- net in: seed 9 only in plain, left out\n" in paired_md
    )
    assert (
        "| net | in | AUC | 4 | 0.800 ± 0.000 | 0.900 ± 0.000 | +0.1000 | [+0.1000, +0.1000] | — | — | — | — | "
        "constant difference, test undefined |" in paired_md
    )
    assert "| net_in_v2 | 4 | 0.350 | [0.145, 0.555] | in2: 0.263 |" in (out / "reliance.md").read_text()


# --------------------------------------------------------------------------- #
# LaTeX and provenance
# --------------------------------------------------------------------------- #


@needs_tex
def test_table_tex_compiles_in_a_document_with_booktabs_and_amsmath(tmp_path):
    for seed in range(3):
        fake_run(tmp_path / "runs", "vgg16", "bn", seed, 0.48, 0.86, loss=3.2)
        fake_run(tmp_path / "runs", "vgg16", "bn_v2", seed, 0.47 + seed / 100, 0.73, stats_share=0.0, loss=53879.5)
    write_comparison(collect([tmp_path / "runs"]), tmp_path, reference="thesis")
    table = (tmp_path / "table.tex").read_text()
    assert r"\quad\textit{thesis} & 1 & $53879.512$" in table  # the thesis' row beside ours
    assert r"vgg16{\ttfamily\char95}bn{\ttfamily\char95}v2 & 3 & $53879.5 \pm 0.0$" in table
    (tmp_path / "doc.tex").write_text(
        "\\documentclass{article}\n\\usepackage{booktabs}\n\\usepackage{amsmath}\n\\begin{document}\n"
        "\\input{table.tex}\n\n\\input{paired.tex}\n\\end{document}\n"
    )
    proc = subprocess.run(
        ["pdflatex", "-no-shell-escape", "-interaction=nonstopmode", "-halt-on-error", "doc.tex"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout[-2000:]
    text = subprocess.run(["pdftotext", str(tmp_path / "doc.pdf"), "-"], capture_output=True, text=True).stdout
    assert "vgg16_bn_v2" in text and "thesis" in text and "53879.5 ± 0.0" in text  # the first columns
    paired = (tmp_path / "paired.tex").read_text()
    assert (
        r"bn & AUC & 3 & $0.860 \pm 0.000$ & $0.730 \pm 0.000$ & $-0.1300$ & $[-0.1300, -0.1300]$ & --- & ---" in paired
    )
    assert paired.rstrip().endswith(
        r"$1.000$ & --- & $1.000$ & no evidence of a difference \\" + "\n\\bottomrule\n\\end{tabular}"
    )


def test_description_hash_is_the_expanded_description():
    by_file = load_spec("examples/vgg16_in_v2.yml")  # extends vgg16.yml
    by_flags = load_spec("examples/vgg16.yml", norm="in", reuse=True)
    assert description_hash(by_file) == description_hash(by_flags)
    assert description_hash(by_flags) != description_hash(load_spec("examples/vgg16.yml", norm="gdn", reuse=True))
    assert description_hash(by_flags) != description_hash(
        load_spec("examples/vgg16.yml", norm="in", reuse=True, classes=10)
    )


@needs_tex
def test_diagram_carries_its_provenance(tmp_path):
    from normscope.report.draw import draw

    written = draw("examples/perceptnet.yml", tmp_path, "tex,pdf", norm="in", reuse=True)
    sha = description_hash(load_spec("examples/perceptnet.yml", norm="in", reuse=True))
    tex = written["tex"].read_text()
    assert f"% provenance: description sha256 {sha}, normscope {normscope.__version__}" in tex
    info = subprocess.run(["pdfinfo", str(written["pdf"])], capture_output=True, text=True, check=True).stdout
    assert f"Subject:         normscope provenance: description sha256 {sha}, normscope {normscope.__version__}" in info
