"""The model language: YAML with line numbers, schema, expansion (extends, vars, blocks, variants).

Modules, from the file to the ModelSpec: `yamlio` (YAML with line numbers), `document`
(`extends:` chains and merging), `schema` (top-level keys, `train:` / `draw:`, value
checks), `sections` (input, classes, defaults, norm_options, blocks), `variables`
(`${name}` substitution), `expand` (layers, blocks, repeat, branches), `model_spec`
(the result types) and `load` (`load_spec`, the steps in order). `kinds` holds the layer
kinds and their keys.
"""

from normscope.spec.load import load_spec
from normscope.spec.model_spec import LayerSpec, ModelSpec
from normscope.spec.schema import AUGMENT_ARGS, DRAW_ARGS, TOP_KEYS, TRAIN_ARGS, check_value, validate_mapping

__all__ = [
    "AUGMENT_ARGS",
    "DRAW_ARGS",
    "TOP_KEYS",
    "TRAIN_ARGS",
    "LayerSpec",
    "ModelSpec",
    "check_value",
    "load_spec",
    "validate_mapping",
]
