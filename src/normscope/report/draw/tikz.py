"""LaTeX/TikZ output: the layout rendered through a Jinja2 template, compiled by pdflatex.

Every value the template prints is escaped for LaTeX unless it is a `Raw` string built
here; pdflatex runs without shell escape, non-interactively, in a temporary directory and
under a timeout, and a failure is reported with the error lines of its log.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import unicodedata
from importlib.resources import files
from pathlib import Path

import jinja2

from normscope import norms
from normscope.errors import NormscopeError
from normscope.report.draw.boxes import ZX, ZY, Layout
from normscope.report.draw.layout import STYLE_NAMES
from normscope.report.draw.palette import tex_colours

TEMPLATES = files("normscope") / "templates" / "plotneuralnet"
TEX_PACKAGES = "texlive-latex-base texlive-pictures texlive-latex-extra poppler-utils"


class ToolMissing(NormscopeError):
    """A program needed for an output format is not installed."""

    def __init__(self, tool: str, packages: str = TEX_PACKAGES):
        super().__init__(
            f"`{tool}` was not found: install {packages} (Debian/Ubuntu: `sudo apt-get install {packages}`)"
        )
        self.tool = tool


class Raw(str):
    """LaTeX that the template prints as it is."""


_SPECIAL = {
    "\\": r"{\ttfamily\char92}",
    "{": r"\{",
    "}": r"\}",
    "$": r"\$",
    "&": r"\&",
    "#": r"\#",
    "^": r"{\ttfamily\char94}",
    "_": r"{\ttfamily\char95}",
    "%": r"\%",
    "~": r"{\ttfamily\char126}",
    "<": r"\textless{}",
    ">": r"\textgreater{}",
    "|": r"\textbar{}",
    "\n": " ",
    "\r": " ",
    "\t": " ",
}
_SYMBOLS = {
    "μ": r"\mu",
    "µ": r"\mu",
    "α": r"\alpha",
    "β": r"\beta",
    "γ": r"\gamma",
    "δ": r"\delta",
    "ε": r"\varepsilon",
    "σ": r"\sigma",
    "λ": r"\lambda",
    "θ": r"\theta",
    "π": r"\pi",
    "×": r"\times",
    "·": r"\cdot",
    "±": r"\pm",
    "°": r"^\circ",
    "²": r"^2",
    "³": r"^3",
    "→": r"\to",
}
_ACCENTS = {"\u0300": "`", "\u0301": "'", "\u0302": "^", "\u0303": "~", "\u0308": '"', "\u0327": "c"}


def escape(text) -> str:
    """`text` as LaTeX that prints it literally (pdflatex, OT1 fonts)."""
    out = []
    for ch in str(text):
        if ch in _SPECIAL:
            out.append(_SPECIAL[ch])
        elif 32 <= ord(ch) < 127:
            out.append(ch)
        elif ch in _SYMBOLS:
            out.append(f"\\ensuremath{{{_SYMBOLS[ch]}}}")
        elif ch == "ß":
            out.append(r"\ss{}")
        else:
            base, *marks = unicodedata.normalize("NFD", ch)
            if base.isascii() and base.isalpha() and len(marks) == 1 and marks[0] in _ACCENTS:
                out.append(f"\\{_ACCENTS[marks[0]]}{{{base}}}")
            else:
                out.append("?")  # no glyph in the fonts every TeX Live has
    return "".join(out)


def _num(v: float) -> str:
    text = f"{v:.3f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _finalize(value):
    if isinstance(value, Raw):
        return value
    if isinstance(value, bool) or value is None:
        raise TypeError(f"template printed {value!r}")
    if isinstance(value, float):
        return _num(value)
    if isinstance(value, int):
        return str(value)
    return escape(value)


ENV = jinja2.Environment(
    loader=jinja2.FileSystemLoader(str(TEMPLATES)),
    undefined=jinja2.StrictUndefined,
    finalize=_finalize,
    block_start_string="<%",
    block_end_string="%>",
    variable_start_string="<<",
    variable_end_string=">>",
    comment_start_string="<#",
    comment_end_string="#>",
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
    autoescape=False,
)

ENV.filters["comment"] = lambda v: Raw(" ".join(str(v).splitlines()))


def _symbols(short: str) -> str:
    r"""The statistics of a normalization in math mode, e.g. $\mu,\sigma^2$."""
    return "$" + ",".join(s.tex for s in norms.NORMS[short].stats) + "$"


def _times(shape) -> Raw:
    return Raw(r"$\times$".join(str(v) for v in shape))


def _entry(style: str, text, swatch: str = "box") -> dict:
    return {"style": style, "text": text, "swatch": swatch, "newline": False}


def _legend(lay: Layout) -> list[dict]:
    """Legend entries: the styles used, frozen layers and repeats, then one per reused normalization."""
    entries = [_entry(style, STYLE_NAMES[style], "band" if style == "convact" else "box") for style in lay.styles]
    if lay.frozen:
        entries.append(_entry("frozen", "frozen (not trained)", "frozen"))
    if lay.marks:
        entries.append(_entry("repeat", Raw(r"$\times N$: a block repeated N times, drawn once"), "repeat"))
    if lay.taps and entries:
        entries[-1]["newline"] = True
    for style in lay.tap_styles:
        norm = norms.NORMS[style]
        stats = ", ".join(f"${s.tex}$" for s in norm.stats) + " (" + ", ".join(s.what for s in norm.stats) + ")"
        entries.append(_entry(style, Raw(rf"{norm.display} statistics {stats} to the classifier"), "arrow"))
    if lay.reuse_size:
        entries[-1]["text"] = Raw(entries[-1]["text"] + rf"\quad classifier input: {lay.reuse_size}")
    return entries


def render_tex(
    lay: Layout,
    *,
    legend: bool = True,
    title: str | None = None,
    scale: float = 1.0,
    source: str = "",
    stem: str = "diagram",
    template: str = "diagram.tex.j2",
) -> str:
    items = []
    for it in lay.items:
        cx, cy = it.caption_at()
        if it.ball and it.style == "reuse":
            caption = Raw(rf"\textbf{{{it.size}}}")
        elif it.ball:
            caption = Raw(rf"{escape(it.label)}\\{it.size}")
        else:
            caption = Raw(rf"{escape(it.label)}\,{{\color{{black!55}}$\cdot$\,{it.size}}}")
        symbol = Raw(r"$+$" if it.symbol == "plus" else r"$\Vert$")
        items.append(
            {
                **vars(it),
                "caption": caption,
                "caption_x": cx,
                "caption_y": cy - 0.05 / scale,
                "symbol": symbol,
                "spatial": _times(it.spatial) if it.spatial else None,
            }
        )
    taps = [
        {
            "style": t.style,
            "source": t.source,
            "path": t.path,
            "x": t.label_at[0],
            "y": t.label_at[1],
            "label": Raw(rf"{_symbols(t.style)}\,({t.size})"),
        }
        for t in lay.taps
    ]
    marks = [{"x0": m.x0, "x1": m.x1, "y": m.y, "text": Raw(rf"$\times$\,{m.times}")} for m in lay.marks]
    arrows = [("nsarrow", p) for p in lay.arrows] + [("nsskip", p) for p in lay.skips]
    entries = _legend(lay)
    return ENV.get_template(template).render(
        name=lay.name,
        source=source,
        stem=stem,
        items=items,
        arrows=arrows,
        taps=taps,
        marks=marks,
        legend=entries if legend else None,
        title=title,
        scale=scale,
        zx=ZX * scale,
        zy=ZY * scale,
        colours=tex_colours(),
    )


def log_errors(log: str, limit: int = 20) -> str:
    """The '!' lines of a TeX log with the lines that locate them (up to `l.N`)."""
    lines = log.splitlines()
    picked = []
    for i, line in enumerate(lines):
        if line.startswith("!"):
            picked.append(line)
            for follow in lines[i + 1 : i + 6]:
                if follow.strip():
                    picked.append(follow)
                if follow.startswith("l."):
                    break
    if not picked:
        picked = [ln for ln in lines if ln.strip()][-12:]
    return "\n".join(picked[:limit])


def compile_pdf(tex: str, timeout: float = 120) -> bytes:
    """Run pdflatex on `tex` in a temporary directory; the PDF's bytes."""
    exe = shutil.which("pdflatex")
    if exe is None:
        raise ToolMissing("pdflatex")
    with tempfile.TemporaryDirectory(prefix="normscope-tex-") as tmp:
        Path(tmp, "diagram.tex").write_text(tex, encoding="utf-8")
        try:
            proc = subprocess.run(
                [exe, "-no-shell-escape", "-interaction=nonstopmode", "-halt-on-error", "diagram.tex"],
                cwd=tmp,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=timeout,
                env={**os.environ, "openout_any": "p"},
            )
        except subprocess.TimeoutExpired:
            raise NormscopeError(f"pdflatex did not finish within {timeout:g} s") from None
        pdf = Path(tmp, "diagram.pdf")
        if proc.returncode != 0 or not pdf.exists():
            log_file = Path(tmp, "diagram.log")
            log = log_file.read_text(errors="replace") if log_file.exists() else proc.stdout.decode(errors="replace")
            raise NormscopeError(f"pdflatex failed (exit status {proc.returncode}):\n{log_errors(log)}")
        return pdf.read_bytes()


def pdf_to_png(pdf: bytes, dpi: int = 150, timeout: float = 60) -> bytes:
    exe = shutil.which("pdftoppm")
    if exe is None:
        raise ToolMissing("pdftoppm", "poppler-utils")
    with tempfile.TemporaryDirectory(prefix="normscope-png-") as tmp:
        Path(tmp, "diagram.pdf").write_bytes(pdf)
        try:
            proc = subprocess.run(
                [exe, "-png", "-r", str(dpi), "-singlefile", "diagram.pdf", "diagram"],
                cwd=tmp,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=timeout,
            )
        except subprocess.TimeoutExpired:
            raise NormscopeError(f"pdftoppm did not finish within {timeout:g} s") from None
        png = Path(tmp, "diagram.png")
        if proc.returncode != 0 or not png.exists():
            raise NormscopeError("pdftoppm failed: " + proc.stderr.decode(errors="replace").strip())
        return png.read_bytes()
