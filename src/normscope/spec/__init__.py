"""The model language: YAML with line numbers, schema, expansion."""
