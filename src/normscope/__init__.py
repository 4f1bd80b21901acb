"""normscope: one YAML model description -> PyTorch modules in every normalization and
reuse variant, diagrams, summaries, training and attribution.

`import normscope` does not import torch: the names that need it (build_model,
NormscopeModel, count_params) load `normscope.model.build` on first use.
"""

import importlib

from normscope.errors import NormscopeError, SpecError
from normscope.model.graph import build_graph
from normscope.norms import VARIANTS, variant_name
from normscope.report.summary import summarize
from normscope.spec import ModelSpec, load_spec
from normscope.version import __version__

_TORCH_NAMES = ("build_model", "NormscopeModel", "count_params")

__all__ = [
    "build_model",
    "build_graph",
    "load_spec",
    "summarize",
    "count_params",
    "NormscopeModel",
    "ModelSpec",
    "VARIANTS",
    "variant_name",
    "NormscopeError",
    "SpecError",
    "__version__",
]


def __getattr__(name: str):
    if name in _TORCH_NAMES:
        return getattr(importlib.import_module("normscope.model.build"), name)
    raise AttributeError(f"module 'normscope' has no attribute {name!r}")
