"""config.json of a run directory as one typed object, :class:`RunConfig`: what the run
was trained on (data set, splits, channel statistics), with what (the effective training
settings, device, precision), and how to get its data back (:meth:`RunConfig.load_splits`,
the one place that reloads a run's splits and checks they are the ones it was trained on).

Only this class writes and reads config.json; every config.json written so far reads.
"""

from __future__ import annotations

import numbers
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from normscope.data.batches import Splits, prepare_data
from normscope.data.folder import ImageOptions
from normscope.fileio import write_json
from normscope.rundir.jsonfile import read_object
from normscope.rundir.layout import CONFIG, RERUN
from normscope.spec.settings import SETTINGS
from normscope.train.errors import RunError
from normscope.train.settings import FieldReads, TrainSettings

__all__ = ["CONFIG", "RunConfig", "STATS_TOLERANCE", "read_object"]


# the largest difference of a channel mean or std between the statistics recorded in
# config.json and those of the data found now that still counts as the same data set
STATS_TOLERANCE = 1e-6

# the types config.json's values must have (what the rest of normscope relies on)
_NUMBER, _INT, _BOOL, _TEXT = (numbers.Real,), (int,), (bool,), (str,)
_TYPES: dict[str, tuple] = {
    "name": _TEXT,
    "variant": _TEXT,
    "data": _TEXT,
    "validation": _NUMBER,
    "standardize": _BOOL,
    "split_seed": _INT,
    "sizes": (dict,),
    "input_shape": (list,),
    "class_names": (list,),
    "mean": (list,),
    "std": (list,),
    "train": (dict,),
    "device": _TEXT,
    "amp": _BOOL,
    "channels_last": _BOOL,
    "eval_batch_size": _INT,
}
# the types config.json's "train" values must have: those of the declared settings that are
# never null (lr is resolved to a number before a run starts)
_PLAIN = {float: _NUMBER, int: _INT, bool: _BOOL, str: _TEXT, list: (list,), dict: (dict,)}
_TRAIN_TYPES: dict[str, tuple] = {
    s.name: _PLAIN[s.types[0]] for s in SETTINGS if type(None) not in s.types and s.types[0] in _PLAIN
} | {"lr": _NUMBER}


def _check_types(values: Mapping[str, Any], where) -> None:
    """RunError naming the first key of config.json whose value has the wrong type."""
    for prefix, mapping, types in (("", values, _TYPES), ("train.", values.get("train"), _TRAIN_TYPES)):
        if not isinstance(mapping, Mapping):
            continue
        for key, wanted in types.items():
            value = mapping.get(key)
            if value is None and not prefix and key not in _REQUIRED_KEYS:
                continue
            if prefix and key not in mapping:  # written before the setting existed: its default
                continue
            bad = not isinstance(value, wanted) or (isinstance(value, bool) and bool not in wanted)
            if bad:
                raise RunError(f"{where}: {prefix}{key} is {value!r}, not a {wanted[0].__name__}; {RERUN}")
    for key in ("mean", "std"):
        if not all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in values[key]):
            raise RunError(f"{where}: {key} must be a list of numbers; {RERUN}")


def device_defaults(device: torch.device) -> tuple[bool, bool]:
    """(amp, channels_last) by default on ``device``: both on with CUDA, off on the CPU."""
    cuda = torch.device(device).type == "cuda"
    return cuda, cuda


