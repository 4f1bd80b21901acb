"""The records a normalization is described with (no torch): `NormSpec`, its `Statistic`s,
its `Option`s and its diagram `Style`; `declaration_problems` says what a record breaks."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable

from normscope.errors import NormscopeError
from normscope.keys import Arg


class NormError(NormscopeError):
    """A normalization (built-in or a plugin's) that breaks the interface, or an unknown one."""


def _channels(channels: int, options: dict) -> int:
    return channels


@dataclass(frozen=True)
class Statistic:
    """One statistic a norm layer exposes per image: its name, how it is written, its size."""

    name: str  # suffix of the classifier group: "in1.mean"
    what: str  # "channel means"
    tex: str  # symbol in LaTeX math mode
    text: str  # symbol in plain text (graphviz, terminal)
    size: Callable[[int, dict], int] = _channels  # values per image, from (channels, options)


@dataclass(frozen=True)
class Style:
    """How diagrams draw the layer: fill colour (RGB) and graphviz node shape."""

    rgb: tuple[int, int, int]
    shape: str = "hexagon"

    @property
    def hex(self) -> str:
        return "#" + "".join(f"{v:02x}" for v in self.rgb)


OPTION_TYPES = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}


@dataclass(frozen=True)
class Option:
    """One option of a normalization: its type, default (None: the layer decides, e.g. from
    the channel count), an inclusive (ge, le) or exclusive (gt, lt) range, choices, an extra
    check (returns a message when the value is wrong) and a help line."""

    type: type
    default: Any = None
    help: str = ""
    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    choices: tuple | None = None
    check: Callable[[Any], str | None] | None = None

    def problem(self, value) -> str | None:
        """Why `value` is not allowed (type aside), or None."""
        if value is None:
            return None
        for bound, fails, words in (
            (self.ge, lambda b: value < b, ">="),
            (self.gt, lambda b: value <= b, ">"),
            (self.le, lambda b: value > b, "<="),
            (self.lt, lambda b: value >= b, "<"),
        ):
            if bound is not None and fails(bound):
                return f"must be {words} {bound:g}"
        if self.choices is not None and value not in self.choices:
            return "must be one of " + ", ".join(map(str, self.choices))
        return self.check(value) if self.check else None

    def type_ok(self, value) -> bool:
        if value is None:
            return True
        if isinstance(value, bool):
            return self.type is bool
        return isinstance(value, self.type) or (self.type is float and isinstance(value, int))


def _no_shape_problem(shape: tuple, options: dict) -> str | None:
    return None


def _never(channels: int, options: dict) -> bool:
    return False


def _fine_on_one_pixel(shape: tuple, options: dict, reused: bool) -> str | None:
    return None


@dataclass(frozen=True)
class NormSpec:
    """A normalization: what the language, the graph, the torch build, summaries, diagrams,
    studies and attribution need to know about it (docs/plugins.md).

    `layer` is the layer class or "package.module:Class" (imported on build only); its
    `from_options(channels, options)` (else `Class(channels, **options)`) builds it, and its
    forward returns (output, [(statistic name, (B, size) tensor), ...]) in the order of `stats`.
    `params(channels, options)` -> (trainable, non-trainable) weights in the Keras convention;
    None: counted once by building the layer on the meta device. `flops(input shape, options,
    tapped)` -> forward FLOPs per image; None: summaries say "not counted".
    """

    short: str  # "bn": the `norm:` value and the variant prefix
    long: str  # "batchnorm": the kind of a fixed layer in a description
    display: str  # "BatchNorm"
    layer: str | type  # the layer class, or "package.module:Class"
    stats: tuple[Statistic, ...]  # reused statistics, in their order in the classifier input
    options: dict[str, Option] = field(default_factory=dict)
    style: Style = Style((128, 128, 128))
    per_image: bool = True  # statistics differ from image to image (BatchNorm's do not)
    params: Callable[[int, dict], tuple[int, int]] | None = None
    flops: Callable[[tuple, dict, bool], int] | None = None
    image_only: bool = True  # needs a (C, H, W) input
    in_study: bool = False  # one of the thesis' seven default variants (built-ins only)
    shape_problem: Callable[[tuple, dict], str | None] = _no_shape_problem
    # each output channel's spatial mean is the same for every image (InstanceNorm: β)
    fixed_channel_mean: Callable[[int, dict], bool] = _never
    # what the layer computes (or reuses, when `reused`) on one value per channel (1×1 maps), where degenerate
    one_pixel: Callable[[tuple, dict, bool], str | None] = _fine_on_one_pixel
    doc: str = ""

    @property
    def defaults(self) -> dict:
        return {k: o.default for k, o in self.options.items()}

    def resolve(self, given: dict | None = None) -> dict:
        """This normalization's options: the defaults, overridden by `given` (None = unset)."""
        given = given or {}
        return {k: (given[k] if given.get(k) is not None else o.default) for k, o in self.options.items()}

    def stat_sizes(self, channels: int, given: dict | None = None) -> tuple[int, ...]:
        options = self.resolve(given)
        return tuple(s.size(channels, options) for s in self.stats)

    def stats_per_image(self, given: dict | None = None) -> bool:
        """The reused statistics differ from image to image under these options: `per_image`,
        unless the normalization takes `reuse_stats` (BatchNorm), which then decides."""
        reuse_stats = self.resolve(given).get("reuse_stats")
        return self.per_image if reuse_stats is None else reuse_stats == "image"

    @property
    def variants(self) -> tuple[str, str]:
        return (self.short, f"{self.short}_v2")

    @property
    def where(self) -> str:
        return f"norm '{self.short}'"


