"""The result of loading a description: a ModelSpec with a flat list of LayerSpec."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from normscope.norms import variant_key


@dataclass
class LayerSpec:
    name: str
    kind: str
    args: dict
    inputs: list[str]
    file: Path | None = None
    line: int | None = None
    caption: str | None = None
    aux: float | None = None
    slot: bool = False  # a `norm` slot (kind resolved from the model's norm)
    explicit: frozenset = frozenset()  # keys written in the description (not defaults)

    @property
    def where(self) -> dict:
        return {"file": self.file, "line": self.line, "layer": self.name}


@dataclass
class ModelSpec:
    name: str
    family: str
    file: Path | None
    input_shape: tuple | None
    classes: int | None
    norm: str
    reuse: bool
    layers: list[LayerSpec]
    train: dict
    draw: dict
    document: dict  # the resolved description (plain data)
    warnings: list[str] = field(default_factory=list)
    overrides: tuple = ()  # the Overrides applied (command line and the description's `set:`)

    @property
    def variant(self) -> str:
        return variant_key(self.norm, self.reuse)
