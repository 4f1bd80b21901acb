"""Features out of a model: the activations of one named layer, flattened, for every image of
each split, with the labels (:func:`extract_features`); written as one .npz
(:meth:`Features.save`) for a classifier of your own, e.g. scikit-learn's ``LinearSVC``
(docs/transfer.md).

The model is a run's (its best checkpoint, its data and splits exactly as trained) or a
description's (its ``train.weights``, or ``weights``, loaded by structure; the data
standardized with its training split's statistics, as the trainer does).
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from normscope.data.batches import Splits, prepare_data, to_input
from normscope.data.folder import ImageOptions
from normscope.errors import NormscopeError
from normscope.fileio import atomic_write
from normscope.model.build import build_model
from normscope.model.weights import resolve_source
from normscope.spec import load_spec
from normscope.train import load_run, pick_device
from normscope.train.prepare import SPLIT_SEED, fit_to_data, resolve_data_options
from normscope.train.settings import resolve_settings

__all__ = ["SPLITS", "Features", "FeatureError", "extract_features", "is_run_dir"]

SPLITS = ("train", "val", "test")
Progress = Callable[[str, int, int], None]  # (split, images done, images in the split)


class FeatureError(NormscopeError):
    """A layer, split or source the features cannot be taken from."""


@dataclass
class Features:
    """Flattened activations ``x[split]`` (N x D float32) and labels ``y[split]`` (int64)."""

    layer: str
    shape: tuple[int, ...]  # the layer's output shape per image, before flattening
    x: dict[str, np.ndarray]
    y: dict[str, np.ndarray]
    class_names: list[str]
    source: str
    weights: object = None  # the WeightsReport of a description's weights
    warning: str | None = None  # the layer is (or comes after) a layer left random by pretrained weights

    def save(self, path) -> Path:
        """One .npz: x_<split>, y_<split> per split, layer, shape, class_names, source."""
        arrays = {f"{k}_{split}": v for split in self.x for k, v in (("x", self.x[split]), ("y", self.y[split]))}
        arrays.update(
            layer=np.array(self.layer),
            shape=np.array(self.shape, dtype=np.int64),
            class_names=np.array(self.class_names),
            source=np.array(self.source),
        )
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        return atomic_write(path, lambda f: np.savez(f, **arrays))


def is_run_dir(path) -> bool:
    if not isinstance(path, (str, Path)):  # a Variant or a ModelSpec: a description
        return False
    return Path(path).is_dir() and (Path(path) / "config.json").is_file()


def extract_features(
    source,
    layer: str,
    *,
    splits=SPLITS,
    data: str | None = None,
    data_dir=None,
    subset: int | None = None,
    test_subset: int | None = None,
    norm: str | None = None,
    reuse: bool | None = None,
    weights: str | None = None,
    checkpoint: str = "best",
    batch_size: int = 256,
    device: str | None = "auto",
    progress: Progress | None = None,
    normalize: str | None = None,
) -> Features:
    """The activations of ``layer`` for every image of ``splits``.

    ``source``: a run directory (its ``checkpoint``, its data and splits; ``data`` another data
    set standardized with the run's statistics) or a description (``data`` or its
    ``train.data``; ``weights``, a .pth or ``torchvision:NAME``, else its ``train.weights``,
    else its initialization). ``progress(split, done, total)`` is called after every batch."""
    unknown = [s for s in splits if s not in SPLITS]
    if unknown or not splits:
        raise FeatureError(f"splits are train, val and test; got {', '.join(unknown) or 'none'}")
    if batch_size < 1:
        raise FeatureError(f"the batch size must be positive, got {batch_size}")
    dev = pick_device(device)
    if is_run_dir(source):
        if weights is not None or norm is not None or reuse is not None or normalize is not None:
            raise FeatureError(
                f"{source}: a run has its own model and inputs; weights, norm, reuse, normalize apply to descriptions"
            )
        model, data_splits, mean, std, label = _from_run(source, checkpoint, data, data_dir, subset, test_subset, dev)
        report = _run_weights(source)
    else:
        model, data_splits, mean, std, label = _from_description(
            source, data, data_dir, subset, test_subset, norm, reuse, weights, normalize
        )
        report = model.weights_report.to_dict() if model.weights_report is not None else None
    model = model.to(dev).eval()
    found = _extract(model, layer, data_splits, mean.to(dev), std.to(dev), splits, batch_size, dev, progress, label)
    found.warning = random_layer_warning(model, layer, report)
    return found


def _run_weights(run_dir) -> dict | None:
    """weights.json of a run (what its pretrained weights loaded), None without one."""
    path = Path(run_dir) / "weights.json"
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def random_layer_warning(model, layer: str, report: dict | None) -> str | None:
    """A warning when ``layer`` is one of the layers pretrained weights left random, or comes after one."""
    if not report or not report.get("warning") or not report.get("random"):
        return None
    order = [n for n in model.graph.graph["order"]]
    first = min((order.index(n) for n in report["random"] if n in order), default=None)
    if first is None or order.index(layer) < first:
        return None
    return (
        f"the features of '{layer}' come from layers that started at random initialization, not from the "
        f"pretrained weights: {report['warning']}"
    )


def _from_run(run_dir, checkpoint, data, data_dir, subset, test_subset, dev):
    """A run's model and its data (or ``data``, with the run's statistics)."""
    run = load_run(run_dir, device="cpu", checkpoint=checkpoint, data_dir=data_dir)
    model = run.load_model(checkpoint, device="cpu")
    if data is None:
        if subset is not None or test_subset is not None:
            raise FeatureError("--subset and --test-subset apply with --data; a run's own data is its splits")
        splits = run.splits()
    else:
        t = run.config.train
        image = ImageOptions.of(t.image_size or run.config.input_shape[-1], t.resize)
        splits = prepare_data(
            data,
            data_dir=data_dir,
            subset=subset,
            test_subset=test_subset,
            validation=0.0,
            split_seed=SPLIT_SEED,
            normalize="none",  # the run's statistics are used
            image=image,
        )
        want = tuple(run.config.input_shape)
        if splits.input_shape != want:
            raise FeatureError(f"{data}: images of {_dims(splits.input_shape)}; the run's model takes {_dims(want)}")
    c = len(run.config.mean)
    mean = torch.tensor(run.config.mean, dtype=torch.float32).view(1, c, 1, 1)
    std = torch.tensor(run.config.std, dtype=torch.float32).view(1, c, 1, 1)
    return model, splits, mean, std, f"{run_dir} ({checkpoint} checkpoint)"


def _from_description(path, data, data_dir, subset, test_subset, norm, reuse, weights, normalize):
    """A description's model with its weights, and its data as the trainer would split and
    standardize it."""
    spec = load_spec(path, norm=norm, reuse=reuse)
    t = resolve_settings(spec, {"data": data, "subset": subset})
    if not t.data:
        raise FeatureError(f"{path}: no data set: pass --data or set train.data in the description")
    if weights is None and t.weights:
        weights = resolve_source(t.weights, Path(spec.file).parent if spec.file else None)
    t.weights, t.normalize = weights, normalize or t.normalize
    resolve_data_options(spec, t)
    splits = prepare_data(
        t.data,
        data_dir=data_dir,
        subset=t.subset,
        test_subset=test_subset,
        validation=t.validation,
        standardize=t.standardize,
        split_seed=SPLIT_SEED,
        normalize=t.normalize,
        image=ImageOptions.of(t.image_size, t.resize),
    )
    input_shape, classes, _ = fit_to_data(spec, splits, t.data, fit_data=False)
    model = build_model(spec, input_shape=input_shape, classes=classes, weights=weights)
    mean, std = splits.stat_tensors("cpu")
    return model, splits, mean, std, str(path)


@torch.no_grad()
def _extract(model, layer, data: Splits, mean, std, splits, batch_size, dev, progress, label) -> Features:
    captured: list[torch.Tensor] = []
    handle = _tap(model, layer, captured)
    x, y = {}, {}
    try:
        for split in splits:
            n, done = len(data.y[split]), 0
            chunks = []
            for xb, _ in data.batches(split, batch_size):  # streamed: an image folder is never whole
                captured.clear()
                try:
                    model(to_input(xb.to(dev), mean, std))
                except _Captured:
                    pass
                chunks.append(captured[0].flatten(1).float().cpu())
                done += len(xb)
                del xb  # not held while the next batch is decoded
                if progress is not None:
                    progress(split, done, n)
            x[split] = torch.cat(chunks).numpy() if chunks else np.zeros((0, _size(model, layer)), np.float32)
            y[split] = np.asarray(data.y[split], dtype=np.int64)
    finally:
        handle.remove()
    shape = tuple(model.graph.nodes[layer]["shape"])
    report = getattr(model, "weights_report", None)
    return Features(layer, shape, x, y, list(data.class_names), label, report)


class _Captured(Exception):
    """Raised by the hook once the layer's output is taken: the layers after it need not run."""


def _tap(model, layer: str, captured: list):
    """A hook that stores ``layer``'s output: on its module, or, for a join that runs inline
    (concat, add, the reuse concatenation), on the input of the one layer it feeds."""
    graph = model.graph
    if layer not in graph.nodes or layer == "input":
        names = [n for n in graph.graph["order"] if n != "input"]
        close = difflib.get_close_matches(layer, names, n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        raise FeatureError(f"the model has no layer '{layer}'; {hint}(its layers: {', '.join(names)})")

    def store(value):
        captured.append((value[0] if isinstance(value, tuple) else value).detach())
        raise _Captured

    if layer in model.layers:
        return model.layers[layer].register_forward_hook(lambda mod, inp, out: store(out))
    for succ in graph.successors(layer):
        if graph.nodes[succ]["inputs"] == [layer] and succ in model.layers:
            return model.layers[succ].register_forward_pre_hook(lambda mod, inp: store(inp[0]))
    raise FeatureError(f"layer '{layer}' runs inline and feeds no single layer; take the features of another layer")


def _size(model, layer: str) -> int:
    return int(np.prod(model.graph.nodes[layer]["shape"]))


def _dims(shape) -> str:
    return "x".join(str(v) for v in shape)
