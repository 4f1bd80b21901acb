"""The results in docs/results.md come from committed files: each factor study's small per-run
files (results.json, metrics.csv, config.json, attribution.json; no checkpoints) are under
docs/results/<study>/runs/, and comparing them again gives exactly the committed tables."""

from pathlib import Path

import pytest

from normscope.study.compare import collect
from normscope.study.tables import write_comparison

RESULTS = Path(__file__).resolve().parents[1] / "docs" / "results"
STUDIES = ("perceptnet-by-momentum", "perceptnet-by-kernel", "vgg16-by-momentum")


@pytest.mark.parametrize("study", STUDIES)
def test_the_committed_tables_are_rederived_from_the_committed_runs(study, tmp_path):
    rows = collect([RESULTS / study])
    assert len(rows) == 20  # 2 levels × 2 variants × 5 seeds
    write_comparison(rows, tmp_path)
    for table in ("table.md", "paired.md", "factors.md", "reliance.md"):
        assert (tmp_path / table).read_text() == (RESULTS / study / table).read_text(), table


def test_the_momentum_verdicts_quoted_in_the_docs_are_the_tables():
    """docs/results.md quotes the VGG16 contrasts between momenta; they are the factors table's."""
    factors = (RESULTS / "vgg16-by-momentum" / "factors.md").read_text()
    doc = (RESULTS.parent / "results.md").read_text()
    for variant in ("bn", "bn_v2"):
        line = next(x for x in factors.splitlines() if x.startswith(f"| vgg16 | {variant} |") and "| accuracy |" in x)
        value = float(line.split("|")[8])
        quoted = f"{'−' if value < 0 else '+'}{abs(value):.3f}"  # as the doc writes it, 3 decimals
        assert quoted in doc, (variant, quoted)
