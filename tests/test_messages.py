"""What a user reads: every error of a description at once (check), a layer kind's own keys
only, and messages that say what they mean (shapes once, reuse with norm none, a model too
large to build, flags in help, thresholded metrics labelled)."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import typer.main
from typer.testing import CliRunner

from normscope import load_spec
from normscope.cli import app
from normscope.errors import SpecError
from normscope.spec.lint import lint

EX = Path(__file__).resolve().parents[1] / "examples"
HEAD = "name: m\ninput: [4, 8, 8]\nclasses: 3\n"


def write(tmp_path: Path, text: str, name: str = "m.yml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def run_cli(args, cwd, timeout=120):
    return subprocess.run(
        [sys.executable, "-m", "normscope", *args], cwd=cwd, capture_output=True, text=True, timeout=timeout
    )


# --------------------------------------------------------------------------- #
# a layer kind takes its own keys only
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize(
    "layer,words",
    [
        ("batchnorm: {kernel: 3, groups: 4}", "unknown key 'kernel' for batchnorm"),
        ("batchnorm: {moementum: 0.9}", "unknown key 'moementum' for batchnorm; did you mean 'momentum'?"),
        ("instancenorm: {groups: 2}", "unknown key 'groups' for instancenorm"),
        ("groupnorm: {reuse_stats: image}", "unknown key 'reuse_stats' for groupnorm"),
        ("gdn: {eps: 0.1}", "unknown key 'eps' for gdn"),
        ("conv: {filters: 4, rate: 0.5}", "unknown key 'rate' for conv"),
    ],
)
def test_a_kind_refuses_another_kinds_keys(tmp_path, layer, words):
    path = write(tmp_path, HEAD + f"layers:\n  - conv: 4\n  - {layer}\n  - flatten\n  - dense\n")
    with pytest.raises(SpecError) as err:
        load_spec(path)
    assert err.value.line == 6 and words in str(err.value)
    key = words.split("'")[1]
    owners = {"kernel": "gdn", "groups": "groupnorm", "reuse_stats": "batchnorm", "eps": "batchnorm, instancenorm"}
    if key in owners:
        assert f"; {key} is an option of {owners[key]}" in str(err.value)


def test_a_slot_takes_every_norms_options_and_norm_options_their_own(tmp_path):
    """A `norm` slot becomes any normalization, so it takes all their options; a
    `norm_options:` entry is for one normalization and takes its options only."""
    slot = write(tmp_path, HEAD + "layers:\n  - conv: 4\n  - norm: {kernel: 1, groups: 2}\n  - flatten\n  - dense\n")
    for norm in ("bn", "in", "gdn", "gn"):
        load_spec(slot, norm=norm)
    assert load_spec(slot, norm="gdn").layers[1].args["kernel"] == 1
    wrong = write(tmp_path, HEAD + "norm_options:\n  in: {momentum: 0.9}\nlayers:\n  - norm\n  - flatten\n  - dense\n")
    with pytest.raises(SpecError) as err:
        load_spec(wrong, norm="in")
    assert err.value.line == 5
    assert "unknown in option 'momentum' (in takes: eps); momentum is an option of batchnorm" in str(err.value)


# --------------------------------------------------------------------------- #
# check: every independent error
# --------------------------------------------------------------------------- #

MANY = HEAD + textwrap.dedent("""\
    reuse: maybe
    train: {epochz: 3}
    blocks:
      pair:
        args: {f: null}
        layers:
          - conv: {filters: "${f}", kernal: 3}
    layers:
      - pair: {f: 4}
      - pair: {f: 8}
      - batchnorm: {name: bn, kernel: 3}
      - convv: {name: wrong, filters: 5}
      - dropout: {rate: 2, from: wrong}
      - maxpool: {from: bn}
      - flatten
      - dense
    """)


def test_lint_finds_every_independent_error_in_file_order(tmp_path):
    """Each section and each layer is checked on its own: six errors, each once (the block's
    bad key fails in both copies), none caused by another (the layers that refer to the
    failed 'bn' and 'wrong' get no error of their own)."""
    path = write(tmp_path, MANY)
    found = lint(path)
    assert [(e.line, e.message.split(";")[0].split(" (")[0]) for e in found] == [
        (4, "`reuse` must be true or false"),
        (5, "unknown key 'epochz' in `train`"),
        (10, "unknown key 'kernal' for conv"),
        (14, "unknown key 'kernel' for batchnorm"),
        (15, "unknown layer kind 'convv'"),
        (16, "key 'rate' must be in [0, 1), got 2"),
    ]
    assert all(e.file == path for e in found)
    with pytest.raises(SpecError) as err:  # load_spec still stops at the first
        load_spec(path)
    assert err.value.line == 4
    assert lint(EX / "inception_cifar.yml") == []


def test_check_reports_all_errors_of_all_files(tmp_path):
    write(tmp_path, MANY, "many.yml")
    write(tmp_path, HEAD + "layers:\n  - conv: {name: a, filters: 4}\n  - maxpool: {name: p}\n"
          "  - concat: {from: [a, p]}\n  - flatten\n  - dense\n", "shapes.yml")  # fmt: skip
    out = run_cli(["check", "many.yml", str(EX / "lenet5.yml"), "shapes.yml"], tmp_path)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    lines = out.stderr.splitlines()
    where = [line.split(": ", 2)[1] for line in lines if line.startswith("error: many.yml:")]
    assert where == ["many.yml:4", "many.yml:5", "many.yml:10", "many.yml:14", "many.yml:15", "many.yml:16"]
    assert out.stdout.startswith("ok ") and "lenet5.yml" in out.stdout
    # the shape error names its input shapes once
    (shape,) = [line for line in lines if line.startswith("error: shapes.yml:")]
    assert shape == "error: shapes.yml:7: layer 'concat1': concat of different spatial sizes: (4, 6, 6), (4, 3, 3)"
    assert lines[-1] == "error: 2 of 3 files failed: many.yml (6 errors), shapes.yml (1 error)"


# --------------------------------------------------------------------------- #
# messages
# --------------------------------------------------------------------------- #


def test_reuse_with_norm_none_says_there_is_nothing_to_reuse():
    r = CliRunner().invoke(app, ["summary", str(EX / "perceptnet.yml"), "--norm", "none", "--reuse", "--json"])
    assert r.exit_code == 0, r.output
    (warning,) = json.loads(r.output)["warnings"]
    assert warning == "reuse with norm none has nothing to reuse: the classifier sees features only"
    assert "no norm slots" not in r.output
    assert load_spec(EX / "perceptnet.yml", norm="bn", reuse=True).warnings == []


def test_check_does_not_call_a_model_too_large_to_build_ok(tmp_path):
    huge = write(tmp_path, HEAD + "layers:\n  - conv: 1000000000000\n  - flatten\n  - dense\n")
    r = CliRunner().invoke(app, ["check", str(huge), str(EX / "lenet5.yml")])
    assert r.exit_code == 0, r.output
    first, *rest = r.output.splitlines()
    assert first.startswith(f"valid, too large to build here {huge}: m, ") and "ok" not in first.split(":")[0]
    assert any("cannot be built here" in line for line in rest)
    assert any(line.startswith("ok ") and "lenet5.yml" in line for line in rest)


def _commands(cmd, path=()):
    yield path, cmd
    for name, sub in getattr(cmd, "commands", {}).items():
        yield from _commands(sub, (*path, name))


def test_help_shows_flags_as_flags_and_explains_every_option():
    """No flag is shown as taking a <bool> value; every option has a help text (except the
    study command's, being rewritten elsewhere); `data info` names every data set."""
    runner = CliRunner()
    for path, cmd in _commands(typer.main.get_command(app)):
        r = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "200"})
        assert r.exit_code == 0 and "<bool>" not in r.output, path
        if path[:1] != ("study",):
            bare = [p.opts for p in cmd.params if p.param_type_name == "option" and not p.help]
            assert bare == [], (path, bare)
    r = runner.invoke(app, ["variants", "--help"], env={"COLUMNS": "200"})
    assert "--json" in r.output and "print one JSON list" in r.output
    r = runner.invoke(app, ["data", "info", "--help"], env={"COLUMNS": "200"})
    assert "cifar100-coarse" in r.output


