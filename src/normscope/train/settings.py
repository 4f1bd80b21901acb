"""The settings of a training run and the device it runs on.

:func:`resolve_settings` turns a description's ``train:`` section plus command-line
overrides into :class:`TrainSettings`, filling in the optimizer's tf.keras defaults
(:data:`KERAS_DEFAULTS`) where the description left ``null``. :func:`pick_device` turns
'auto', 'cpu', 'cuda[:N]' or 'gpu' into a torch device, with clear errors.
"""

from __future__ import annotations

import copy
import math
import numbers
from dataclasses import asdict, dataclass, fields
from typing import Any, Mapping

import torch

from normscope.errors import NormscopeError, SpecError
from normscope.keys import REQUIRED
from normscope.spec import AUGMENT_ARGS, TRAIN_ARGS

__all__ = [
    "KERAS_DEFAULTS",
    "OVERRIDABLE",
    "SEED_MAX",
    "FieldReads",
    "Augment",
    "TrainSettings",
    "resolve_settings",
    "check_count",
    "check_seed",
    "pick_device",
]

# What `lr: null` / `eps: null` mean for each optimizer: the defaults of tf.keras.
KERAS_DEFAULTS: dict[str, dict[str, Any]] = {
    "adam": {"lr": 1e-3, "betas": [0.9, 0.999], "eps": 1e-7},
    "adamw": {"lr": 1e-3, "betas": [0.9, 0.999], "eps": 1e-7, "weight_decay": 0.004},
    "sgd": {"lr": 1e-2},
    "rmsprop": {"lr": 1e-3, "rho": 0.9, "eps": 1e-7},
    "adagrad": {"lr": 1e-3, "eps": 1e-7, "initial_accumulator_value": 0.1},
    "adadelta": {"lr": 1e-3, "rho": 0.95, "eps": 1e-7},
}

# the `train:` keys that keyword arguments of train() (and options of the CLI) override
OVERRIDABLE = (
    "epochs",
    "batch_size",
    "lr",
    "seed",
    "data",
    "subset",
    "compile",
    "weights",
    "normalize",
    "image_size",
    "resize",
)
# seeds are 0 .. 2**32 - 1 (what numpy's and torch's generators all take)
SEED_MAX = 2**32 - 1


def check_count(value, what: str, least: int = 1) -> int:
    """``value`` as an int of at least ``least``; a NormscopeError naming ``what`` (an option or
    a key) otherwise."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < least:
        need = "a positive integer" if least == 1 else f"an integer of at least {least}"
        raise NormscopeError(f"{what} must be {need}, got {value!r}")
    return int(value)


def check_seed(value, what: str = "--seed") -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not 0 <= value <= SEED_MAX:
        raise NormscopeError(f"{what} must be an integer from 0 to {SEED_MAX:,}, got {value!r}")
    return int(value)


class FieldReads:
    """``obj[key]`` and ``obj.get(key)``: read access by the key of the JSON the dataclass
    is written as, for code written against that JSON's plain dict."""

    def __getitem__(self, key: str) -> Any:
        if key in {f.name for f in fields(self)}:
            return getattr(self, key)
        raise KeyError(key)

    def get(self, key: str, default: Any = None) -> Any:
        try:
            return self[key]
        except KeyError:
            return default


def _default(schema: Mapping, key: str) -> Any:
    arg = schema[key]
    return None if arg.default is REQUIRED else copy.deepcopy(arg.default)


