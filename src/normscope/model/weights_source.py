"""Reading pretrained weights: a state dict from a file (``torch.load(weights_only=True)``
only; a normscope checkpoint reads too) or ``torchvision:NAME`` (downloaded by torchvision's
own downloader into its cache), every tensor checked (finite, a real floating dtype).
Loading them into a model by structure is normscope.model.weights."""

from __future__ import annotations

import contextlib
import difflib
import os
import pickle
import socket
import urllib.error
import zipfile
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import torch

from normscope.errors import NormscopeError

__all__ = [
    "COUNTER",
    "TORCHVISION",
    "DOWNLOAD_TIMEOUT_S",
    "first_line",
    "Weights",
    "WeightsError",
    "read_weights",
    "resolve_source",
]

TORCHVISION = "torchvision:"
COUNTER = "num_batches_tracked"  # BatchNorm's step counter: not a weight; older state dicts lack it
DOWNLOAD_TIMEOUT_S = 60  # a network that drops packets fails after this long instead of hanging


class WeightsError(NormscopeError):
    """Weights that cannot be read, or that do not fit the model."""


@dataclass
class Weights:
    """A state dict read from ``source`` (a path or ``torchvision:NAME``)."""

    state: dict[str, torch.Tensor]
    source: str


def resolve_source(source: str | os.PathLike, base: str | os.PathLike | None = None) -> str:
    """``torchvision:NAME`` as it is; a path made absolute against ``base`` (default: the
    working directory), so that a run directory's description finds it from anywhere."""
    text = str(source)
    if text.startswith(TORCHVISION):
        return text
    path = Path(text).expanduser()
    if not path.is_absolute():
        path = Path(base or Path.cwd()) / path
    return str(path.resolve())


def read_weights(source) -> Weights:
    """The state dict of ``source``: a path, ``torchvision:NAME``, a Weights, or a state dict."""
    if isinstance(source, Weights):
        return source
    if isinstance(source, Mapping):
        return Weights(_as_state_dict(source, "the given state dict"), "a state dict")
    text = str(source)
    if text.startswith(TORCHVISION):
        return Weights(_torchvision_state(text[len(TORCHVISION) :]), text)
    return Weights(_read_file(Path(text).expanduser()), text)


def _read_file(path: Path) -> dict[str, torch.Tensor]:
    """A state dict file, read with ``torch.load(weights_only=True)`` only."""
    if not path.is_file():
        raise WeightsError(
            f"{path}: no such weights file (give a .pth state dict, or torchvision:NAME such as "
            "torchvision:vgg19.IMAGENET1K_V1)"
        )
    with open(path, "rb") as f:
        head = f.read(2)
    if not zipfile.is_zipfile(path) and head[:1] != b"\x80":  # torch.save: a zip, or a legacy pickle
        raise WeightsError(f"{path}: not a state dict file (torch.save writes a zip archive; this is not one)")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise WeightsError(
            f"{path}: not a state dict: it holds pickled Python objects, which torch.load(weights_only=True) "
            "does not load (a whole model saved with torch.save(model)?); save torch.save(model.state_dict(), PATH)"
        ) from None
    except (RuntimeError, EOFError, ValueError, KeyError, IndexError) as exc:
        raise WeightsError(
            f"{path}: not a readable state dict file ({type(exc).__name__}: {first_line(exc)})"
        ) from None
    return _as_state_dict(obj, str(path))


def _as_state_dict(obj, where: str) -> dict[str, torch.Tensor]:
    """A mapping of names to tensors; a checkpoint's ``model`` / ``state_dict`` entry."""
    if isinstance(obj, Mapping):
        for key in ("model", "state_dict"):
            if isinstance(obj.get(key), Mapping) and not isinstance(obj.get(key), torch.Tensor):
                return _as_state_dict(obj[key], f"{where} ['{key}']")
        if not obj:
            raise WeightsError(f"{where}: an empty state dict")
        for key, value in obj.items():
            if not isinstance(key, str) or not isinstance(value, torch.Tensor):
                raise WeightsError(
                    f"{where}: not a state dict: {key!r} holds a {type(value).__name__}, not a tensor "
                    "(a state dict maps parameter names to tensors)"
                )
            _check_tensor(key, value, where)
        return OrderedDict(obj)
    raise WeightsError(
        f"{where}: not a state dict: it holds a {type(obj).__name__} "
        "(a state dict maps parameter names to tensors: torch.save(model.state_dict(), PATH))"
    )


