"""ModelSpec -> networkx DAG with an inferred shape on every node.

Every backend reads the same facts from here:
- node attributes: kind, args, shape (output, no batch axis), in_shapes, inputs (ordered),
  role (input | layer | norm | reuse | classifier | aux), slot, tapped, caption,
  abbrev, file, line, params ((trainable, non-trainable) weights, Keras convention),
  frozen (weights named in train.freeze);
- edges: kind "data" (with `order`) or "tap" (a norm layer's statistics into the reuse node);
- graph attributes: name, family, norm, reuse, input_shape, classes, order (topological),
  output, aux [(name, weight)], classifier (a ClassifierInput: the typed classifier groups).
"""

from __future__ import annotations

import fnmatch

import networkx as nx

from normscope import norms
from normscope.errors import SpecError
from normscope.model.groups import ClassifierInput
from normscope.model.kinds import KINDS, ShapeError, fmt_shape
from normscope.spec import ModelSpec, load_spec

REUSE_NODE = "reuse"


def norm_short(kind: str) -> str | None:
    norm = norms.norm_of_kind(kind)
    return norm.short if norm else None


def build_graph(spec: ModelSpec | str, **overrides) -> nx.DiGraph:
    """Compile a description (path or ModelSpec) to the graph every backend reads."""
    spec = load_spec(spec, **overrides) if overrides or not isinstance(spec, ModelSpec) else spec
    _check_sizes_known(spec)
    g = nx.DiGraph(
        name=spec.name,
        family=spec.family,
        norm=spec.norm,
        reuse=spec.reuse,
        input_shape=tuple(spec.input_shape),
        classes=spec.classes,
        file=str(spec.file) if spec.file else None,
    )
    index = _add_layers(g, spec)
    _check_acyclic(g)
    output = spec.layers[-1].name
    g.nodes[output]["role"] = "classifier"
    g.nodes[output]["abbrev"] = "pred"
    order = list(nx.lexicographical_topological_sort(g, key=lambda n: index[n]))
    _check_all_used(g, order, output)
    _infer_shapes(g, order, spec)
    classifier = _classifier_input(g, order, output, spec.reuse)
    _count_params(g, order, spec.train.get("freeze"))
    g.graph.update(
        order=order,
        output=output,
        classifier=classifier,
        aux=[(n, g.nodes[n]["aux"]) for n in order if g.nodes[n]["role"] == "aux"],
    )
    return g


def _check_sizes_known(spec: ModelSpec) -> None:
    if spec.input_shape is None:
        raise SpecError(
            "`input` is auto: the input shape comes from the data; pass input_shape (CLI: --input C,H,W)",
            file=spec.file,
        )
    if spec.classes is None:
        raise SpecError(
            "`classes` is auto: the class count comes from the data; pass classes (CLI: --classes N)", file=spec.file
        )


def _add_layers(g: nx.DiGraph, spec: ModelSpec) -> dict[str, int]:
    """One node per layer, data edges in input order; returns each node's position."""
    g.add_node(
        "input",
        kind="input",
        role="input",
        args={},
        inputs=[],
        shape=tuple(spec.input_shape),
        in_shapes=[],
        caption=None,
        abbrev="input",
        slot=False,
        tapped=False,
        file=None,
        line=None,
        params=(0, 0),
    )
    index = {"input": 0}
    for i, layer in enumerate(spec.layers, start=1):
        index[layer.name] = i
        short = norm_short(layer.kind)
        role = "aux" if layer.aux is not None else "norm" if short else "layer"
        g.add_node(
            layer.name,
            kind=layer.kind,
            role=role,
            args=dict(layer.args),
            inputs=list(layer.inputs),
            slot=layer.slot,
            tapped=False,
            caption=layer.caption,
            aux=layer.aux,
            abbrev=KINDS[layer.kind].abbrev,
            file=str(layer.file) if layer.file else None,
            line=layer.line,
        )
        for order, src in enumerate(layer.inputs):
            g.add_edge(src, layer.name, kind="data", order=order)
    return index


def _check_acyclic(g: nx.DiGraph) -> None:
    try:
        cycle = nx.find_cycle(g)
    except nx.NetworkXNoCycle:
        return
    names = [u for u, _ in cycle]
    first = g.nodes[names[0]]
    raise SpecError(
        "the layers form a cycle: " + " -> ".join(names + [names[0]]),
        file=first["file"],
        line=first["line"],
        layer=names[0],
    )


def _check_all_used(g: nx.DiGraph, order: list[str], output: str) -> None:
    for name in order:
        if name != output and g.out_degree(name) == 0 and g.nodes[name]["role"] != "aux":
            node = g.nodes[name]
            raise SpecError(
                "nothing uses this layer's output (check the `from:` references)",
                file=node["file"],
                line=node["line"],
                layer=name,
            )


