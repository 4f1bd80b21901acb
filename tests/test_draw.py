"""Diagrams: every example renders to a one-page PDF with its labels, reuse arrows counted,
LaTeX specials printed literally, graphviz output, errors and missing tools reported."""

import shutil
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

import normscope
from normscope.cli import app
from normscope.errors import NormscopeError
from normscope.report.draw import draw, layout, tikz
from normscope.report.draw.boxes import channels_cm

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "examples").glob("*.yml"))
HAVE_TEX = all(shutil.which(t) for t in ("pdflatex", "pdftoppm", "pdftotext", "pdfinfo"))
needs_tex = pytest.mark.skipif(not HAVE_TEX, reason="pdflatex and poppler-utils are not installed")
needs_dot = pytest.mark.skipif(not shutil.which("dot"), reason="graphviz is not installed")
SPECIALS = "50% of $x_1 & {y}#~^\\"


def pdf_pages(path: Path) -> int:
    out = subprocess.run(["pdfinfo", str(path)], capture_output=True, text=True, check=True).stdout
    return int(next(line.split()[1] for line in out.splitlines() if line.startswith("Pages:")))


def pdf_text(path: Path) -> str:
    return subprocess.run(["pdftotext", str(path), "-"], capture_output=True, text=True, check=True).stdout


def graph_of(path, **kw):
    return normscope.build_graph(normscope.load_spec(path, **kw))


def count_taps(tex: str) -> int:
    return sum(line.startswith("\\NSReuseArrow{") for line in tex.splitlines())


def test_examples_exist():
    names = {p.stem for p in EXAMPLES}
    assert {"vgg16", "vgg16_in_v2", "perceptnet_gdn_v2", "inception_cifar", "resnet18_cifar"} <= names


@needs_tex
@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_every_example_renders(example, tmp_path):
    g = graph_of(example)
    files = draw(example, tmp_path, formats="tex,pdf")
    assert set(files) == {"tex", "pdf"} and files["pdf"].name == f"{g.graph['name']}.pdf"
    assert pdf_pages(files["pdf"]) == 1
    text = pdf_text(files["pdf"])
    drawn = {it.node for it in layout(g).items}  # repeated blocks drawn once
    for name in drawn:
        node = g.nodes[name]
        if node["kind"] == "reuse":
            assert str(node["shape"][0]) in text
        elif node["kind"] != "input":
            assert (node["caption"] or name) in text, name
    tex = files["tex"].read_text()
    norms = [n for n in g.graph["order"] if g.nodes[n]["role"] == "norm" and n in drawn]
    assert count_taps(tex) == (len(norms) if g.graph["reuse"] else 0)
    if g.graph["reuse"] and g.graph["norm"] != "none":
        assert count_taps(tex) > 0
    assert not list(tmp_path.glob(".*.tmp"))  # written atomically, nothing left over


