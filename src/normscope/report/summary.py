"""Model summary: data first (`summarize`), rendering second (`render_rich`, `render_keras`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from rich.markup import escape
from rich.table import Table

from normscope import norms
from normscope.model.diagnostics import Diagnostic, diagnose
from normscope.model.flops import layer_flops
from normscope.model.graph import build_graph, param_totals
from normscope.spec import load_spec


@dataclass
class LayerRow:
    name: str
    kind: str
    inputs: list[str]
    output_shape: list[int]
    trainable: int
    non_trainable: int
    role: str
    reused: list[str] = field(default_factory=list)  # group names this layer feeds to the classifier
    flops: int | None = 0  # forward FLOPs per image (normscope.model.flops); None: not counted


@dataclass
class Summary:
    name: str
    family: str
    norm: str
    reuse: bool
    input_shape: list[int]
    classes: int
    layers: list[LayerRow]
    classifier_inputs: dict[str, int]
    trainable_params: int
    non_trainable_params: int
    warnings: list[str]
    diagnostics: list[Diagnostic] = field(default_factory=list)

    @property
    def total_params(self) -> int:
        return self.trainable_params + self.non_trainable_params

    @property
    def total_flops(self) -> int:
        """The counted layers' FLOPs (a plugin's normalization without a FLOPs rule is not counted)."""
        return sum(row.flops for row in self.layers if row.flops is not None)

    @property
    def flops_not_counted(self) -> list[str]:
        return [row.name for row in self.layers if row.flops is None]

    def to_dict(self) -> dict:
        out = asdict(self)
        out["diagnostics"] = [d.to_dict() for d in self.diagnostics]
        out["total_params"] = self.total_params
        out["total_flops"] = self.total_flops
        out["flops_not_counted"] = self.flops_not_counted
        out["features"] = self.classifier_inputs.get("features", 0)
        out["reused"] = sum(v for k, v in self.classifier_inputs.items() if k != "features")
        return out


def summarize(source, norm=None, reuse=None, input_shape=None, classes=None, norm_options=None) -> Summary:
    """Shapes, Keras-convention parameter counts, FLOPs and diagnostics, from the graph alone (no torch)."""
    spec = load_spec(
        source, norm=norm, reuse=reuse, input_shape=input_shape, classes=classes, norm_options=norm_options
    )
    graph = build_graph(spec)
    classifier = graph.graph["classifier"]
    flops = layer_flops(graph)
    rows = []
    for name in graph.graph["order"]:
        node = graph.nodes[name]
        trainable, non_trainable = node["params"]
        rows.append(
            LayerRow(
                name=name,
                kind=node["kind"],
                inputs=list(node["inputs"]),
                output_shape=list(node["shape"]),
                trainable=trainable,
                non_trainable=non_trainable,
                role=node["role"],
                reused=[grp.name for grp in classifier.of_layer(name)],
                flops=flops[name],
            )
        )
    trainable, non_trainable = param_totals(graph)
    return Summary(
        name=spec.name,
        family=spec.family,
        norm=spec.norm,
        reuse=spec.reuse,
        input_shape=list(spec.input_shape),
        classes=spec.classes,
        layers=rows,
        classifier_inputs=classifier.sizes(),
        trainable_params=trainable,
        non_trainable_params=non_trainable,
        warnings=list(spec.warnings),
        diagnostics=diagnose(graph),
    )


def composition(summary: Summary) -> str:
    """'512 features + 480 reused (bn1 64, ...) = 992'."""
    feats = summary.classifier_inputs.get("features", 0)
    per_layer: dict[str, int] = {}
    for name, size in summary.classifier_inputs.items():
        if name != "features":
            layer = name.rsplit(".", 1)[0]
            per_layer[layer] = per_layer.get(layer, 0) + size
    reused = sum(per_layer.values())
    if not reused:
        return f"{feats} features (no reused statistics)"
    parts = ", ".join(f"{k} {v}" for k, v in per_layer.items())
    return f"{feats} features + {reused} reused ({parts}) = {feats + reused}"


def _shape(shape) -> str:
    return "×".join(str(s) for s in shape)


SHORT_KINDS = {
    "adaptiveavgpool": "adaptive",
    "globalavgpool": "gap",
    "globalmaxpool": "gmp",
    "activation": "act",
    "reuse": "concat stats",
}
norms.on_register(lambda n: SHORT_KINDS.setdefault(n.long, n.short))


def render_rich(summary: Summary, console) -> None:
    title = f"{summary.name}  (norm: {summary.norm}, reuse: {'yes' if summary.reuse else 'no'})"
    table = Table(title=title, title_justify="left", header_style="bold")
    table.add_column("layer")
    table.add_column("kind")
    table.add_column("input")
    table.add_column("output shape", justify="right")
    table.add_column("trainable", justify="right")
    table.add_column("non-trainable", justify="right")
    table.add_column("FLOPs", justify="right")
    if summary.reuse:
        table.add_column("reused", justify="right")
    for row in summary.layers:
        style = {"norm": "cyan", "reuse": "magenta", "classifier": "bold", "aux": "yellow"}.get(row.role)
        cells = [
            row.name,
            SHORT_KINDS.get(row.kind, row.kind),
            ", ".join(row.inputs),
            _shape(row.output_shape),
            f"{row.trainable:,}" if row.trainable else "",
            f"{row.non_trainable:,}" if row.non_trainable else "",
            "not counted" if row.flops is None else f"{row.flops:,}" if row.flops else "",
        ]
        if summary.reuse:
            cells.append(str(sum(summary.classifier_inputs[g] for g in row.reused)) if row.reused else "")
        table.add_row(*cells, style=style)
    console.print(table)
    console.print(f"Trainable params:     {summary.trainable_params:,}")
    console.print(f"Non-trainable params: {summary.non_trainable_params:,}")
    console.print(f"Total params:         {summary.total_params:,}  (Keras convention)")
    flops = summary.total_flops
    console.print(f"FLOPs per image:      {flops:,}  ({human_flops(flops)}, multiply-add = 2){not_counted(summary)}")
    console.print(f"Classifier input:     {composition(summary)}")
    for w in summary.warnings:
        console.print(f"[yellow]warning:[/] {w}")
    print_diagnostics(summary.diagnostics, console)


def not_counted(summary: Summary) -> str:
    """', not counted: rms1, rms2 (no FLOPs rule)' where layers are left out of the total."""
    left = summary.flops_not_counted
    return f"; not counted: {', '.join(left)} (no FLOPs rule)" if left else ""


def human_flops(flops: int) -> str:
    """36376576 -> '36.4 MFLOPs'."""
    for scale, unit in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if flops >= scale:
            return f"{flops / scale:.1f} {unit}FLOPs"
    return f"{flops} FLOPs"


def print_diagnostics(diagnostics: list[Diagnostic], console, prefix: str = "") -> None:
    """One 'diagnostic:' line per diagnostic (docs/diagnostics.md); nothing when there are none."""
    for d in diagnostics:
        console.print(f"[bold yellow]diagnostic{escape(prefix)}:[/] {escape(str(d))}", highlight=False, soft_wrap=True)


def render_keras(summary: Summary) -> str:
    """Text in the layout of Keras' model.summary() (shapes as (None, H, W, C))."""

    def kshape(shape):
        s = list(shape)
        return "(None, " + ", ".join(map(str, (s[1:] + s[:1]) if len(s) == 3 else s)) + ")"

    width = (34, 26, 12)
    line = "_" * sum(width)
    out = [
        f'Model: "{summary.name}"',
        line,
        "Layer (type)".ljust(width[0]) + "Output Shape".ljust(width[1]) + "Param #",
        "=" * sum(width),
    ]
    for row in summary.layers:
        out.append(
            f"{row.name} ({row.kind})".ljust(width[0])
            + kshape(row.output_shape).ljust(width[1])
            + f"{row.trainable + row.non_trainable:,}"
        )
    out += [
        "=" * sum(width),
        f"Total params: {summary.total_params:,}",
        f"Trainable params: {summary.trainable_params:,}",
        f"Non-trainable params: {summary.non_trainable_params:,}",
        line,
    ]
    return "\n".join(out)
