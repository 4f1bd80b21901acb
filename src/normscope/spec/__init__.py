"""The model language: YAML with line numbers, schema, expansion (extends, vars, blocks, variants)."""

from normscope.spec.dsl import (AUGMENT_ARGS, DRAW_ARGS, TOP_KEYS, TRAIN_ARGS, LayerSpec, ModelSpec, check_value,
                                load_spec, validate_mapping)

__all__ = ["AUGMENT_ARGS", "DRAW_ARGS", "TOP_KEYS", "TRAIN_ARGS", "LayerSpec", "ModelSpec", "check_value",
           "load_spec", "validate_mapping"]
