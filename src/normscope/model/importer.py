"""A PyTorch model in, a model description out: the module is traced with torch.fx and every
operation becomes a layer of the language, normalization layers becoming `norm` slots (so
that `--norm in --reuse` works on the imported model) with the module's epsilon and momentum.

    normscope import torchvision:resnet18 -o resnet18.yml
    normscope import mypkg.models:Net --input 3,32,32

`torchvision:NAME` builds torchvision's model without weights; `module.path:Attr` imports the
module and calls Attr (a class or a function) without arguments. The module is traced in
evaluation mode; an operation the language has no kind for is refused, naming it and where.
"""

from __future__ import annotations

import importlib
import operator
import re
from dataclasses import dataclass

import torch
import torch.fx
import torch.nn.functional as F
from torch import nn

from normscope.errors import NormscopeError

ACTIVATIONS = {
    nn.ReLU: "relu",
    nn.ReLU6: "relu6",
    nn.GELU: "gelu",
    nn.SiLU: "silu",
    nn.Tanh: "tanh",
    nn.Sigmoid: "sigmoid",
}
FUNCTIONS = {
    F.relu: "relu",
    torch.relu: "relu",
    F.gelu: "gelu",
    F.silu: "silu",
    torch.tanh: "tanh",
    torch.sigmoid: "sigmoid",
}
ADDS = (operator.add, operator.iadd, torch.add)


class ImportFailed(NormscopeError):
    """The module cannot be described in the language."""


