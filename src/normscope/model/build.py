"""Graph -> torch.nn.Module.

The module runs the graph's topological order. Norm layers return (output, stats); the
stats of tapped norm layers are concatenated after the flattened features, in network
order, at the reuse node right before the classifier.
"""

from __future__ import annotations

import fnmatch
from collections import OrderedDict

import networkx as nx
import torch
from torch import nn

from normscope.spec import ModelSpec, load_spec
from normscope.model.graph import build_graph, norm_short
from normscope.model.layers import NORM_LAYERS
from normscope.model.registry import GDN_DEFAULT_KERNEL, KINDS

NORM_DEFAULTS = {"bn": {"eps": 1e-3, "momentum": 0.99}, "in": {"eps": 1e-3},
                 "gdn": {"kernel": GDN_DEFAULT_KERNEL, "trainable_exponents": False}}


def _norm_module(short: str, channels: int, args: dict) -> nn.Module:
    opts = {k: (args.get(k) if args.get(k) is not None else v) for k, v in NORM_DEFAULTS[short].items()}
    if short == "gdn":
        return NORM_LAYERS["gdn"](channels, kernel_size=opts["kernel"],
                                  trainable_exponents=opts["trainable_exponents"])
    if short == "bn":       # Keras' momentum 0.99 is torch's 0.01
        return NORM_LAYERS["bn"](channels, eps=opts["eps"], momentum=1.0 - opts["momentum"])
    return NORM_LAYERS[short](channels, eps=opts["eps"])


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
            short = norm_short(kind)
            if short:
                self.layers[name] = _norm_module(short, node["shape"][0], node["args"])
                op = "norm"
            elif kind in ("reuse", "concat"):
                op = kind
            else:
                module = KINDS[kind].build(node["args"], node["in_shapes"], final=name == self.output_name)
                if module is not None:
                    self.layers[name] = module
                op = "add" if kind == "add" else "module"
            plan.append((name, op, tuple(node["inputs"]), bool(node.get("tapped")),
                         name in self.layers))
        self._plan = plan
        self.classifier_input = graph.graph["classifier"]
        self.classifier_groups = self.classifier_input.slices()
        self.classifier_input_size = self.classifier_input.size

    @property
    def classifier(self) -> nn.Linear:
        """The final dense layer; its input is the features plus any reused statistics."""
        return self.layers[self.output_name]

    def _run(self, x: torch.Tensor, want_aux: bool):
        values = {"input": x}
        stats: list[torch.Tensor] = []
        for name, op, inputs, tapped, has_module in self._plan:
            if op == "norm":
                y, layer_stats = self.layers[name](values[inputs[0]])
                if tapped:
                    stats.extend(t for _, t in layer_stats)
            elif op == "reuse":
                features = values[inputs[0]]
                y = torch.cat([features] + [s.to(features.dtype) for s in stats], dim=1)
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
        logits = values[self.output_name]
        if want_aux:
            return logits, [(values[n], w) for n, w in self.aux_weights.items()]
        return logits

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of the classifier (softmax belongs to the loss)."""
        return self._run(x, want_aux=False)

    def forward_with_aux(self, x: torch.Tensor):
        """(logits, [(aux_logits, loss_weight), ...]) for models with auxiliary classifiers."""
        return self._run(x, want_aux=True)


def apply_freeze(model: NormscopeModel, patterns) -> list[str]:
    """Freeze the parameters of layers whose name matches a pattern; returns the frozen names."""
    frozen = []
    for name, module in model.layers.items():
        if any(fnmatch.fnmatchcase(name, p) for p in patterns or []):
            for p in module.parameters():
                p.requires_grad_(False)
            frozen.append(name)
    return frozen


def build_model(source, norm: str | None = None, reuse: bool | None = None,
                input_shape: tuple | None = None, classes: int | None = None,
                freeze: bool = True) -> NormscopeModel:
    """Compile a model description (path or ModelSpec) to a torch.nn.Module.

    `norm` / `reuse` override the description's; `input_shape` (C, H, W) and `classes`
    fill in `auto` values (or override). Layers named in `train.freeze` are frozen.
    """
    spec = load_spec(source, norm=norm, reuse=reuse, input_shape=input_shape, classes=classes)
    graph = build_graph(spec)
    model = NormscopeModel(graph, spec)
    if freeze and spec.train.get("freeze"):
        from normscope.errors import SpecError
        frozen = apply_freeze(model, spec.train["freeze"])
        for pattern in spec.train["freeze"]:
            if not any(fnmatch.fnmatchcase(n, pattern) for n in frozen):
                raise SpecError(f"train.freeze: no layer with parameters matches '{pattern}'",
                                file=spec.file)
    return model


def count_params(module: nn.Module) -> tuple[int, int]:
    """(trainable, non_trainable) in the Keras convention: frozen parameters and weight
    buffers (running mean/var) are non-trainable; BN's step counter is not a weight."""
    trainable = sum(p.numel() for p in module.parameters() if p.requires_grad)
    frozen = sum(p.numel() for p in module.parameters() if not p.requires_grad)
    buffers = sum(b.numel() for n, b in module.named_buffers() if not n.endswith("num_batches_tracked"))
    return trainable, frozen + buffers
