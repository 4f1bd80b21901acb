"""normscope: one YAML model description -> PyTorch modules in every normalization and
reuse variant, diagrams, summaries, training and attribution."""

from normscope.report.summary import summarize
from normscope.model.build import NormscopeModel, build_model, count_params
from normscope.norms import VARIANTS, variant_name
from normscope.spec import ModelSpec, load_spec
from normscope.errors import NormscopeError, SpecError
from normscope.model.graph import build_graph

__version__ = "0.1.0"

__all__ = ["build_model", "build_graph", "load_spec", "summarize", "count_params", "NormscopeModel",
           "ModelSpec", "VARIANTS", "variant_name", "NormscopeError", "SpecError", "__version__"]