@needs_tex
def test_vgg16_in_v2(tmp_path):
    files = draw(ROOT / "examples" / "vgg16_in_v2.yml", tmp_path)
    assert set(files) == {"tex", "pdf", "png"} and files["png"].stat().st_size > 10_000
    assert files["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    tex = files["tex"].read_text()
    assert count_taps(tex) == 4 and tex.count("\\NSReuseArrow{ns-in}") == 4
    assert "$\\mu,\\sigma^2$" in tex
    text = pdf_text(files["pdf"])
    assert "992" in text and "InstanceNorm statistics" in text
    for size in ("(32)", "(64)", "(128)", "(256)"):  # 2C values from each of the four layers
        assert size in text


@needs_tex
def test_gdn_labels_abbreviations_and_no_legend(tmp_path):
    files = draw(
        ROOT / "examples" / "vgg16.yml",
        tmp_path,
        formats="tex,pdf",
        norm="gdn",
        reuse=True,
        abbreviations=True,
        legend=False,
        title="VGG16 & GDN_v2",
    )
    tex = files["tex"].read_text()
    assert tex.count("\\NSReuseArrow{ns-gdn}") == 4 and "{$D$" in tex and "\\NSSwatch{ns-" not in tex
    text = pdf_text(files["pdf"])
    for abbrev in ("cnv", "pl", "do", "flat", "pred", "gdn", "752", "VGG16 & GDN_v2"):
        assert abbrev in text
    assert "conv1" not in text and "statistics" not in text


@needs_tex
def test_latex_specials_render_literally(tmp_path):
    yml = tmp_path / "specials.yml"
    yml.write_text(
        'name: "odd & name_#1"\ninput: [3, 8, 8]\nclasses: 10\nlayers:\n'
        '  - conv: {filters: 4, caption: "50% of $x_1 & {y}#~^\\\\"}\n'
        '  - flatten\n  - dense: {caption: "<b>|"}\n'
    )
    files = draw(yml, tmp_path / "out", formats="tex,pdf", title="100% {title}")
    assert files["tex"].name == "odd_name__1.tex"
    text = pdf_text(files["pdf"])
    assert SPECIALS in text and "<b>|" in text and "100% {title}" in text


def test_escape():
    assert tikz.escape("a_b") == r"a{\ttfamily\char95}b"
    assert tikz.escape("\\input{x}") == r"{\ttfamily\char92}input\{x\}"
    assert tikz.escape("line\nbreak %") == r"line break \%"
    assert tikz.escape("é☃") == r"\'{e}?"
    escaped = tikz.escape(SPECIALS)
    for ch in "$&#%":
        assert escaped.count(ch) == escaped.count("\\" + ch)


def test_latex_failure_reports_log_lines():
    if not shutil.which("pdflatex"):
        pytest.skip("pdflatex is not installed")
    bad = "\\documentclass{article}\n\\begin{document}\nfine\n\\nosuchmacro\n\\end{document}\n"
    with pytest.raises(NormscopeError) as err:
        tikz.compile_pdf(bad)
    msg = str(err.value)
    assert "pdflatex failed" in msg and "! Undefined control sequence." in msg and "l.4" in msg


@needs_tex
def test_template_failure_through_cli(tmp_path, monkeypatch):
    monkeypatch.setattr(tikz, "escape", lambda text: "\\brokenmacro{}")
    result = CliRunner().invoke(app, ["draw", str(ROOT / "examples" / "vgg16.yml"), "-o", str(tmp_path)])
    assert result.exit_code == 2
    assert "Undefined control sequence" in result.output and "brokenmacro" in result.output
    assert "Traceback" not in result.output


def test_missing_pdflatex_still_writes_tex(tmp_path, monkeypatch):
    real = shutil.which
    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: None if name == "pdflatex" else real(name, *a, **k))
    notes = []
    files = draw(ROOT / "examples" / "vgg16.yml", tmp_path, notify=notes.append)
    assert set(files) == {"tex"} and files["tex"].exists()
    assert len(notes) == 1 and "pdflatex" in notes[0]
    for pkg in ("texlive-latex-base", "texlive-pictures", "texlive-latex-extra", "poppler-utils"):
        assert pkg in notes[0]
    with pytest.raises(tikz.ToolMissing):  # asked for explicitly: an error, .tex written
        draw(ROOT / "examples" / "vgg16.yml", tmp_path / "x", formats="pdf", norm="bn")
    assert (tmp_path / "x" / "vgg16_bn.tex").exists()
    result = CliRunner().invoke(app, ["draw", str(ROOT / "examples" / "vgg16.yml"), "-o", str(tmp_path / "c")])
    assert result.exit_code == 0 and "texlive-latex-base" in result.output
    assert (tmp_path / "c" / "vgg16.tex").exists()


@needs_tex
def test_missing_pdftoppm_keeps_the_pdf(tmp_path, monkeypatch):
    real = shutil.which
    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: None if name == "pdftoppm" else real(name, *a, **k))
    notes = []
    files = draw(ROOT / "examples" / "perceptnet.yml", tmp_path, notify=notes.append)
    assert set(files) == {"tex", "pdf"} and len(notes) == 1 and "poppler-utils" in notes[0]


