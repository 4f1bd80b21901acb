"""Diagnostics: what the graph of a description says will go wrong before it is trained.

Each diagnostic names the file and line and the layers involved. Four cases, all read from
the graph and the facts of the norms table (`normscope.norms`):

- ``constant-pooled``: a normalization whose every output channel has the same spatial
  mean for every image (`Norm.fixed_channel_mean`: InstanceNorm, where it is β) reaches a
  global average pooling only through layers that map such means to such means (in
  evaluation): per-position affine maps (1×1 convolutions without activation, BatchNorm,
  identity activations, dropout), zero padding, and average pooling that tiles the map
  exactly; the pooled features are then the same for every image.
- ``one-pixel``: a normalization applied to 1×1 maps where that is degenerate
  (`Norm.one_pixel`: InstanceNorm's variance is 0 and its output β).
- ``batch-stats-reuse``: reused BatchNorm statistics are shared by the batch in training
  and constant in evaluation (`Norm.stats_per_image` is false).
- ``nothing-reused``: reuse is on but no norm layer is tapped.

docs/diagnostics.md explains each with the thesis' examples. No torch here.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import networkx as nx

from normscope import norms
from normscope.keys import pair
from normscope.model.graph import build_graph
from normscope.model.kinds import effective_kernel, padding4, pool_window
from normscope.spec import load_spec

CODES = ("too-large", "constant-pooled", "one-pixel", "batch-stats-reuse", "nothing-reused")

# kinds that map a per-channel spatial mean that is the same for every image to another such
# mean: dropout (identity in evaluation), zero padding (a fixed factor), BatchNorm (a
# per-channel affine map in evaluation); `activation`, `conv` and `avgpool` only in the
# cases of _keeps_mean
_MEAN_KEEPING = {"dropout", "zeropad", norms.NORMS["bn"].long}
_IDENTITY_ACTIVATIONS = (None, "linear", "none")


@dataclass(frozen=True)
class Diagnostic:
    code: str  # one of CODES
    message: str
    layers: tuple[str, ...]  # the layers involved, in network order
    file: str | None = None
    line: int | None = None

    @property
    def where(self) -> str:
        if not self.file:
            return ""
        return f"{_display_path(self.file)}:{self.line}" if self.line else _display_path(self.file)

    def __str__(self) -> str:
        return f"{self.where}: {self.message}" if self.where else self.message

    def to_dict(self) -> dict:
        return {
            "code": self.code,
            "file": _display_path(self.file) if self.file else None,
            "line": self.line,
            "layers": list(self.layers),
            "message": self.message,
        }


def _display_path(file: str) -> str:
    """The path relative to the working directory when it lies below it."""
    try:
        return str(Path(file).resolve().relative_to(Path(os.getcwd()).resolve()))
    except ValueError:
        return str(file)


def diagnose(graph: nx.DiGraph) -> list[Diagnostic]:
    """Every diagnostic of a built graph: those of each norm layer in network order, then
    those of the reuse."""
    out: list[Diagnostic] = too_large(graph)
    for name in graph.graph["order"]:
        node = graph.nodes[name]
        norm = norms.norm_of_kind(node["kind"])
        if norm is None:
            continue
        one_pixel = _one_pixel(graph, name, norm)
        if one_pixel:
            out.append(one_pixel)
        elif norm.per_image and norm.fixed_channel_mean(node["shape"][0], norm.resolve(node["args"])):
            out.extend(_constant_pooled(graph, name, norm))
    out.extend(_batch_stats_reuse(graph))
    out.extend(_nothing_reused(graph))
    return out


def diagnose_description(source, norm: str | None = None, reuse: bool | None = None) -> list[Diagnostic] | None:
    """The diagnostics of a description's variant; None when its input shape or class
    count is `auto` (they come from the data: pass them to `summary` to see the diagnostics)."""
    spec = load_spec(source, norm=norm, reuse=reuse)
    if spec.input_shape is None or spec.classes is None:
        return None
    return diagnose(build_graph(spec))


def _loc(node: dict) -> dict:
    return {"file": node["file"], "line": node["line"]}


def _at(graph: nx.DiGraph, name: str) -> str:
    """'gap1 (examples/perceptnet.yml:33)'."""
    node = graph.nodes[name]
    where = Diagnostic("", "", (), **_loc(node)).where
    return f"{name} ({where})" if where else name


def _one_pixel(graph: nx.DiGraph, name: str, norm: norms.Norm) -> Diagnostic | None:
    node = graph.nodes[name]
    shape = node["in_shapes"][0]
    problem = norm.one_pixel(shape, norm.resolve(node["args"]), bool(node["tapped"]))
    if problem is None:
        return None
    size = "1×1 maps" if len(shape) == 3 else "a flat input (one value per channel)"
    return Diagnostic(
        "one-pixel",
        f"{norm.display} '{name}' normalizes {size} ({shape[0]} channels): {problem}",
        (name,),
        **_loc(node),
    )


def _keeps_mean(node: dict) -> bool:
    """The layer maps a per-channel spatial mean that is the same for every image to another."""
    kind, args = node["kind"], node["args"]
    if kind in _MEAN_KEEPING:
        return True
    if kind == "activation":
        return args["fn"] in _IDENTITY_ACTIVATIONS
    if kind == "conv":
        # a 1×1 convolution at stride 1 without activation is the same affine map A·x + b at
        # every position (b where it pads), so each output channel's spatial mean is an affine
        # function of the input's channel means; stride > 1 samples positions, and a larger
        # kernel or any activation mixes in more than the means
        one = effective_kernel(args) == (1, 1) and pair(args["stride"]) == (1, 1)
        return one and args["activation"] in _IDENTITY_ACTIVATIONS
    if kind == "avgpool":
        # windows that tile the map exactly (stride = size, no padding added, the size
        # dividing H and W) average to its mean; overlapping, partial or padded windows do not
        k, stride = pool_window(args)
        _, h, w = node["in_shapes"][0]
        no_pad = not any(padding4(args["padding"], (h, w), k, stride))
        return no_pad and k == stride and h % k[0] == 0 and w % k[1] == 0
    return False


def _mean_keeping_paths(graph: nx.DiGraph, start: str) -> list[list[str]]:
    """Paths start -> ... -> globalavgpool through mean-keeping layers only (data edges)."""
    found, stack = [], [[start]]
    while stack:
        path = stack.pop()
        for nxt in sorted(graph.successors(path[-1])):
            if graph.edges[path[-1], nxt]["kind"] != "data":
                continue
            node = graph.nodes[nxt]
            if node["kind"] == "globalavgpool":
                found.append(path + [nxt])
            elif _keeps_mean(node):
                stack.append(path + [nxt])
    order = graph.graph["order"]
    return sorted(found, key=lambda p: order.index(p[-1]))


def _constant_pooled(graph: nx.DiGraph, name: str, norm: norms.Norm) -> list[Diagnostic]:
    out = []
    node = graph.nodes[name]
    tapped = [g.source for g in graph.graph["classifier"].reused]
    for path in _mean_keeping_paths(graph, name):
        pool = path[-1]
        via = f" (through {', '.join(path[1:-1])}, which keep it)" if len(path) > 2 else ""
        message = (
            f"{norm.display} '{name}' feeds the global average pooling {_at(graph, pool)}{via}: the spatial "
            f"mean of each channel {norm.display} outputs is its β, the same for every image, so the "
            f"{graph.nodes[pool]['shape'][0]} pooled features are one constant vector in evaluation (dropout noise in "
            "training) and tell the classifier nothing about the image"
        )
        if tapped:
            message += f"; only the reused statistics ({', '.join(dict.fromkeys(tapped))}) carry information"
        else:
            message += " (the thesis' PerceptNet_IN stayed at chance)"
            if node["slot"]:
                message += f"; reuse (variant {norm.short}_v2) gives the classifier each image's statistics"
        out.append(Diagnostic("constant-pooled", message, tuple(path), **_loc(node)))
    return out


def _batch_stats_reuse(graph: nx.DiGraph) -> list[Diagnostic]:
    """One diagnostic for all tapped norm layers whose reused statistics are not per image."""
    shared = []
    for layer in dict.fromkeys(g.source for g in graph.graph["classifier"].reused):
        node = graph.nodes[layer]
        if not norms.norm_of_kind(node["kind"]).stats_per_image(node["args"]):
            shared.append(layer)
    if not shared:
        return []
    display = norms.norm_of_kind(graph.nodes[shared[0]]["kind"]).display
    message = (
        f"the classifier reuses {display} statistics of {', '.join(shared)}: in training they are the batch's "
        "(the same for every image of a batch, changing from batch to batch), in evaluation the running "
        "statistics (one constant vector). From them the classifier can learn only a bias shared by the "
        "whole batch, nothing that tells one image from another; in evaluation that bias is replaced by a "
        "fixed one it never saw in training (the thesis' VGG16_BN_v2: test loss 53,879). "
        "`normscope eval RUN --bn-stats batch` measures the gap; `norm_options: {bn: {reuse_stats: image}}` "
        "reuses each image's own statistics instead"
    )
    return [Diagnostic("batch-stats-reuse", message, tuple(shared), **_loc(graph.nodes[shared[0]]))]


def _nothing_reused(graph: nx.DiGraph) -> list[Diagnostic]:
    if not graph.graph["reuse"] or graph.graph["classifier"].reused:
        return []
    output = graph.graph["output"]
    why = (
        "the model's norm is none, so its `norm` slots are empty"
        if graph.graph["norm"] == "none"
        else "the description has no `norm` slots (fixed normalization layers are not reused)"
    )
    return [
        Diagnostic(
            "nothing-reused",
            f"reuse is on but {why}: the classifier '{output}' sees the features only",
            (output,),
            **_loc(graph.nodes[output]),
        )
    ]


def memory_bytes() -> int | None:
    """This machine's physical memory, or None where the system does not say."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def weight_bytes(graph: nx.DiGraph) -> int:
    """The model's weights in float32 (4 bytes each), trainable and not."""
    return 4 * sum(sum(graph.nodes[n]["params"]) for n in graph.graph["order"])


def too_large(graph: nx.DiGraph) -> list[Diagnostic]:
    """Weights that alone would not fit in this machine's memory: the model cannot be built here."""
    size, memory = weight_bytes(graph), memory_bytes()
    if memory is None or size <= memory:
        return []
    biggest = max(graph.graph["order"], key=lambda n: sum(graph.nodes[n]["params"]))
    message = (
        f"the weights alone take {size:,} bytes (float32), more than this machine's {memory:,} bytes of memory: "
        f"the model cannot be built here (largest layer: '{biggest}')"
    )
    return [Diagnostic("too-large", message, (biggest,), **_loc(graph.nodes[biggest]))]