def is_model_source(source) -> bool:
    """`torchvision:NAME` or `module.path:Attr` (not a file)."""
    return isinstance(source, str) and re.fullmatch(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*(\.\w+)?", source) is not None


def instantiate(source: str) -> nn.Module:
    module_name, _, attr = source.partition(":")
    if module_name == "torchvision":
        import torchvision

        try:
            return torchvision.models.get_model(attr, weights=None)
        except ValueError:
            raise ImportFailed(f"torchvision has no model '{attr}'") from None
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ImportFailed(f"cannot import {module_name}: {exc}") from None
    if not hasattr(module, attr):
        raise ImportFailed(f"{module_name} has no attribute '{attr}'")
    obj = getattr(module, attr)
    model = obj() if callable(obj) and not isinstance(obj, nn.Module) else obj
    if not isinstance(model, nn.Module):
        raise ImportFailed(f"{source} is not an nn.Module (nor makes one without arguments)")
    return model


@dataclass
class _Ctx:
    model: nn.Module
    source: str
    layers: list
    names: dict  # fx node -> layer name


def _name(target: str) -> str:
    return re.sub(r"\W", "_", str(target))


def _pair(v, what: str, where: str) -> int:
    if isinstance(v, int):
        return v
    if isinstance(v, (tuple, list)) and len(set(v)) == 1:
        return int(v[0])
    raise ImportFailed(f"{where}: {what} {tuple(v)} differs between height and width (not in the language)")


def _module_layer(mod: nn.Module, where: str) -> tuple[str, dict]:
    if isinstance(mod, nn.Conv2d):
        if mod.padding_mode != "zeros" or isinstance(mod.padding, str):
            raise ImportFailed(f"{where}: convolution padding {mod.padding!r} ({mod.padding_mode}) is not supported")
        return "conv", {
            "filters": mod.out_channels,
            "kernel": list(mod.kernel_size) if mod.kernel_size[0] != mod.kernel_size[1] else mod.kernel_size[0],
            "stride": _pair(mod.stride, "stride", where),
            "padding": _pair(mod.padding, "padding", where),
            "dilation": _pair(mod.dilation, "dilation", where),
            "groups": mod.groups,
            "bias": mod.bias is not None,
            "activation": None,
        }
    if isinstance(mod, nn.BatchNorm2d):
        return "norm", {"eps": float(mod.eps), "momentum": round(1.0 - (mod.momentum or 0.1), 6)}
    if isinstance(mod, nn.Linear):
        return "dense", {"units": mod.out_features, "bias": mod.bias is not None, "activation": None}
    if type(mod) in ACTIVATIONS:
        return "activation", {"fn": ACTIVATIONS[type(mod)]}
    if isinstance(mod, nn.Dropout):
        return "dropout", {"rate": float(mod.p)}
    if isinstance(mod, (nn.MaxPool2d, nn.AvgPool2d)):
        return _pool_layer(mod, where)
    if isinstance(mod, nn.AdaptiveAvgPool2d):
        return _adaptive(mod.output_size, where)
    if isinstance(mod, nn.Flatten):
        return "flatten", {}
    if isinstance(mod, nn.Identity):
        return "identity", {}
    raise ImportFailed(f"{where}: module {type(mod).__name__} has no kind in the language")


def _pool_layer(mod: nn.Module, where: str) -> tuple[str, dict]:
    kind = "maxpool" if isinstance(mod, nn.MaxPool2d) else "avgpool"
    if kind == "avgpool" and (mod.ceil_mode or not mod.count_include_pad and mod.padding):
        raise ImportFailed(f"{where}: average pooling with ceil_mode or count_include_pad=False is not supported")
    if kind == "maxpool" and _pair(mod.dilation, "pool dilation", where) != 1:
        raise ImportFailed(f"{where}: dilated max pooling is not supported")
    args = {
        "size": _pair(mod.kernel_size, "pool size", where),
        "stride": _pair(mod.stride or mod.kernel_size, "pool stride", where),
        "padding": _pair(mod.padding, "pool padding", where),
    }
    if mod.ceil_mode:
        args["ceil"] = True
    return kind, args


def _adaptive(size, where: str) -> tuple[str, dict]:
    size = (size, size) if isinstance(size, int) else tuple(size)
    if None in size:
        raise ImportFailed(f"{where}: adaptive pooling that keeps a dimension ({size}) is not supported")
    if size == (1, 1):
        return "globalavgpool", {}
    return "adaptiveavgpool", {"size": size[0] if size[0] == size[1] else list(size)}


def _function_layer(node: torch.fx.Node, where: str) -> tuple[str, dict]:
    fn, args = node.target, node.args
    if fn in FUNCTIONS:
        return "activation", {"fn": FUNCTIONS[fn]}
    if fn in ADDS and len(args) == 2 and all(isinstance(a, torch.fx.Node) for a in args):
        return "add", {}
    if fn is torch.flatten and args[1:2] in ((1,), ()) and node.kwargs.get("start_dim", 1) == 1:
        return "flatten", {}
    if fn is torch.cat and node.kwargs.get("dim", args[1] if len(args) > 1 else 0) == 1:
        return "concat", {}
    if fn is F.adaptive_avg_pool2d:
        return _adaptive(args[1] if len(args) > 1 else node.kwargs["output_size"], where)
    if fn is F.dropout:
        return "dropout", {"rate": float(args[1] if len(args) > 1 else node.kwargs.get("p", 0.5))}
    name = getattr(fn, "__name__", str(fn))
    raise ImportFailed(f"{where}: operation {name} has no kind in the language")


def _inputs(node: torch.fx.Node, names: dict) -> list[str]:
    args = node.args[0] if node.target is torch.cat else node.args
    if node.op == "call_module":
        args = node.args[:1]
    elif node.target in FUNCTIONS or node.target in (torch.flatten, F.adaptive_avg_pool2d, F.dropout):
        args = node.args[:1]
    return [names[a] for a in args if isinstance(a, torch.fx.Node)]


AUX_WEIGHT = 0.3  # the loss weight of an auxiliary classifier (GoogLeNet's, Szegedy et al. 2015)


def describe(source: str, input_shape: tuple[int, int, int] | None = None) -> dict:
    """The description (plain data, ready for YAML) of the model `source` names. It is traced
    in training mode, so that auxiliary classifiers (GoogLeNet's) appear: a model that returns
    several outputs has its first as the classifier and the others as `aux` heads."""
    model = instantiate(source).train()
    try:
        traced = torch.fx.symbolic_trace(model)
    except Exception as exc:  # torch.fx raises many kinds on data-dependent control flow
        raise ImportFailed(f"{source} cannot be traced with torch.fx: {str(exc).splitlines()[0]}") from None
    layers, names, outputs = _layers(source, traced)
    outputs = [outputs] if isinstance(outputs, torch.fx.Node) else list(outputs or [])
    heads = [names.get(o) for o in outputs if isinstance(o, torch.fx.Node)]
    by_name = {next(iter(layer.values()))["name"]: layer for layer in layers}
    if not heads or len(heads) != len(outputs) or any("dense" not in by_name.get(h, {}) for h in heads):
        raise ImportFailed(f"{source}: every output of the model must come from an nn.Linear classifier")
    layers = _heads_last(layers, heads)
    for head in heads[1:]:
        by_name[head]["dense"]["aux"] = AUX_WEIGHT
    classes = by_name[heads[0]]["dense"].pop("units")
    return {
        "name": _name(source.partition(":")[2]).lower(),
        "description": f"imported from {source} by normscope import (torch.fx)",
        "input": list(input_shape or (3, 224, 224)),
        "classes": classes,
        "norm": "bn" if any("norm" in layer for layer in layers) else "none",
        "layers": _simplify(layers),
    }


def _layers(source: str, traced: torch.fx.GraphModule) -> tuple[list[dict], dict, object]:
    """One layer per traced operation (identities and one-input concatenations dropped)."""
    modules = dict(traced.named_modules())
    names, layers, outputs, used = {}, [], None, set()
    for node in traced.graph.nodes:
        if node.op == "placeholder":
            if names:
                raise ImportFailed(f"{source}: more than one input ({node.name})")
            names[node] = "input"
            continue
        if node.op == "output":
            outputs = outputs if _is_tuple_node(node.args[0]) else node.args[0]
            continue
        if node.op == "call_function" and isinstance(node.target, type) and issubclass(node.target, tuple):
            outputs = tuple(node.args) + tuple(node.kwargs.values())  # a named tuple of outputs
            continue
        target = getattr(node.target, "__name__", node.target)
        where = f"{source}, {node.op} {target} (node {node.name})"
        if node.op == "call_module":
            kind, args = _module_layer(modules[node.target], where)
            name = _name(node.target)
        elif node.op == "call_function":
            kind, args = _function_layer(node, where)
            name = _name(node.name)
        else:
            raise ImportFailed(f"{where}: {node.op} is not supported")
        inputs = _inputs(node, names)
        if kind == "identity" or (kind == "concat" and len(inputs) == 1):  # a concatenation of one
            names[node] = inputs[0]
            continue
        if name in used:  # a module called twice (a ReLU used at two places)
            name = _name(node.name)
        used.add(name)
        names[node] = name
        layers.append({kind: {"name": name, "from": inputs if len(inputs) > 1 else inputs[0], **args}})
    return layers, names, outputs


def _is_tuple_node(value) -> bool:
    return isinstance(value, torch.fx.Node) and isinstance(value.target, type) and issubclass(value.target, tuple)


def _heads_last(layers: list[dict], heads: list[str]) -> list[dict]:
    """The layers only auxiliary heads use go after the main network, in their order, and the
    classifier last: the order in which torchvision registers them (weights load by order)."""
    main, need = set(), {heads[0]}
    for layer in reversed(layers):
        args = next(iter(layer.values()))
        if args["name"] in need:
            main.add(args["name"])
            src = args["from"]
            need.update([src] if isinstance(src, str) else src)
    body = [ly for ly in layers if next(iter(ly.values()))["name"] in main]
    aux = [ly for ly in layers if next(iter(ly.values()))["name"] not in main]
    return body[:-1] + aux + body[-1:]


def _simplify(layers: list[dict]) -> list[dict]:
    """`from` left out where it is the previous layer; a concatenation of everything an
    earlier one concatenated plus more reads that one (a dense block's growing inputs)."""
    cats: dict[tuple, str] = {}
    prev = "input"
    for layer in layers:
        ((kind, args),) = layer.items()
        src = args["from"]
        if kind == "concat":
            srcs = list(src)
            for k in range(len(srcs) - 1, 1, -1):
                if tuple(srcs[:k]) in cats:
                    srcs = [cats[tuple(srcs[:k])], *srcs[k:]]
                    break
            cats[tuple(src)] = args["name"]
            args["from"] = src = srcs
        if src == prev or src == [prev]:
            del args["from"]
        prev = args["name"]
    return layers
