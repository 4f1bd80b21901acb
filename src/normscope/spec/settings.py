"""The run settings, each declared once: name, type, range, default, help, whether the
command line has an option for it, and whether it may differ within a study.

Everything else is derived from :data:`SETTINGS`: the `train:` schema of the description
(:data:`normscope.spec.schema.TRAIN_ARGS`), the typed record of a run's settings
(``normscope.train.settings.TrainSettings``, with config.json's "train" object), the
command-line options of `train` and `study` (``normscope.cli.settings``), the checks of
values given there, and the study's jobs (a study passes its settings to every run as
overrides of the description).

Adding a setting is adding one :class:`Setting` here.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any, Callable

from normscope.keys import Arg
from normscope.spec.callbacks import early_stopping_problem, log_problem

__all__ = ["SETTINGS", "BY_NAME", "Setting", "flag_settings"]


@dataclass(frozen=True)
class Setting:
    """One run setting.

    ``low``/``high`` bound a number (``low_open``/``high_open``: the bound itself is
    excluded); ``choices`` a string. ``option`` is the command-line option of `train` and
    `study` (None: only ``--set train.NAME=VALUE``). ``per_run``: the setting differs from
    run to run within a study (the seed); every other setting is one value for the whole
    study, or one per level of a ``--factor`` that varies it."""

    name: str
    types: tuple
    default: Any
    help: str = ""
    choices: tuple | None = None
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    option: str | None = None
    per_run: bool = False
    check: Callable[[Any], str | None] | None = None  # what else is wrong with a value, or None

    def problem(self, value) -> str | None:
        """What is wrong with a value of the right type (its range), or None."""
        if value is None:
            return None
        if self.check is not None:
            problem = self.check(value)
            if problem:
                return problem
        numbers_ = value if isinstance(value, (list, tuple)) else [value]
        for v in numbers_:
            if isinstance(v, numbers.Real) and not isinstance(v, bool):
                if not math.isfinite(v):
                    return "must be a finite number"
                if self.low is not None and (v < self.low or (self.low_open and v == self.low)):
                    return f"must be {self.range_text()}"
                if self.high is not None and (v > self.high or (self.high_open and v == self.high)):
                    return f"must be {self.range_text()}"
        return None

    def range_text(self) -> str:
        if self.low is not None and self.high is not None:
            left, right = "(" if self.low_open else "[", ")" if self.high_open else "]"
            return f"in {left}{_num(self.low)}, {_num(self.high)}{right}"
        if self.low is not None:
            return f"{'>' if self.low_open else '>='} {_num(self.low)}"
        if self.high is not None:
            return f"{'<' if self.high_open else '<='} {_num(self.high)}"
        return "any value"

    def arg(self) -> Arg:
        """The setting as a key of the description's `train:` section."""
        help_text = self.help
        if self.low is not None or self.high is not None:
            help_text = f"{help_text} ({self.range_text()})" if help_text else self.range_text()
        return Arg(self.types, self.default, choices=self.choices, check=self.problem, help=help_text)


def _num(v: float) -> str:
    return str(int(v)) if float(v).is_integer() and abs(v) < 1e15 else repr(v)


SEED_MAX = 2**32 - 1
OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop", "adagrad", "adadelta")
SCHEDULES = ("none", "cosine", "step", "onecycle")
_NUM, _OPT_NUM, _INT = (float,), (float, type(None)), (int,)

