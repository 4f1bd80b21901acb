"""A built model to a file others run without normscope: ONNX (onnxruntime, ...) or a
torch.export program (.pt2). The logits are the output; with `with_stats`, the reused
statistics (B, reused size), in the classifier input's order, are a second one. The
model is exported in evaluation mode with a variable batch size.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from normscope.errors import NormscopeError
from normscope.fileio import atomic_write
from normscope.model.build import NormscopeModel

FORMATS = ("onnx", "pt2")
OPSET = 17


class ExportError(NormscopeError):
    """The model cannot be exported as asked."""


class Exported(nn.Module):
    """The module that is exported: logits, or (logits, reused statistics)."""

    def __init__(self, model: NormscopeModel, with_stats: bool):
        super().__init__()
        self.model = model
        self.with_stats = with_stats

    def forward(self, x: torch.Tensor):
        return self.model.forward_with_stats(x) if self.with_stats else self.model(x)


@dataclass(frozen=True)
class ExportResult:
    path: Path
    format: str
    outputs: tuple[str, ...]  # "logits"[, "statistics"]
    input_shape: tuple[int, ...]  # (C, H, W); the batch is the first axis, of any size


def _onnx_bytes(module: Exported, x: torch.Tensor, outputs: tuple[str, ...]) -> bytes:
    try:
        import onnx  # noqa: F401  (torch.onnx needs it)
    except ImportError:
        raise ExportError("--format onnx needs the onnx package: pip install 'normscope[onnx]'") from None
    buffer = io.BytesIO()
    dynamic = {name: {0: "batch"} for name in ("image", *outputs)}
    torch.onnx.export(
        module,
        (x,),
        buffer,
        input_names=["image"],
        output_names=list(outputs),
        dynamic_axes=dynamic,
        opset_version=OPSET,
        dynamo=False,  # the TorchScript exporter: no onnxscript needed
        # its constant folding drops a node InstanceNorm needs (perceptnet_in: "not a graph
        # input"); onnxruntime folds constants itself when it loads the model
        do_constant_folding=False,
    )
    return buffer.getvalue()


def _pt2_bytes(module: Exported, x: torch.Tensor) -> bytes:
    batch = torch.export.Dim("batch", min=1, max=1 << 16)
    program = torch.export.export(module, (x,), dynamic_shapes=({0: batch},))
    buffer = io.BytesIO()
    torch.export.save(program, buffer)
    return buffer.getvalue()


def export_model(model: NormscopeModel, path: str | Path, fmt: str = "onnx", with_stats: bool = False) -> ExportResult:
    """Write `model` (on the CPU, in evaluation mode) to `path` as ONNX or a .pt2 program."""
    if fmt not in FORMATS:
        raise ExportError(f"unknown format '{fmt}': choose from {', '.join(FORMATS)}")
    if with_stats and not model.classifier_input.reused:
        raise ExportError(
            f"--with-stats: {model.graph.graph['name']} reuses no statistics "
            "(export a reuse variant, e.g. --norm bn --reuse)"
        )
    model = model.cpu().eval()
    shape = tuple(model.graph.graph["input_shape"])
    x = torch.randn(2, *shape, generator=torch.Generator().manual_seed(0))
    outputs = ("logits", "statistics") if with_stats else ("logits",)
    module = Exported(model, with_stats).eval()
    with torch.no_grad():
        data = _onnx_bytes(module, x, outputs) if fmt == "onnx" else _pt2_bytes(module, x)
    atomic_write(Path(path), data)
    return ExportResult(Path(path), fmt, outputs, shape)