SHORT_NAME = re.compile(r"[a-z][a-z0-9]{0,15}$")  # no '_': variant keys are <short>_v2
LONG_NAME = re.compile(r"[a-z][a-z0-9_]{0,31}$")
IDENT = re.compile(r"[a-z][a-z0-9_]{0,31}$")


def _option_problems(name: str, opt: Option) -> list[str]:
    if not isinstance(opt, Option):
        return [f"option '{name}' must be a normscope.norms.Option, got {type(opt).__name__}"]
    if not IDENT.match(name):
        return [f"option name '{name}' must be lower-case letters, digits and '_'"]
    if opt.type not in OPTION_TYPES:
        return [f"option '{name}' has type {opt.type!r}; an option is int, float, bool or str"]
    if not opt.type_ok(opt.default):
        return [f"option '{name}' default {opt.default!r} is not {OPTION_TYPES[opt.type]}"]
    problem = opt.problem(opt.default)
    return [f"option '{name}' default {opt.default!r} {problem}"] if problem else []


def _stat_problems(stats) -> list[str]:
    if not isinstance(stats, tuple) or not stats or not all(isinstance(s, Statistic) for s in stats):
        return ["stats must be a non-empty tuple of normscope.norms.Statistic"]
    names = [s.name for s in stats]
    out = [f"statistic name '{n}' must be lower-case letters, digits and '_'" for n in names if not IDENT.match(n)]
    if len(set(names)) != len(names):
        out.append("statistic names repeat: " + ", ".join(names))
    out += [
        f"statistic '{s.name}' size must be a function (channels, options) -> int"
        for s in stats
        if not callable(s.size)
    ]
    return out


def declaration_problems(norm: NormSpec) -> list[str]:
    """What a record breaks, as checkable without building its layer (names, types, options)."""
    if not isinstance(norm, NormSpec):
        return [f"register_norm takes a normscope.norms.NormSpec, got {type(norm).__name__}"]
    out = []
    if not SHORT_NAME.match(norm.short or ""):
        out.append(f"short name {norm.short!r} must be lower-case letters and digits (no '_'), at most 16")
    if not LONG_NAME.match(norm.long or ""):
        out.append(f"long name {norm.long!r} must be lower-case letters, digits and '_'")
    if not isinstance(norm.display, str) or not norm.display.strip():
        out.append("display name must be a non-empty string")
    if not (isinstance(norm.layer, type) or (isinstance(norm.layer, str) and ":" in norm.layer)):
        out.append(f"layer must be a class or 'package.module:Class', got {norm.layer!r}")
    out += _stat_problems(norm.stats)
    if not isinstance(norm.options, dict):
        out.append("options must be a dict {name: Option}")
    else:
        for name, opt in norm.options.items():
            out += _option_problems(name, opt)
    rgb = norm.style.rgb if isinstance(norm.style, Style) else None
    if not (isinstance(rgb, tuple) and len(rgb) == 3 and all(isinstance(v, int) and 0 <= v <= 255 for v in rgb)):
        out.append("style must be a Style with an (r, g, b) colour of integers 0-255")
    for what in ("params", "flops"):
        if getattr(norm, what) is not None and not callable(getattr(norm, what)):
            out.append(f"{what} must be a function or None")
    if not isinstance(norm.per_image, bool):
        out.append("per_image must be true or false")
    return out


def option_arg(declared: list[tuple[str, Option]]) -> Arg:
    """The language's key for an option, from every normalization that declares it: a value
    must satisfy each declaration (a `norm` slot takes any normalization's options)."""
    first = declared[0][1]

    def check(value):
        for _, opt in declared:
            problem = opt.problem(value)
            if problem:
                return problem
        return None

    shorts = "/".join(s for s, _ in declared)
    return Arg((first.type,), None, choices=first.choices, check=check, help=f"{shorts}: {first.help}")