SETTINGS: tuple[Setting, ...] = (
    Setting("optimizer", (str,), "adam", choices=OPTIMIZERS),
    Setting(
        "lr",
        _OPT_NUM,
        None,
        "learning rate (default: the optimizer's Keras default)",
        low=0,
        low_open=True,
        option="--lr",
    ),
    Setting("momentum", _NUM, 0.0, "sgd / rmsprop momentum", low=0, high=1, high_open=True),
    Setting("nesterov", (bool,), False, "Nesterov momentum (sgd)"),
    Setting("weight_decay", _NUM, 0.0, "decoupled (adamw) or L2 weight decay", low=0),
    Setting("eps", _OPT_NUM, None, "optimizer epsilon (Keras default 1e-7)", low=0, low_open=True),
    Setting("betas", (list, type(None)), None, "Adam's two decay rates", low=0, high=1, high_open=True),
    Setting("epochs", _INT, 30, "training epochs (with --resume: extend to)", low=1, option="--epochs"),
    Setting("batch_size", _INT, 128, "images per training step", low=1, option="--batch-size"),
    Setting("schedule", (str,), "none", "learning-rate schedule", choices=SCHEDULES),
    Setting("step_size", _INT, 30, "epochs between lr decays (schedule: step)", low=1),
    Setting("gamma", _NUM, 0.1, "lr decay factor (schedule: step)", low=0, low_open=True),
    Setting("warmup_epochs", _INT, 0, "epochs of linear learning-rate warm-up", low=0),
    Setting(
        "grad_clip",
        _OPT_NUM,
        None,
        "clip the gradients' global L2 norm to this before each step (null: no clipping)",
        low=0,
        low_open=True,
        option="--grad-clip",
    ),
    Setting("label_smoothing", _NUM, 0.0, "label smoothing of the loss", low=0, high=1, high_open=True),
    Setting("augment", (dict,), None, "{crop: padding in pixels (0 = off), flip: true|false}"),
    Setting("standardize", (bool,), True, "per-channel standardization with training statistics"),
    Setting(
        "validation", _NUM, 0.1, "share of the training images held out for validation", low=0, high=1, high_open=True
    ),
    Setting("freeze", (list, type(None)), None, "layer names or glob patterns whose weights are not trained"),
    Setting("lr_mult", (dict, type(None)), None, "{layer name or glob: learning-rate multiplier}"),
    Setting(
        "weights",
        (str, type(None)),
        None,
        "pretrained weights loaded before training: a .pth state dict (relative to the description) or "
        "torchvision:NAME, e.g. torchvision:vgg19.IMAGENET1K_V1 (docs/transfer.md)",
        option="--weights",
    ),
    Setting(
        "data",
        (str, type(None)),
        None,
        "data set: cifar100 | cifar100-coarse | fashion-mnist | npz:PATH | synthetic[:N]",
        option="--data",
    ),
    Setting(
        "subset", (int, type(None)), None, "train on a class-stratified subset of N images", low=2, option="--subset"
    ),
    Setting(
        "seed", _INT, 0, "training seed (weights, batch order)", low=0, high=SEED_MAX, option="--seed", per_run=True
    ),
    Setting("compile", (bool,), False, "torch.compile the model", option="--compile"),
    Setting(
        "normalize",
        (str, type(None)),
        None,
        "input standardization: ImageNet's channel means and stds, the training split's, or none "
        "(default: imagenet with torchvision: weights, else dataset, or none with standardize: false)",
        choices=("imagenet", "dataset", "none"),
        option="--normalize",
    ),
    Setting(
        "image_size",
        (int, type(None)),
        None,
        "folder: data: the side of the square images the model sees (default: the description's input)",
        low=1,
        option="--image-size",
    ),
    Setting(
        "resize",
        (int, type(None)),
        None,
        "folder: data: the shorter side resized to this before the centre crop (default: image_size)",
        low=1,
        option="--resize",
    ),
    Setting(
        "cache_features",
        (bool,),
        True,
        "a frozen backbone's output computed once and reused by the epochs that train the head",
    ),
    Setting(
        "log",
        (str, list, type(None)),
        None,
        "tensorboard: event files in RUN/tensorboard/ (pip install 'normscope[tensorboard]')",
        check=log_problem,
        option="--log",
    ),
    Setting(
        "early_stopping",
        (dict, type(None)),
        None,
        "{metric: val_loss, patience: 0, min_delta: 0}: stop after `patience` epochs without an "
        "improvement of more than min_delta (Keras' EarlyStopping)",
        check=early_stopping_problem,
    ),
)

BY_NAME: dict[str, Setting] = {s.name: s for s in SETTINGS}


def flag_settings(study: bool = False) -> list[Setting]:
    """The settings with a command-line option (a study's per-run ones excluded: it has --seeds)."""
    return [s for s in SETTINGS if s.option and not (study and s.per_run)]