def _check_tensor(key: str, value: torch.Tensor, where: str) -> None:
    """Weights are finite real floating-point numbers (float16, bfloat16 and float64 are cast
    to the model's float32 when loaded); BatchNorm's step counter is an integer."""
    dtype = str(value.dtype).removeprefix("torch.")
    if key.rpartition(".")[2] == COUNTER:
        if value.is_floating_point() or value.is_complex() or value.dtype == torch.bool:
            raise WeightsError(f"{where}: tensor '{key}' is {dtype}; a step counter is an integer")
        return
    if not value.is_floating_point():
        kind = "complex numbers" if value.is_complex() else "true/false values" if dtype == "bool" else "integers"
        raise WeightsError(f"{where}: tensor '{key}' is {dtype} ({kind}); weights are real floating-point numbers")
    bad = 0 if value.is_meta else int((~torch.isfinite(value)).sum())  # meta: shapes only, no values
    if bad:
        raise WeightsError(f"{where}: tensor '{key}' holds {bad:,} NaN or infinite values of {value.numel():,}")


def _torchvision_state(name: str) -> dict[str, torch.Tensor]:
    """torchvision's weights ``MODEL[.WEIGHTS]`` from its cache, else downloaded by torchvision."""
    import torchvision.models  # heavy; only for torchvision: weights

    model, _, tag = name.partition(".")
    try:
        enum = torchvision.models.get_model_weights(model)
    except (ValueError, KeyError):
        known = torchvision.models.list_models()
        close = difflib.get_close_matches(model, known, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else " (torchvision.models.list_models() lists them)"
        raise WeightsError(f"torchvision:{name}: torchvision has no model '{model}'{hint}") from None
    tag = tag or "DEFAULT"
    if tag not in enum.__members__:
        raise WeightsError(
            f"torchvision:{name}: {model} has no weights '{tag}' (it has: {', '.join(enum.__members__)})"
        )
    weights = enum[tag]
    cached = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(weights.url)
    if cached.is_file():
        return _as_state_dict(_read_cached(cached), f"torchvision:{name}")
    try:
        with _socket_timeout(DOWNLOAD_TIMEOUT_S):
            state = weights.get_state_dict(progress=True, check_hash=True, weights_only=True)
    except (urllib.error.URLError, socket.timeout, ConnectionError) as exc:
        reason = getattr(exc, "reason", exc)
        raise WeightsError(
            f"torchvision:{name}: cannot download {weights.url} ({reason}). Where the internet is not "
            f"reachable, download the file on a machine where it is and put it in {cached.parent} "
            "(torchvision's cache; TORCH_HOME moves it), or pass its path: --weights FILE.pth"
        ) from None
    except RuntimeError as exc:  # torch.hub: the file does not match the hash in its name
        raise WeightsError(f"torchvision:{name}: the download of {weights.url} is damaged ({exc})") from None
    return _as_state_dict(state, f"torchvision:{name}")


def _read_cached(path: Path):
    try:
        return _read_file(path)
    except WeightsError as exc:
        raise WeightsError(f"{exc} (a damaged download in torchvision's cache? delete it to fetch it again)") from None


@contextlib.contextmanager
def _socket_timeout(seconds: float):
    """urllib (torch.hub's downloader) waits forever by default on a network that drops packets."""
    before = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(before)


# --------------------------------------------------------------------------- #
# Matching and loading
# --------------------------------------------------------------------------- #


def first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__