def test_thresholded_metrics_are_labelled(tmp_path):
    """A model that never reaches p > 0.5 has precision and recall 0 beside a non-zero
    accuracy: the run's summary line and `eval` say these are the thresholded metrics."""
    write(
        tmp_path,
        "name: flat\ninput: auto\nclasses: auto\nlayers:\n  - flatten\n  - dense: {name: classifier}\n"
        "train: {epochs: 1, lr: 1.0e-9, batch_size: 32}\n",
        "flat.yml",
    )
    data = "synthetic:train=64,test=100,size=8,classes=10"
    runner = CliRunner()
    args = ["train", str(tmp_path / "flat.yml"), "--data", data, "--out", str(tmp_path / "runs"), "--progress", "log"]
    out = runner.invoke(app, args)
    assert out.exit_code == 0, out.output
    assert "precision@0.5 0.0000  recall@0.5 0.0000" in out.output
    assert "Keras' Precision() and Recall(): they count the (image, class) pairs whose probability exceeds 0.5" in (
        " ".join(out.output.split())
    )
    (run,) = (tmp_path / "runs").iterdir()
    r = runner.invoke(app, ["eval", str(run)], env={"COLUMNS": "200"})
    assert r.exit_code == 0, r.output
    assert "precision@0.5" in r.output and "recall@0.5" in r.output
