"""The model language: expansion features and error messages (file, line, layer)."""

import json
import textwrap
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from normscope import SpecError, build_graph, build_model, load_spec, norms, summarize
from normscope.cli import app
from normscope.report.reference import markdown
from normscope.spec import DRAW_ARGS, TRAIN_ARGS, check_value, validate_mapping

BASE = """\
name: toy
input: [3, 16, 16]
classes: 5
defaults: {activation: relu, padding: same}
layers:
"""


def write(tmp_path, body, name="m.yml", base=BASE, top=""):
    path = tmp_path / name
    path.write_text(base.replace("layers:\n", top + "layers:\n") + textwrap.dedent(body))
    return path


def error_of(path, **kw):
    with pytest.raises(SpecError) as info:
        build_graph(load_spec(path, **kw))
    return info.value


def test_sequential_auto_names_and_shapes(tmp_path):
    p = write(
        tmp_path,
        """\
      - conv: 8
      - norm
      - maxpool: 2
      - flatten
      - dense
    """,
    )
    g = build_graph(load_spec(p, norm="bn"))
    assert g.graph["order"] == ["input", "conv1", "bn1", "pool1", "flatten1", "dense1"]
    assert g.nodes["pool1"]["shape"] == (8, 8, 8)
    assert g.nodes["dense1"]["args"]["units"] == 5  # the classifier follows `classes`
    assert g.nodes["dense1"]["role"] == "classifier"
    g = build_graph(load_spec(p, norm="none"))  # the slot disappears
    assert "bn1" not in g and g.nodes["pool1"]["inputs"] == ["conv1"]


@pytest.mark.parametrize(
    "body,line,needle",
    [
        ("  - convv: 8\n  - flatten\n  - dense\n", 6, "unknown layer kind 'convv'; did you mean 'conv'?"),
        (
            "  - conv: {filtres: 8}\n  - flatten\n  - dense\n",
            6,
            "unknown key 'filtres' for conv; did you mean 'filters'?",
        ),
        ("  - conv: {kernel: 3}\n  - flatten\n  - dense\n", 6, "conv needs key 'filters'"),
        ("  - conv: {filters: eight}\n  - flatten\n  - dense\n", 6, "key 'filters' must be an integer, got 'eight'"),
        ("  - conv: {filters: 8, activation: rleu}\n  - flatten\n  - dense\n", 6, "did you mean 'relu'"),
        ("  - conv: 8\n  - flatten\n  - dense: {from: conv9}\n", 8, "refers to a layer that does not exist: 'conv9'"),
        (
            "  - conv: {filters: 8, kernel: 20, padding: valid}\n  - flatten\n  - dense\n",
            6,
            "kernel 20×20 is larger than its 16×16 input",
        ),
        (
            "  - conv: {name: a, filters: 4}\n  - maxpool: 2\n  - concat: {from: [a, pool1]}\n  - flatten\n  - dense\n",
            8,
            "concat of different spatial sizes",
        ),
        (
            "  - conv: {name: a, filters: 4}\n  - conv: 6\n  - add: {from: [a, conv1]}\n  - flatten\n  - dense\n",
            8,
            "add of different shapes",
        ),
        ("  - conv: 8\n  - dense\n", 7, "dense needs a flat input"),
        ("  - conv: 8\n  - flatten\n  - dense: 7\n", 8, "the classifier has 7 units but the model has 5 classes"),
        (
            "  - conv: {name: a, filters: 4}\n  - conv: {name: b, filters: 4, from: input}\n  - flatten\n  - dense\n",
            6,
            "nothing uses this layer's output",
        ),
        ("  - conv: 8\n  - flatten\n  - dense\n  - conv: 3\n", 9, "the last layer must be the classifier"),
    ],
)
def test_errors_name_file_line_and_layer(tmp_path, body, line, needle):
    p = write(tmp_path, body)
    err = error_of(p)
    assert needle in str(err)
    assert err.file == p and err.line == line
    assert str(err).startswith(f"{p}:{line}: ")


def test_cycle_is_reported(tmp_path):
    p = write(
        tmp_path,
        """\
      - conv: {name: a, filters: 4, from: b}
      - conv: {name: b, filters: 4}
      - flatten
      - dense
    """,
    )
    err = error_of(p)
    assert "cycle" in str(err) and "a" in str(err) and "b" in str(err)


def test_yaml_syntax_error_has_the_line(tmp_path):
    p = tmp_path / "bad.yml"
    p.write_text("name: x\nlayers:\n  - conv: {filters: 8\n  - dense\n")
    err = error_of(p)
    assert "YAML syntax error" in str(err) and "line 3" in str(err)


