"""Optimizer and learning-rate schedule of a run.

:func:`param_groups` gives one parameter group per learning-rate multiplier
(``train.lr_mult``) and leaves frozen parameters (``train.freeze``) out;
:func:`make_optimizer` builds the optimizer with Keras' defaults; :func:`lr_factor` is the
schedule (warm-up, then constant, cosine, step or one-cycle), applied by :func:`set_lr`.
"""

from __future__ import annotations

import fnmatch
import math
from typing import Any, Mapping

import torch

from normscope.errors import SpecError
from normscope.train.settings import KERAS_DEFAULTS, TrainSettings

__all__ = ["param_groups", "make_optimizer", "lr_factor", "set_lr"]


def param_groups(model, lr: float, lr_mult: dict | None, file=None) -> list[dict]:
    """One parameter group per learning-rate multiplier. A layer takes the multiplier of
    the first ``lr_mult`` pattern its name matches; frozen parameters are left out."""
    lr_mult = lr_mult or {}
    by_mult: dict[float, list] = {}
    seen: set[int] = set()
    used: set[str] = set()
    for name, module in model.layers.items():
        mult = 1.0
        for pattern, m in lr_mult.items():
            if fnmatch.fnmatchcase(name, pattern):
                mult = float(m)
                used.add(pattern)
                break
        for p in module.parameters():
            if id(p) not in seen:
                seen.add(id(p))
                if p.requires_grad:
                    by_mult.setdefault(mult, []).append(p)
    for p in model.parameters():  # parameters outside model.layers (none today)
        if id(p) not in seen and p.requires_grad:
            by_mult.setdefault(1.0, []).append(p)
    unused = [p for p in lr_mult if p not in used]
    if unused:
        raise SpecError(f"train.lr_mult: no layer matches {', '.join(repr(u) for u in unused)}", file=file)
    if not by_mult:
        raise SpecError("nothing to train: every layer is frozen", file=file)
    return [{"params": ps, "lr": lr * m, "lr_mult": m} for m, ps in by_mult.items()]


def make_optimizer(model, t: TrainSettings, file=None) -> torch.optim.Optimizer:
    """The optimizer of ``t.optimizer`` with Keras' defaults where the description
    left values open (see KERAS_DEFAULTS). Weight decay is L2 (coupled) except for AdamW."""
    groups = param_groups(model, t.lr, t.lr_mult, file=file)
    opt, lr, wd, d = t.optimizer, t.lr, t.weight_decay, KERAS_DEFAULTS[t.optimizer]
    if opt == "adam":
        return torch.optim.Adam(groups, lr=lr, betas=tuple(t.betas), eps=t.eps, weight_decay=wd)
    if opt == "adamw":
        return torch.optim.AdamW(groups, lr=lr, betas=tuple(t.betas), eps=t.eps, weight_decay=wd)
    if opt == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=t.momentum, nesterov=t.nesterov, weight_decay=wd)
    if opt == "rmsprop":
        return torch.optim.RMSprop(groups, lr=lr, alpha=d["rho"], eps=t.eps, momentum=t.momentum, weight_decay=wd)
    if opt == "adagrad":
        return torch.optim.Adagrad(
            groups, lr=lr, eps=t.eps, weight_decay=wd, initial_accumulator_value=d["initial_accumulator_value"]
        )
    if opt == "adadelta":
        return torch.optim.Adadelta(groups, lr=lr, rho=d["rho"], eps=t.eps, weight_decay=wd)
    raise SpecError(f"unknown optimizer {opt!r}", file=file)  # validated by the DSL already


def lr_factor(step: int, total_steps: int, steps_per_epoch: int, t: TrainSettings | Mapping[str, Any]) -> float:
    """Multiplier of the base learning rate at optimizer step ``step`` (0-based); ``t``
    the settings (or a mapping with schedule, warmup_epochs, step_size, gamma).

    Linear warm-up over ``warmup_epochs``, then: none (constant), cosine (to 0 at the last
    step), step (x ``gamma`` every ``step_size`` epochs), onecycle (warm-up from 1/25 over
    the first 30% unless warmup_epochs is set, then cosine to 0)."""
    schedule = t["schedule"]
    warm = t["warmup_epochs"] * steps_per_epoch
    if schedule == "onecycle":
        warm = warm or max(1, round(0.3 * total_steps))
        if step < warm:
            return 0.04 + 0.96 * step / warm
    elif step < warm:
        return (step + 1) / warm
    if schedule == "step":
        return t["gamma"] ** ((step // steps_per_epoch) // max(1, t["step_size"]))
    if schedule in ("cosine", "onecycle"):
        span = max(1, total_steps - warm)
        return 0.5 * (1.0 + math.cos(math.pi * min(step - warm, span) / span))
    return 1.0


def set_lr(optimizer, base_lr: float, factor: float) -> None:
    for g in optimizer.param_groups:
        g["lr"] = base_lr * g.get("lr_mult", 1.0) * factor