def _plain(value: Any) -> Any:
    """Plain dicts and lists (the DSL's line-numbered mappings do not dump as YAML)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


@dataclass
class Augment(FieldReads):
    """Training augmentation: random crops of ``crop`` pixels of zero padding, horizontal flips."""

    crop: int = 0
    flip: bool = False


@dataclass
class TrainSettings(FieldReads):
    """The effective ``train:`` settings of a run (the DSL's TRAIN_ARGS, in their order),
    written into description.yml and config.json."""

    optimizer: str
    lr: float
    momentum: float
    nesterov: bool
    weight_decay: float
    eps: float | None
    betas: list[float] | None
    epochs: int
    batch_size: int
    schedule: str
    step_size: int
    gamma: float
    warmup_epochs: int
    label_smoothing: float
    augment: Augment
    standardize: bool
    validation: float
    freeze: list[str] | None
    lr_mult: dict[str, float] | None
    weights: str | None
    data: str | None
    subset: int | None
    seed: int
    compile: bool
    normalize: str | None = None
    image_size: int | None = None
    resize: int | None = None
    cache_features: bool = True

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> TrainSettings:
        """From a ``train:`` mapping (a resolved spec.train, config.json's "train"); keys it
        lacks take the DSL's defaults (a config.json written before the key existed)."""
        given = {
            f.name: _plain(values[f.name]) if f.name in values else _default(TRAIN_ARGS, f.name) for f in fields(cls)
        }
        augment = given["augment"] or {}
        given["augment"] = Augment(
            **{k: augment[k] if k in augment else _default(AUGMENT_ARGS, k) for k in AUGMENT_ARGS}
        )
        return cls(**given)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def resolve_settings(spec, overrides: dict | None = None) -> TrainSettings:
    """The effective training settings: ``spec.train`` with ``overrides`` (None = keep)
    applied and the optimizer's Keras defaults filled in where the description left
    ``null``."""
    t = _plain(dict(spec.train))
    given = set()
    for key, value in (overrides or {}).items():
        if key not in OVERRIDABLE:
            raise ValueError(f"cannot override train.{key}")
        if value is not None:
            t[key] = value
            given.add(key)

    def where(key: str) -> str:  # the option, or the description's key, a value came from
        return f"--{key.replace('_', '-')}" if key in given else f"{spec.file or 'the description'}: train.{key}"

    for key in ("epochs", "batch_size"):
        check_count(t[key], where(key))
    if t["subset"] is not None:
        check_count(t["subset"], where("subset") + " (training images)", least=2)
    t["seed"] = check_seed(t["seed"], where("seed"))
    defaults = KERAS_DEFAULTS[t["optimizer"]]
    raw = (spec.document.get("train") or {}) if isinstance(spec.document, dict) else {}
    t["lr"] = float(defaults["lr"] if t["lr"] is None else t["lr"])
    if not (math.isfinite(t["lr"]) and t["lr"] > 0):
        raise NormscopeError(f"{where('lr')}: the learning rate must be a positive number, got {t['lr']}")
    if t["eps"] is None and "eps" in defaults:
        t["eps"] = defaults["eps"]
    if t["betas"] is None and "betas" in defaults:
        t["betas"] = list(defaults["betas"])
    if "weight_decay" in defaults and "weight_decay" not in raw:
        t["weight_decay"] = defaults["weight_decay"]
    if t["betas"] is not None and (len(t["betas"]) != 2 or not all(0 <= b < 1 for b in t["betas"])):
        raise SpecError(f"train.betas must be two numbers in [0, 1), got {t['betas']}", file=spec.file)
    if t["optimizer"] == "sgd" and t["nesterov"] and t["momentum"] <= 0:
        raise SpecError("train.nesterov needs train.momentum > 0", file=spec.file)
    return TrainSettings.from_dict(t)


def pick_device(device: str | None = "auto") -> torch.device:
    """'auto' (CUDA when available), 'cpu', 'cuda', 'cuda:N' or 'gpu'."""
    device = (device or "auto").lower()
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "gpu":
        device = "cuda"
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise NormscopeError(f"unknown device {device!r}; use auto, cpu, cuda or cuda:N") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise NormscopeError(
                "--gpu / --device cuda: no CUDA GPU is available to PyTorch here "
                f"(torch {torch.__version__}); train on the CPU with --device cpu"
            )
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise NormscopeError(f"--device {device}: only {torch.cuda.device_count()} CUDA device(s)")
    elif dev.type != "cpu":
        raise NormscopeError(f"device {device!r} is not supported; use cpu or cuda")
    return dev