@dataclass(kw_only=True)
class RunConfig(FieldReads):
    """The contents of config.json, in its key order. ``run.config["data"]`` and
    ``run.config.get("data")`` read it like the JSON's dict; unknown keys (from a newer
    version) are kept in ``extra`` and written back."""

    source: str | None = None  # the description the run was started from
    name: str  # the model (variant) name
    family: str | None = None
    variant: str
    norm: str | None = None
    reuse: bool | None = None
    overrides: list[str] = field(default_factory=list)  # KEY=VALUE applied to the description (--set, factors)
    data: str  # the data set as given (npz paths absolute)
    data_name: str | None = None
    data_dir: str | None = None
    subset: int | None = None
    test_subset: int | None = None
    validation: float
    standardize: bool
    split_seed: int
    sizes: dict[str, int] = field(default_factory=dict)
    data_files: dict[str, str] | None = None  # an image folder's files per split: a hash of names and sizes
    input_shape: list[int] = field(default_factory=list)
    classes: int | None = None
    class_names: list[str]
    mean: list[float]
    std: list[float]
    fit_data: bool = False
    train: TrainSettings
    device: str
    amp: bool
    channels_last: bool
    compile: bool = False
    eval_batch_size: int = 512
    extra: dict[str, Any] = field(default_factory=dict)

    # -- the JSON -------------------------------------------------------------------- #

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], where: str | Path = CONFIG) -> RunConfig:
        names = {f.name for f in fields(cls)} - {"extra"}
        missing = [f.name for f in fields(cls) if _required(f) and f.name not in values]
        if missing:
            raise RunError(f"{where}: not a run configuration of normscope (no {', '.join(missing)}); {RERUN}")
        _check_types(values, where)
        known = {k: v for k, v in values.items() if k in names}
        try:
            known["train"] = TrainSettings.from_dict(known["train"])
        except (TypeError, ValueError, AttributeError) as exc:
            raise RunError(f"{where}: train is not a run's training settings ({exc}); {RERUN}") from None
        return cls(**known, extra={k: v for k, v in values.items() if k not in names})

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "extra"}
        out["train"] = self.train.to_dict()
        return out | self.extra

    @classmethod
    def read(cls, run_dir: str | Path) -> RunConfig:
        path = Path(run_dir) / CONFIG
        if not path.is_file():
            raise RunError(f"{run_dir}: not a normscope run directory (no {CONFIG})")
        return cls.from_dict(read_object(path, RERUN), where=path)

    def write(self, run_dir: str | Path) -> None:
        write_json(Path(run_dir) / CONFIG, self.to_dict())

    def __getitem__(self, key: str) -> Any:
        if key in self.extra:
            return self.extra[key]
        return super().__getitem__(key)

    # -- a new run ------------------------------------------------------------------- #

    @classmethod
    def new(
        cls,
        spec,
        settings: TrainSettings,
        splits: Splits,
        *,
        input_shape,
        classes: int,
        data_dir,
        test_subset: int | None,
        split_seed: int,
        fit_data: bool,
        device: torch.device,
        amp: bool | None,
        channels_last: bool | None,
        eval_batch_size: int | None,
    ) -> RunConfig:
        """The configuration of a new run of ``spec`` on ``splits``; ``amp``,
        ``channels_last`` and ``eval_batch_size`` None take the device's defaults."""
        default_amp, default_cl = device_defaults(device)
        return cls(
            source=str(spec.file) if spec.file else None,
            name=spec.name,
            family=spec.family,
            variant=spec.variant,
            norm=spec.norm,
            reuse=spec.reuse,
            overrides=[o.text() for o in spec.overrides],
            data=settings.data,
            data_name=splits.name,
            data_dir=str(data_dir) if data_dir else None,
            subset=settings.subset,
            test_subset=test_subset,
            validation=settings.validation,
            standardize=settings.standardize,
            split_seed=split_seed,
            sizes=splits.sizes,
            data_files=getattr(splits, "fingerprints", None),
            input_shape=list(input_shape),
            classes=classes,
            class_names=list(splits.class_names),
            mean=splits.mean.tolist(),
            std=splits.std.tolist(),
            fit_data=fit_data,
            train=settings,
            device=str(device),
            amp=default_amp if amp is None else bool(amp),
            channels_last=default_cl if channels_last is None else bool(channels_last),
            compile=bool(settings.compile),
            eval_batch_size=eval_batch_size or (2048 if device.type == "cuda" else 512),
        )

    # -- using it -------------------------------------------------------------------- #

    def precision_on(self, device: torch.device) -> tuple[bool, bool]:
        """(amp, channels_last) to run on ``device``: the run's own on the kind of device it
        was trained on, else that device's defaults."""
        if torch.device(device).type == torch.device(self.device).type:
            return self.amp, self.channels_last
        return device_defaults(device)

    def load_splits(self, data_dir=None, where: str | Path | None = None) -> Splits:
        """The run's data (uint8 images, labels, statistics) loaded exactly as in training;
        ``data_dir`` overrides the recorded one. Raises RunError when the data found now is
        not the data the run was trained on (its channel statistics differ)."""
        splits = prepare_data(
            self.data,
            data_dir=data_dir or self.data_dir,
            subset=self.subset,
            test_subset=self.test_subset,
            validation=self.validation,
            standardize=self.standardize,
            split_seed=self.split_seed,
            normalize=self.train.normalize,
            image=ImageOptions.of(self.train.image_size, self.train.resize),
        )
        if self.data_files is not None and getattr(splits, "fingerprints", None) != self.data_files:
            raise RunError(
                f"{where or 'the run'}: the files of {self.data!r} found now are not the ones the run "
                "was trained on (names or sizes differ)"
            )
        saved = np.asarray(self.mean + self.std, dtype=np.float64)
        got = np.concatenate([splits.mean, splits.std])
        if saved.shape != got.shape or np.abs(saved - got).max() > STATS_TOLERANCE:
            raise RunError(
                f"{where or 'the run'}: the data set {self.data!r} found now is not the one the run "
                "was trained on (its channel statistics differ)"
            )
        return splits


def _required(f) -> bool:
    return f.default is MISSING and f.default_factory is MISSING


_REQUIRED_KEYS = {f.name for f in fields(RunConfig) if _required(f)}
