"""normscope: one YAML model description -> PyTorch modules in every normalization and
reuse variant, diagrams, summaries, training and attribution."""

from .backends.summary import summarize
from .backends.torch import NormscopeModel, build_model, count_params
from .dsl import VARIANTS, ModelSpec, load_spec, variant_name
from .errors import NormscopeError, SpecError
from .graph import build_graph

__version__ = "0.1.0"

__all__ = ["build_model", "build_graph", "load_spec", "summarize", "count_params", "NormscopeModel",
           "ModelSpec", "VARIANTS", "variant_name", "NormscopeError", "SpecError", "__version__"]
