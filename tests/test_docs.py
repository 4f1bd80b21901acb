"""The documentation stands alone: every file that a doc (docs/*.md, README.md), the
source (docstrings, comments, messages), a script or an example names is in the
repository, and nothing points outside it."""

import re
from pathlib import Path

import pytest

from normscope.study.tables import FILES as COMPARE_FILES

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted(
    [ROOT / "README.md", *ROOT.glob("docs/*.md"), *ROOT.glob("examples/*.yml")]
    + [*ROOT.glob("src/normscope/**/*.py"), *ROOT.glob("scripts/*.py"), *ROOT.glob("benchmarks/*.py")]
)
EXTENSIONS = "md|py|yml|yaml|json|csv|tex|png|pdf|svg|sh|toml|txt|npz|pt|pth|gz"
# a relative path with at least one folder: `docs/results.md`, `gallery/vgg16.png`
WITH_FOLDER = re.compile(rf"(?<![\w$<{{/.~:-])((?:[\w.-]+/)+[\w.*-]+\.(?:{EXTENSIONS}))(?![\w/])")
# a bare Markdown file name: `thesis.md`
BARE_MARKDOWN = re.compile(r"(?<![\w/.-])([\w-]+\.md)\b")
# places of a user's own data and outputs in command examples (`runs/<run>/best.pt`,
# `npz:path/x.npz`, the birds set's `lists/train.txt`): not files of the repository
USER_PLACES = ("runs/", "studies/", "RUN/", "path/", "lists/", "clipart/", "tuned/")
OUTSIDE = ("/work/", "shared/reference", "../shared")


def _named(text: str) -> set[str]:
    return {m.group(1) for m in WITH_FOLDER.finditer(text)} | {m.group(1) for m in BARE_MARKDOWN.finditer(text)}


def _exists(name: str, source: Path) -> bool:
    """In the repository: from its root, the naming file's folder, the package (the
    source names modules as `model/kinds.py`) or examples/; a glob matches something."""
    for base in (ROOT, source.parent, ROOT / "src" / "normscope", ROOT / "examples", ROOT / "docs"):
        if any(base.glob(name)) if "*" in name else (base / name).is_file():
            return True
    return False


def test_the_pattern_finds_what_it_must():
    text = "see docs/thesis.md and study.md, `model/kinds.py`, runs/<run>/best.pt, https://x.org/a/b.md"
    assert _named(text) == {"docs/thesis.md", "study.md", "model/kinds.py"}


@pytest.mark.parametrize("source", SOURCES, ids=[str(p.relative_to(ROOT)) for p in SOURCES])
def test_every_named_file_is_in_the_repository(source):
    text = source.read_text()
    assert not [o for o in OUTSIDE if o in text], f"{source.name} points outside the repository"
    missing = sorted(
        name
        for name in _named(text)
        if not name.startswith(USER_PLACES) and name not in COMPARE_FILES and not _exists(name, source)
    )
    assert missing == [], f"{source.relative_to(ROOT)} names files that are not in the repository: {missing}"


def _thesis_tables() -> dict[str, dict[str, tuple]]:
    """docs/thesis.md's two result tables: family -> variant -> (loss, precision, recall, AUC, accuracy)."""
    out: dict[str, dict[str, tuple]] = {}
    for line in (ROOT / "docs" / "thesis.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 6 or not re.fullmatch(r"(VGG16|PerceptNet)(_[A-Za-z]+)*(_v2)?", cells[0]):
            continue
        family, _, variant = cells[0].lower().partition("_")
        out.setdefault(family, {})[variant or "none"] = tuple(float(c) for c in cells[1:])
    return out


def test_the_thesis_numbers_in_the_docs_are_the_ones_compare_shows():
    from normscope.study.thesis import THESIS

    assert _thesis_tables() == THESIS