@needs_dot
def test_graphviz_reuse_edges(tmp_path):
    files = draw(ROOT / "examples" / "vgg16.yml", tmp_path, formats="dot,svg", norm="bn", reuse=True)
    assert set(files) == {"dot", "svg"}
    dot = files["dot"].read_text()
    taps = [line for line in dot.splitlines() if "-> reuse" in line and "style=dashed" in line]
    assert len(taps) == 4 and all('color="#0072b2"' in t and "class=reuse" in t for t in taps)
    assert "shape=box3d" in dot and "shape=hexagon" in dot and "shape=doublecircle" in dot
    svg = files["svg"].read_text()
    assert svg.lstrip().startswith("<?xml") and svg.count('class="edge reuse"') == 4


def test_layout_branches_skips_and_widths():
    inc = graph_of(ROOT / "examples" / "inception_cifar.yml")
    lay = layout(inc)
    items = {it.node: it for it in lay.items}
    for name in inc.graph["order"]:
        if inc.nodes[name]["kind"] == "concat":
            ys = {round(items[src].y, 3) for src in inc.nodes[name]["inputs"]}
            assert len(ys) == len(inc.nodes[name]["inputs"]), name  # branches stacked vertically
    res = graph_of(ROOT / "examples" / "resnet18_cifar.yml", norm="bn", reuse=True)
    lay = layout(res, expand=True)
    assert lay.skips and all(p[1][1] > p[0][1] for p in lay.skips if len(p) == 4)  # shortcuts go over the boxes
    norms = [n for n in res.graph["order"] if res.nodes[n]["role"] == "norm"]
    assert len(lay.taps) == len(norms) and len({round(t.lane, 3) for t in lay.taps}) == len(norms)
    last = [it for it in lay.items if it.line == max(i.line for i in lay.items)]
    assert all(t.path[-2][1] > max(it.top for it in last) for t in lay.taps)  # over the last line
    vgg = layout(graph_of(ROOT / "examples" / "vgg16_imagenet.yml"))
    assert max(it.w for it in vgg.items) < 2.0 and max(it.h for it in vgg.items) <= 4.5
    assert channels_cm(4096) < 2.0 and channels_cm(3) > 0.3


def test_cli_formats_and_errors(tmp_path):
    runner = CliRunner()
    result = runner.invoke(
        app,
        [
            "draw",
            str(ROOT / "examples" / "vgg16.yml"),
            "--norm",
            "in",
            "--reuse",
            "-o",
            str(tmp_path),
            "--format",
            "tex",
            "--no-legend",
        ],
    )
    assert result.exit_code == 0, result.output
    tex = (tmp_path / "vgg16_in_v2.tex").read_text()
    assert count_taps(tex) == 4 and "\\NSSwatch{ns-" not in tex
    bad = runner.invoke(app, ["draw", str(ROOT / "examples" / "vgg16.yml"), "-o", str(tmp_path), "-f", "jpg"])
    assert bad.exit_code == 2 and "unknown format jpg" in bad.output
    bad = runner.invoke(app, ["draw", str(ROOT / "examples" / "vgg16.yml"), "--norm", "rms"])
    assert bad.exit_code == 2 and "unknown norm 'rms': is its plugin loaded? (--plugin FILE)" in bad.output


def test_draw_section_and_overrides(tmp_path):
    yml = tmp_path / "small.yml"
    yml.write_text(
        "name: small\ninput: [3, 8, 8]\nclasses: 10\nnorm: in\nreuse: true\n"
        "draw: {abbreviations: true, legend: false, title: Small net, scale: 0.8}\n"
        "layers:\n  - conv: 4\n  - norm\n  - maxpool: 2\n  - flatten\n  - dense: {}\n"
    )
    tex = draw(yml, tmp_path, formats="tex")["tex"].read_text()
    assert "{Small net}" in tex and "x=0.8cm" in tex and "\\NSSwatch{ns-" not in tex
    assert "{cnv\\," in tex and "{pl\\," in tex and count_taps(tex) == 1
    tex = draw(yml, tmp_path, formats="tex", abbreviations=False, legend=True, title="")["tex"].read_text()
    assert "{conv1\\," in tex and "\\NSSwatch{ns-in}" in tex and "Small net" not in tex
