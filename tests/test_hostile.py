"""Hostile and careless input: every case ends with one line naming what is wrong and
where, exit status 2, no traceback, and nothing quoted from a file that is not a model
description. Each row runs the real command line in a subprocess (bounded by a timeout,
so a hang fails the test instead of the suite)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

EX = Path(__file__).resolve().parents[1] / "examples"
HEAD = "name: m\ninput: [3, 8, 8]\nclasses: 2\n"
TAIL = "  - flatten\n  - dense\n"


def _alias_bomb() -> str:
    lines = ["a0: &a0 [1, 1, 1, 1, 1, 1, 1, 1, 1]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 10)]
    return "\n".join(lines) + "\nname: bomb\n"


# name -> (files to write {name: str or bytes}, description argument, expected words)
DESCRIPTIONS = {
    "alias-bomb": ({"d.yml": _alias_bomb()}, "d.yml", ["d.yml:2", "aliases", "not allowed"]),
    "huge-repeat": (
        {"d.yml": HEAD + "layers:\n  - repeat: {times: 100000000, layers: [dropout: 0.1]}\n" + TAIL},
        "d.yml",
        ["d.yml:5", "times: 100000000", "10,000 layers"],
    ),
    "nested-repeats": (
        {
            "d.yml": HEAD
            + "layers:\n  - repeat: {times: 200, layers: [{repeat: {times: 200, layers: [dropout: 0.1]}}]}\n"
            + TAIL
        },
        "d.yml",
        ["d.yml:5", "more than 10,000 layers"],
    ),
    "block-uses-itself": (
        {"d.yml": HEAD + "blocks:\n  a: {layers: [a]}\nlayers:\n  - a\n" + TAIL},
        "d.yml",
        ["block 'a' uses itself (a -> a)"],
    ),
    "blocks-use-each-other": (
        {"d.yml": HEAD + "blocks:\n  a: {layers: [b]}\n  b: {layers: [a]}\nlayers:\n  - a\n" + TAIL},
        "d.yml",
        ["block 'a' uses itself (a -> b -> a)"],
    ),
    "deep-nesting": (
        {"d.yml": "name: m\nvars: {x: " + "[" * 3000 + "]" * 3000 + "}\n"},
        "d.yml",
        ["d.yml:2", "nests deeper than 64 levels"],
    ),
    "latin-1": ({"d.yml": "name: caf\xe9\nlayers: []\n".encode("latin-1")}, "d.yml", ["d.yml", "not UTF-8"]),
    "utf-16": ({"d.yml": HEAD.encode("utf-16")}, "d.yml", ["d.yml", "not UTF-8"]),
    "extends-symlink-loop": (
        {"d.yml": "extends: loop1.yml\n", "@loop1.yml": "loop2.yml", "@loop2.yml": "loop1.yml"},
        "d.yml",
        ["d.yml:1", "symbolic link loop"],
    ),
    "extends-device": ({"d.yml": "extends: /dev/zero\n"}, "d.yml", ["/dev/zero", "not a regular file"]),
    "extends-foreign-file": (
        {
            "secret": "root:$y$j9T$SALTSALT$SECRETHASH:19700:0:99999:7:::\ndaemon:*:19700:0:99999:7:::\n",
            "d.yml": "extends: secret\n",
        },
        "d.yml",
        ["secret", "not a model description"],
    ),
    "directory": ({"sub/x": "x"}, "sub", ["sub", "not a regular file"]),
    "missing": ({}, "nope.yml", ["nope.yml", "file not found"]),
}


def _write(tmp_path: Path, files: dict) -> None:
    for name, content in files.items():
        if name.startswith("@"):
            os.symlink(content, tmp_path / name[1:])
            continue
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))


def run_cli(args, cwd, timeout=60):
    return subprocess.run(
        [sys.executable, "-m", "normscope", *args], cwd=cwd, capture_output=True, text=True, timeout=timeout
    )


@pytest.mark.parametrize("case", list(DESCRIPTIONS))
@pytest.mark.parametrize("command", ["check", "summary"])
def test_hostile_descriptions(case, command, tmp_path):
    files, target, words = DESCRIPTIONS[case]
    _write(tmp_path, files)
    out = run_cli([command, target], tmp_path)
    assert out.returncode == 2, (out.stdout, out.stderr)
    assert "Traceback" not in out.stderr + out.stdout
    message = " ".join(out.stderr.split())
    assert message.startswith("error:"), message
    for word in words:
        assert word in message, (word, message)
    assert "SECRETHASH" not in out.stderr + out.stdout


HUGE = HEAD.replace("input: [3, 8, 8]", "input: [3, 32, 32]") + "layers:\n  - conv: 1000000000000\n" + TAIL


def test_a_model_too_large_for_memory_is_reported_and_refused(tmp_path):
    """summary warns with the size in bytes; check --strict and train refuse; train
    allocates nothing and leaves no run directory."""
    _write(tmp_path, {"d.yml": HUGE})
    summary = run_cli(["summary", "d.yml"], tmp_path)
    assert summary.returncode == 0, summary.stderr
    text = " ".join((summary.stdout + summary.stderr).split())
    assert "d.yml:7" in text and "7,312,000,000,000,008 bytes (float32)" in text and "cannot be built here" in text
    assert "largest layer: 'dense1'" in text
    strict = run_cli(["check", "--strict", "d.yml"], tmp_path)
    assert strict.returncode == 2 and "Traceback" not in strict.stderr
    train = run_cli(
        ["train", "d.yml", "--data", "synthetic:train=60,test=20,size=32,classes=2", "--out", "runs"], tmp_path
    )
    assert train.returncode == 2 and "Traceback" not in train.stderr, train.stderr
    assert "cannot be built here" in " ".join(train.stderr.split())
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


INJECTION = (
    "name: '<x> { a [URL=\"javascript:alert(1)\"] } digraph <y>'\ninput: [3, 8, 8]\nclasses: 2\nlayers:\n"
    "  - conv: {filters: 4, caption: 'c\" URL=\"javascript:alert(2)'}\n  - flatten\n  - dense\n"
)


def test_names_and_captions_are_inert_in_dot_and_svg(tmp_path):
    """A DOT payload in the model name or a caption stays text: the SVG has no link anywhere,
    and the graph is the model's (three layers and the input), not an injected one."""
    import xml.etree.ElementTree as ET

    _write(tmp_path, {"d.yml": INJECTION})
    out = run_cli(["draw", "d.yml", "-f", "dot,svg", "-o", "out"], tmp_path)
    assert out.returncode == 0, out.stderr
    (svg,) = (tmp_path / "out").glob("*.svg")
    (dot,) = (tmp_path / "out").glob("*.dot")
    assert dot.read_text().splitlines()[1] == "digraph model {"
    root = ET.parse(svg).getroot()
    hrefs = [v for el in root.iter() for k, v in el.attrib.items() if k.endswith("href")]
    assert hrefs == []
    titles = [el.text for el in root.iter("{http://www.w3.org/2000/svg}title")]
    assert sorted(t for t in titles if "->" not in t) == ["conv1", "dense1", "flatten1", "input", "model"]
    assert svg.parent == tmp_path / "out" and len(list((tmp_path / "out").iterdir())) == 2


@pytest.mark.parametrize("command", [["study", str(EX / "perceptnet.yml"), "--data", "synthetic"], ["compare", "."]])
def test_out_that_is_a_file_is_refused_before_work(command, tmp_path):
    _write(tmp_path, {"afile": "x"})
    out = run_cli([*command, "--out", "afile"], tmp_path)
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    assert "--out afile: afile exists and is not a directory" in " ".join(out.stderr.split())
    assert (tmp_path / "afile").read_text() == "x"
