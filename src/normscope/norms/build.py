"""A normalization's layer: its class, one built instance, its weights counted on the meta
device, and the check a plugin passes before it joins the table (`verify_norm`).

torch is imported inside these functions only: loading the table stays torch-free.
"""

from __future__ import annotations

import importlib

from normscope.norms.records import NormError, NormSpec

_PROBE_CHANNELS, _PROBE_SIZE, _PROBE_BATCH = 4, 6, 2


def layer_class(norm: NormSpec) -> type:
    """The class a record names: the class itself, or "package.module:Class" imported now."""
    if isinstance(norm.layer, type):
        return norm.layer
    module, _, name = norm.layer.partition(":")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise NormError(f"{norm.where}: its layer '{norm.layer}' cannot be imported ({exc})") from None


def build_layer(norm: NormSpec, channels: int, options: dict):
    """One layer: `Class.from_options(channels, options)`, else `Class(channels, **options)`."""
    cls = layer_class(norm)
    if hasattr(cls, "from_options"):
        return cls.from_options(channels, dict(options))
    return cls(channels, **options)


def _keras_count(module) -> tuple[int, int]:
    trainable = sum(p.numel() for p in module.parameters() if p.requires_grad)
    frozen = sum(p.numel() for p in module.parameters() if not p.requires_grad)
    buffers = sum(b.numel() for n, b in module.named_buffers() if not n.endswith("num_batches_tracked"))
    return trainable, frozen + buffers


_COUNTED: dict[tuple, tuple[int, int]] = {}


def counted_params(norm: NormSpec, channels: int, options: dict) -> tuple[int, int]:
    """(trainable, non-trainable) weights of the layer, Keras convention, from one instance
    built on the meta device (no memory, nothing drawn); for records without a `params` rule."""
    key = (id(norm), channels, tuple(sorted(options.items())))
    if key not in _COUNTED:
        import torch

        with torch.device("meta"):
            _COUNTED[key] = _keras_count(build_layer(norm, channels, options))
    return _COUNTED[key]


def layer_params(norm: NormSpec, channels: int, options: dict) -> tuple[int, int]:
    return norm.params(channels, options) if norm.params else counted_params(norm, channels, options)


def _check_output(norm: NormSpec, out, x, options: dict, mode: str) -> None:
    shape = tuple(x.shape)
    contract = "forward must return (output, [(statistic name, (batch, size) tensor), ...])"
    if not (isinstance(out, (tuple, list)) and len(out) == 2):
        raise NormError(f"{norm.where}: {contract}; on a {shape} input in {mode} mode it returned {type(out).__name__}")
    y, stats = out
    if not hasattr(y, "shape") or tuple(y.shape) != shape:
        raise NormError(f"{norm.where}: its output must keep the input's shape {shape} ({mode} mode)")
    if not isinstance(stats, (list, tuple)) or not all(isinstance(s, (tuple, list)) and len(s) == 2 for s in stats):
        raise NormError(f"{norm.where}: {contract}; the statistics were {type(stats).__name__}")
    names = [name for name, _ in stats]
    declared = [s.name for s in norm.stats]
    if names != declared:
        raise NormError(f"{norm.where}: forward returns statistics {names}, declared {declared} (in this order)")
    for stat, (name, value) in zip(norm.stats, stats):
        want = (shape[0], stat.size(shape[1], options))
        got = tuple(getattr(value, "shape", ()))
        if got != want:
            raise NormError(
                f"{norm.where}: statistic '{name}' has shape {got} on a {shape} input in {mode} mode; "
                f"its declared size says {want}"
            )


def verify_norm(norm: NormSpec) -> None:
    """Build a tiny instance with the default options, run it on a small input in training
    and evaluation mode, and compare what it returns (and weighs) with the declaration."""
    import torch

    c = _PROBE_CHANNELS
    options = norm.resolve()
    shapes = [(_PROBE_BATCH, c, _PROBE_SIZE, _PROBE_SIZE)] + ([] if norm.image_only else [(_PROBE_BATCH, c)])
    try:
        layer = build_layer(norm, c, options)
    except NormError:
        raise
    except Exception as exc:  # a plugin's own code: any failure is its
        raise NormError(f"{norm.where}: building its layer with {c} channels failed: {type(exc).__name__}: {exc}")
    generator = torch.Generator().manual_seed(0)
    for shape in shapes:
        x = torch.randn(shape, generator=generator)
        for mode in ("training", "evaluation"):
            layer.train(mode == "training")
            try:
                with torch.no_grad():
                    out = layer(x)
            except Exception as exc:
                raise NormError(f"{norm.where}: forward on a {shape} input failed: {type(exc).__name__}: {exc}")
            _check_output(norm, out, x, options, mode)
    if norm.params is not None and tuple(norm.params(c, options)) != _keras_count(layer):
        raise NormError(
            f"{norm.where}: its params rule says {tuple(norm.params(c, options))} weights for {c} channels, "
            f"the layer holds {_keras_count(layer)} (trainable, non-trainable)"
        )
    if norm.flops is not None:
        flops = norm.flops(shapes[0][1:], options, True)
        if not isinstance(flops, int) or flops < 0:
            raise NormError(f"{norm.where}: its flops rule must return an integer >= 0, got {flops!r}")
