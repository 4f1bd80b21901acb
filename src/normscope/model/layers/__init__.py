"""Normalization layers, one per file, each named by its entry in `normscope.norms`.

Each forward returns (output, [(statistic name, (B, size) tensor), ...]); each class has
`from_options(channels, options)` taking the description's options for it.
"""