def test_missing_extends_and_unknown_top_key(tmp_path):
    p = tmp_path / "v.yml"
    p.write_text("extends: nowhere.yml\nnorm: bn\n")
    err = error_of(p)
    assert "`extends` file not found: nowhere.yml" in str(err) and err.line == 1
    p.write_text("nmae: x\n")
    assert "unknown top-level key 'nmae'; did you mean 'name'?" in str(error_of(p))


def test_duplicate_keys_and_names(tmp_path):
    p = tmp_path / "d.yml"
    p.write_text(BASE + "  - conv: {filters: 8, filters: 9}\n  - flatten\n  - dense\n")
    assert "duplicate key 'filters'" in str(error_of(p))
    p = write(tmp_path, "  - conv: {name: a, filters: 4}\n  - conv: {name: a, filters: 4}\n  - flatten\n  - dense\n")
    assert "duplicate layer name 'a'" in str(error_of(p))


def test_extends_variants_vars_and_overrides(tmp_path):
    write(
        tmp_path,
        """\
      - conv: 8
      - norm
      - dropout: ${drop}
      - flatten
      - dense
    """,
        name="base.yml",
        top="vars: {drop: 0.1}\nvariants:\n  gdn_v2: {norm_options: {gdn: {kernel: 1}}}\n",
    )
    child = tmp_path / "child.yml"
    child.write_text("extends: base.yml\nnorm: gdn\nreuse: true\nvars: {drop: 0.3}\n")
    spec = load_spec(child)
    assert spec.name == "child" and spec.family == "toy" and spec.norm == "gdn" and spec.reuse
    layers = {layer.name: layer for layer in spec.layers}
    assert layers["dropout1"].args["rate"] == 0.3
    assert layers["gdn1"].args["kernel"] == 1  # from the gdn_v2 variant section
    assert load_spec(child, reuse=False).layers[1].args["kernel"] is None
    assert load_spec(child, norm="in").name == "toy_in_v2"
    g = build_graph(spec)
    assert [x.name for x in g.graph["classifier"]] == ["features", "gdn1.denominator"]
    assert [(u, v) for u, v, k in g.edges(data="kind") if k == "tap"] == [("gdn1", "reuse")]


def test_blocks_repeat_and_branches(tmp_path):
    p = write(
        tmp_path,
        """\
      - repeat: {times: 2, layers: [conv: 4]}
      - mix: {name: m1, a: 3}
      - add:
          branches:
            - [conv: 5]
            - []
      - flatten
      - dense
    """,
        top="""\
blocks:
  mix:
    args: {a: null, b: 2}
    layers:
      - concat:
          branches:
            - [conv: {name: left, filters: "${a}"}]
            - [conv: "${b}"]
""",
    )
    g = build_graph(load_spec(p))
    assert g.nodes["m1_left"]["shape"] == (3, 16, 16)
    assert g.nodes["concat1"]["shape"] == (5, 16, 16)
    assert g.nodes["concat1"]["inputs"] == ["m1_left", "conv3"]
    assert g.nodes["add1"]["inputs"] == ["conv4", "concat1"]
    assert g.nodes["conv1"]["shape"] == g.nodes["conv2"]["shape"] == (4, 16, 16)


def test_block_argument_errors(tmp_path):
    top = 'blocks:\n  b:\n    args: {a: null}\n    layers: [conv: "${a}"]\n'
    p = write(tmp_path, "  - b: {}\n  - flatten\n  - dense\n", top=top)
    assert "block 'b' needs argument 'a'" in str(error_of(p))
    p = write(tmp_path, "  - b: {aa: 3}\n  - flatten\n  - dense\n", top=top)
    assert "unknown argument 'aa' for block 'b'" in str(error_of(p))
    p = write(tmp_path, "  - conv: ${nope}\n  - flatten\n  - dense\n")
    assert "unknown variable ${nope}" in str(error_of(p))


def test_train_section_is_validated(tmp_path):
    p = write(tmp_path, "  - flatten\n  - dense\n", top="train: {optimiser: adam}\n")
    assert "unknown key 'optimiser' in `train`; did you mean 'optimizer'?" in str(error_of(p))
    p = write(tmp_path, "  - flatten\n  - dense\n", top="train: {optimizer: adamm}\n")
    assert "did you mean 'adam'" in str(error_of(p))
    p = write(tmp_path, "  - flatten\n  - dense\n", top="train: {epochs: 3, lr: 0.1}\n")
    train = load_spec(p).train
    assert train["epochs"] == 3 and train["lr"] == 0.1 and train["optimizer"] == "adam"


