"""Graph -> torch.nn.Module.

The module runs the graph's topological order. Norm layers return (output, named statistics);
the reuse node concatenates the features and the statistics by group name, in the order
of the graph's classifier input (`normscope.model.groups`), right before the classifier.
"""

from __future__ import annotations

import fnmatch
from collections import OrderedDict

import networkx as nx
import torch
from torch import nn

from normscope.errors import SpecError
from normscope.model.graph import build_graph, norm_short
from normscope.model.init import init_weights
from normscope.model.modules import build_module
from normscope.model.weights import load_weights
from normscope.spec import ModelSpec, load_spec


class NormscopeModel(nn.Module):
    """A compiled model description.

    Attributes: `classifier_input` (the typed classifier groups: name, source layer,
    statistic, slice), `classifier_groups` (ordered group name -> slice of the classifier input),
    `graph` (the networkx DAG it was built from), `spec` (the ModelSpec).
    """

    def __init__(self, graph: nx.DiGraph, spec: ModelSpec | None = None):
        super().__init__()
        self.graph = graph
        self.spec = spec
        self.layers = nn.ModuleDict()
        self.output_name = graph.graph["output"]
        self.aux_weights = OrderedDict(graph.graph["aux"])
        plan = []
        for name in graph.graph["order"]:
            node = graph.nodes[name]
            kind = node["kind"]
            if kind == "input":
                continue
            module = build_module(kind, node["args"], node["in_shapes"], final=name == self.output_name)
            if module is not None:
                self.layers[name] = module
            op = "norm" if norm_short(kind) else kind if kind in ("reuse", "concat", "add") else "module"
            plan.append((name, op, tuple(node["inputs"]), bool(node.get("tapped")), module is not None))
        self._plan = plan
        self.classifier_input = graph.graph["classifier"]
        self.classifier_groups = self.classifier_input.slices()
        self.classifier_input_size = self.classifier_input.size

    @property
    def classifier(self) -> nn.Linear:
        """The final dense layer; its input is the features plus any reused statistics."""
        return self.layers[self.output_name]

    def _run(
        self, x: torch.Tensor, want_aux: bool, start: str = "input", stop: str | None = None, want_stats: bool = False
    ):
        """The plan from the output of ``start`` (``x``) on; the output of ``stop`` when given;
        with ``want_stats`` the logits and the reused statistics."""
        values = {start: x}
        stats: dict[str, torch.Tensor] = {}  # classifier group name -> statistic
        reused: list[torch.Tensor] = []
        first = 0 if start == "input" else [p[0] for p in self._plan].index(start) + 1
        for name, op, inputs, tapped, has_module in self._plan[first:]:
            if op == "norm":
                y, layer_stats = self.layers[name](values[inputs[0]])
                if tapped:
                    stats.update((f"{name}.{stat}", t) for stat, t in layer_stats)
            elif op == "reuse":
                features = values[inputs[0]]
                reused = [stats[g.name].to(features.dtype) for g in self.classifier_input.reused]
                y = torch.cat([features, *reused], dim=1)
            elif op == "concat":
                y = torch.cat([values[i] for i in inputs], dim=1)
            elif op == "add":
                y = values[inputs[0]]
                for i in inputs[1:]:
                    y = y + values[i]
                if has_module:
                    y = self.layers[name](y)
            else:
                y = self.layers[name](values[inputs[0]])
            values[name] = y
            if name == stop:
                return y
        logits = values[self.output_name]
        if want_stats:
            return logits, torch.cat(reused, dim=1) if reused else logits.new_zeros(logits.shape[0], 0)
        if want_aux:
            return logits, [(values[n], w) for n, w in self.aux_weights.items()]
        return logits

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of the classifier (softmax belongs to the loss)."""
        return self._run(x, want_aux=False)

    def forward_with_stats(self, x: torch.Tensor):
        """(logits, the reused statistics (B, reused size) in the classifier input's order)."""
        return self._run(x, want_aux=False, want_stats=True)

    def forward_with_aux(self, x: torch.Tensor):
        """(logits, [(aux_logits, loss_weight), ...]) for models with auxiliary classifiers."""
        return self._run(x, want_aux=True)

    def output_of(self, x: torch.Tensor, layer: str) -> torch.Tensor:
        """The output of ``layer`` for input ``x``; the layers after it do not run."""
        return self._run(x, want_aux=False, stop=layer)

    def forward_from(self, layer: str, value: torch.Tensor, want_aux: bool = False):
        """The logits (``want_aux``: and the auxiliary ones) from ``layer``'s output ``value``: the
        layers up to ``layer`` do not run (valid when nothing after it reads an earlier layer)."""
        return self._run(value, want_aux=want_aux, start=layer)


def apply_freeze(model: NormscopeModel, patterns) -> list[str]:
    """Freeze the parameters of layers whose name matches a pattern; returns the frozen names."""
    frozen = []
    for name, module in model.layers.items():
        if any(fnmatch.fnmatchcase(name, p) for p in patterns or []):
            for p in module.parameters():
                p.requires_grad_(False)
            frozen.append(name)
    return frozen


def build_model(
    source,
    norm: str | None = None,
    reuse: bool | None = None,
    input_shape: tuple | None = None,
    classes: int | None = None,
    freeze: bool = True,
    seed: int | None = None,
    weights=None,
    norm_options: dict | None = None,
) -> NormscopeModel:
    """Compile a model description (path or ModelSpec) to a torch.nn.Module.

    `norm` / `reuse` override the description's; `input_shape` (C, H, W) and `classes`
    fill in `auto` values (or override). Layers named in `train.freeze` are frozen.
    `seed` draws every convolution and dense layer from (seed, layer name), so variants
    built with one seed share the initial weights of the layers they share
    (`normscope.model.init`); None keeps torch's global random state.
    `weights` (a .pth state dict, `torchvision:NAME` or a state dict) loads pretrained weights
    by structure (`normscope.model.weights`); `model.weights_report` says what was loaded and
    what kept its initialization. (A description's `train.weights` is loaded by the trainer.)
    `norm_options` override the description's, e.g. {"bn": {"reuse_stats": "image"}}.
    """
    spec = load_spec(
        source, norm=norm, reuse=reuse, input_shape=input_shape, classes=classes, norm_options=norm_options
    )
    graph = build_graph(spec)
    model = NormscopeModel(graph, spec)
    if seed is not None:
        init_weights(model, seed)
    model.weights_report = load_weights(model, weights) if weights is not None else None
    if freeze and spec.train.get("freeze"):
        frozen = apply_freeze(model, spec.train["freeze"])
        for pattern in spec.train["freeze"]:
            if not any(fnmatch.fnmatchcase(n, pattern) for n in frozen):
                raise SpecError(f"train.freeze: no layer with parameters matches '{pattern}'", file=spec.file)
    return model


def count_params(module: nn.Module) -> tuple[int, int]:
    """(trainable, non_trainable) in the Keras convention: frozen parameters and weight
    buffers (running mean/var) are non-trainable; BN's step counter is not a weight."""
    trainable = sum(p.numel() for p in module.parameters() if p.requires_grad)
    frozen = sum(p.numel() for p in module.parameters() if not p.requires_grad)
    buffers = sum(b.numel() for n, b in module.named_buffers() if not n.endswith("num_batches_tracked"))
    return trainable, frozen + buffers
