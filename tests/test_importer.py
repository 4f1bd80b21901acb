"""`normscope import`: torchvision models traced into descriptions that build the same
network (parameter count, logits after loading the module's state_dict), norm slots that
take other variants, unsupported operations refused naming them and where."""

import textwrap

import pytest
import torch
import torchvision
import yaml
from typer.testing import CliRunner

from normscope.cli import app
from normscope.model.build import build_model
from normscope.model.importer import ImportFailed, describe
from normscope.model.weights import load_weights

runner = CliRunner()


@pytest.mark.parametrize("name", ["alexnet", "vgg11", "vgg16", "resnet18", "resnet50", "googlenet", "densenet121"])
def test_round_trip_counts_and_logits(name, tmp_path):
    torch.manual_seed(0)
    doc = describe(f"torchvision:{name}", (3, 64, 64))
    path = tmp_path / f"{name}.yml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    ref = torchvision.models.get_model(name, weights=None).eval()  # GoogLeNet: with its two aux heads
    for m in ref.modules():  # non-trivial norm statistics and biases, so that a wrong pairing shows
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.05, 0.05), m.running_var.uniform_(0.9, 1.1), m.bias.data.uniform_(-0.02, 0.02)
    model = build_model(path).eval()
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in ref.parameters())
    report = load_weights(model, ref.state_dict())
    assert not report.initialized and not report.unused
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        ours, theirs = model(x), ref(x)
    ours = ours[0] if isinstance(ours, tuple) else ours
    assert theirs.std() > 1e-3 and torch.allclose(ours, theirs, atol=1e-4, rtol=0)
    if name == "googlenet":  # traced in training mode: the auxiliary classifiers are in the description
        aux = [ly["dense"].get("aux") for ly in doc["layers"] if "dense" in ly]
        assert aux == [None, 0.3, None, 0.3, None]
    slots = sum("norm" in layer for layer in doc["layers"])
    assert slots == sum(isinstance(m, torch.nn.BatchNorm2d) for m in ref.modules()) and doc["norm"] == (
        "bn" if slots else "none"
    )


def test_imported_model_takes_other_variants_and_draws(tmp_path):
    result = runner.invoke(
        app, ["draw", "torchvision:resnet18", "--norm", "in", "--reuse", "-o", str(tmp_path), "-f", "tex"]
    )
    assert result.exit_code == 0, result.output
    tex = (tmp_path / "resnet18_in_v2.tex").read_text()
    assert tex.count("\\NSReuseArrow{ns-in}") >= 16  # one per drawn InstanceNorm (repeats folded)
    result = runner.invoke(app, ["summary", "torchvision:resnet18", "--input", "3,64,64", "--json"])
    assert result.exit_code == 0 and '"total_params": 11699112' in result.output
    result = runner.invoke(app, ["import", "torchvision:resnet18", "-o", str(tmp_path / "r18.yml")])
    assert result.exit_code == 0 and yaml.safe_load((tmp_path / "r18.yml").read_text())["classes"] == 1000


def test_unsupported_operation_named_with_place(tmp_path, monkeypatch):
    (tmp_path / "oddnets.py").write_text(
        textwrap.dedent(
            """
            import torch
            from torch import nn

            class Net(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.conv = nn.Conv2d(3, 4, 3)
                    self.fc = nn.Linear(4, 2)

                def forward(self, x):
                    x = torch.sin(self.conv(x))
                    return self.fc(x.mean((2, 3)))
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ImportFailed, match=r"oddnets:Net, call_function sin \(node sin\): operation sin has no kind"):
        describe("oddnets:Net")
    result = runner.invoke(app, ["import", "oddnets:Net", "--input", "3,8,8"])
    assert result.exit_code == 2 and "operation sin" in result.output and "Traceback" not in result.output
    result = runner.invoke(app, ["import", "torchvision:nosuchnet"])
    assert result.exit_code == 2 and "torchvision has no model 'nosuchnet'" in result.output