def test_instancenorm_on_flat_input_and_gdn_too_small(tmp_path):
    p = write(tmp_path, "  - flatten\n  - norm\n  - dense\n")
    assert "instancenorm needs an image input" in str(error_of(p, norm="in"))
    assert summarize(p, norm="bn").total_params > 0  # BatchNorm works on flat features
    p = write(tmp_path, "  - maxpool: 16\n  - norm\n  - flatten\n  - dense\n")
    assert "reflect padding" in str(error_of(p, norm="gdn"))


def test_auto_input_needs_data(tmp_path):
    p = write(tmp_path, "  - flatten\n  - dense\n", base=BASE.replace("input: [3, 16, 16]", "input: auto"))
    assert "`input` is auto" in str(error_of(p))
    assert build_graph(load_spec(p, input_shape=(1, 8, 8))).nodes["flatten1"]["shape"] == (64,)


def test_cli_exits_2_without_traceback(tmp_path):
    p = write(tmp_path, "  - convv: 8\n  - flatten\n  - dense\n")
    result = CliRunner().invoke(app, ["summary", str(p)])
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert "unknown layer kind 'convv'" in result.output
    missing = CliRunner().invoke(app, ["summary", str(tmp_path / "none.yml")])
    assert missing.exit_code == 2 and "file not found" in missing.output


def test_reference_docs_are_current():
    text = (Path(__file__).resolve().parents[1] / "docs" / "dsl.md").read_text()
    assert markdown() in text, "docs/dsl.md is stale: run python scripts/gen_dsl_docs.py"
    for kind in ("conv", "dense", "norm", "gdn", "concat", "add", "globalavgpool"):
        assert f"### `{kind}`" in text


def test_classifier_does_not_inherit_the_default_activation(tmp_path):
    p = write(tmp_path, "  - flatten\n  - dense: 8\n  - dense\n")  # defaults: activation relu
    spec = load_spec(p)
    assert spec.layers[1].args["activation"] == "relu"
    assert spec.layers[2].args["activation"] is None
    torch.manual_seed(0)
    out = build_model(p)(torch.randn(16, 3, 16, 16))
    assert (out < 0).any()  # logits, not ReLU(logits)
    p = write(tmp_path, "  - flatten\n  - dense: {activation: tanh}\n")
    assert "its logits pass through it" in load_spec(p).warnings[0]


def test_summary_and_variants_json():
    result = CliRunner().invoke(app, ["summary", "examples/vgg16.yml", "--norm", "in", "--reuse", "--json"])
    assert result.exit_code == 0
    data = json.loads(result.output)
    assert data["total_params"] == data["trainable_params"] + data["non_trainable_params"] == 577_812
    assert list(data["classifier_inputs"])[:3] == ["features", "in1.mean", "in1.var"]
    assert sum(data["classifier_inputs"].values()) == 992
    assert [layer["name"] for layer in data["layers"]][-2:] == ["reuse", "classifier"]
    rows = json.loads(CliRunner().invoke(app, ["variants", "examples/perceptnet.yml", "--json"]).output)
    assert [r["variant"] for r in rows] == list(norms.ALL_VARIANTS)  # every variant of the table, in order
    assert [(r["variant"], r["classifier_input"]) for r in rows][:7] == [
        ("none", 128),
        ("bn", 128),
        ("bn_v2", 408),
        ("in", 128),
        ("in_v2", 408),
        ("gdn", 128),
        ("gdn_v2", 268),
    ]
    keras = CliRunner().invoke(app, ["summary", "examples/basenet.yml", "--keras"]).output
    assert "conv1 (conv)" in keras and "(None, 28, 28, 6)" in keras and "Total params: 24,197" in keras


def test_value_and_section_checks():
    lr = check_value("lr", 1, TRAIN_ARGS["lr"], {})
    assert lr == 1.0 and isinstance(lr, float)  # an int passes for a float
    with pytest.raises(SpecError, match=r"^f:3: key 'x': 'adan' is not one of .*; did you mean 'adam'\?$"):
        check_value("x", "adan", TRAIN_ARGS["optimizer"], {"file": "f", "line": 3})
    assert validate_mapping("draw", None, DRAW_ARGS, "f", 1) == {
        "abbreviations": False,
        "legend": True,
        "title": None,
        "scale": 1.0,
        "expand": False,
    }
    with pytest.raises(SpecError, match="unknown key 'legnd' in `draw`; did you mean 'legend'"):
        validate_mapping("draw", {"legnd": True}, DRAW_ARGS, "f", 1)