def _classifier_input(g: nx.DiGraph, order: list[str], output: str, reuse: bool) -> ClassifierInput:
    """The classifier's input groups; with reuse, a `reuse` node concatenates them."""
    clf = g.nodes[output]
    features, feature_src = clf["in_shapes"][0], clf["inputs"][0]
    taps = [n for n in order if g.nodes[n]["slot"]] if reuse else []
    if taps and len(features) != 1:
        raise SpecError(
            f"reuse needs a flat classifier input, got {fmt_shape(features)}",
            file=clf["file"],
            line=clf["line"],
            layer=output,
        )
    classifier = ClassifierInput.build(
        feature_src, features[0], [(n, norm_short(g.nodes[n]["kind"]), _stat_sizes(g.nodes[n])) for n in taps]
    )
    for name in taps:
        g.nodes[name]["tapped"] = True
    if taps:
        _insert_reuse_node(g, order, output, feature_src, features, classifier.size, taps)
    return classifier


def _count_params(g: nx.DiGraph, order: list[str], freeze) -> None:
    """Each node's (trainable, non-trainable) weights, Keras convention; layers named in
    `train.freeze` (names or glob patterns) have only non-trainable ones."""
    for name in order:
        node = g.nodes[name]
        node["frozen"] = False
        if name == "input" or node["kind"] not in KINDS:
            node["params"] = (0, 0)
            continue
        trainable, fixed = KINDS[node["kind"]].params(node["args"], node["in_shapes"], node["shape"])
        if any(fnmatch.fnmatchcase(name, p) for p in freeze or []):
            trainable, fixed = 0, trainable + fixed
            node["frozen"] = trainable + fixed > 0  # a layer with weights that are not trained
        node["params"] = (trainable, fixed)


def param_totals(g: nx.DiGraph) -> tuple[int, int]:
    """(trainable, non-trainable) weights of the whole model."""
    pairs = [g.nodes[n]["params"] for n in g.graph["order"]]
    return sum(t for t, _ in pairs), sum(f for _, f in pairs)


def _stat_sizes(node: dict) -> tuple[int, ...]:
    norm = norms.norm_of_kind(node["kind"])
    return norm.stat_sizes(node["shape"][0], node["args"])


def _insert_reuse_node(
    g: nx.DiGraph, order: list[str], output: str, feature_src: str, features: tuple, total: int, taps: list[str]
) -> None:
    """The concatenation of features and statistics, between the features and the classifier."""
    clf = g.nodes[output]
    g.remove_edge(feature_src, output)
    g.add_node(
        REUSE_NODE,
        kind="reuse",
        role="reuse",
        args={},
        inputs=[feature_src],
        shape=(total,),
        in_shapes=[features],
        slot=False,
        tapped=False,
        caption=None,
        abbrev="concat",
        file=clf["file"],
        line=clf["line"],
    )
    g.add_edge(feature_src, REUSE_NODE, kind="data", order=0)
    for name in taps:
        g.add_edge(name, REUSE_NODE, kind="tap")
    g.add_edge(REUSE_NODE, output, kind="data", order=0)
    clf["inputs"] = [REUSE_NODE]
    clf["in_shapes"] = [(total,)]
    order.insert(order.index(output), REUSE_NODE)


def _infer_shapes(g: nx.DiGraph, order: list[str], spec: ModelSpec):
    output = g.graph.get("output") or spec.layers[-1].name
    for name in order:
        node = g.nodes[name]
        if name == "input":
            continue
        ins = [g.nodes[src]["shape"] for src in node["inputs"]]
        node["in_shapes"] = ins
        args = node["args"]
        if node["kind"] == "dense" and args.get("units") is None:
            args["units"] = spec.classes
        if name == output and args["units"] != spec.classes:
            raise SpecError(
                f"the classifier has {args['units']} units but the model has "
                f"{spec.classes} classes (leave `units` out to follow `classes`)",
                file=node["file"],
                line=node["line"],
                layer=name,
            )
        try:
            node["shape"] = tuple(KINDS[node["kind"]].out_shape(args, ins))
        except ShapeError as exc:
            # the input shapes, unless the message names them already (concat, add, dense)
            named = all(fmt_shape(s) in str(exc) for s in ins)
            message = str(exc) if named else f"{exc} (input {', '.join(map(fmt_shape, ins))})"
            raise SpecError(message, file=node["file"], line=node["line"], layer=name) from None
        if any(s <= 0 for s in node["shape"]):
            raise SpecError(
                f"output shape {fmt_shape(node['shape'])} is empty", file=node["file"], line=node["line"], layer=name
            )
