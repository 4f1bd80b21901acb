"""normscope's trainer: :func:`train`, read top to bottom.

1. Prepare   a new run (settings, data, run directory) or a killed one to resume
             (:mod:`normscope.train.prepare`).
2. Build     the model (seeded, frozen layers), the optimizer with per-layer learning
             rates, the loss, and the whole data set as uint8 on the device.
3. Resume    the state of last.pt (weights, optimizer, RNG, history), or a fresh one.
4. Epochs    train (crop and flip on the device), validate, checkpoint atomically;
             stop on a NaN/inf loss.
5. Finish    test metrics of the best checkpoint, results.json, tables, curves.

The run directory is locked while it trains (one writer). Ctrl-C and SIGTERM stop a run
as ``interrupted`` with the command that continues it (RunInterrupted); a failed write (a
full disk) stops it with an OSError that says so, the last complete checkpoint intact.

The test split is never touched before step 5. On CUDA the forward/backward pass runs
under bfloat16 autocast with channels_last tensors, optionally ``torch.compile``d; on
CPU everything is float32 and the same seed gives identical numbers.

Python API: :func:`train` returns the run directory (see :mod:`normscope.train.runs`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

from normscope.train.errors import RunInterrupted, TrainingFailed, interrupt_signals
from normscope.train.prepare import PreparedRun, commit_resume, new_run, reopen_run
from normscope.train.progress import Reporter
from normscope.train.settings import OVERRIDABLE
from normscope.train.state import TrainState
from normscope.train.trainer import Trainer

__all__ = ["train", "Trainer", "TrainState", "TrainingFailed"]


def train(
    description=None,
    *,
    data: str | None = None,
    data_dir=None,
    out="runs",
    name: str | None = None,
    norm: str | None = None,
    reuse: bool | None = None,
    epochs: int | None = None,
    batch_size: int | None = None,
    lr: float | None = None,
    seed: int | None = None,
    subset: int | None = None,
    test_subset: int | None = None,
    weights: str | None = None,
    normalize: str | None = None,
    image_size: int | None = None,
    resize: int | None = None,
    device: str | None = "auto",
    fit_data: bool = False,
    compile: bool | None = None,
    amp: bool | None = None,
    channels_last: bool | None = None,
    eval_batch_size: int | None = None,
    progress: str = "auto",
    resume=None,
    callbacks: Sequence[Callable[[dict], None]] = (),
    **settings,
) -> Path:
    """Train a model description and return its run directory.

    ``description``: a path or a ModelSpec. Settings come from its ``train:`` section;
    the keyword arguments override them (None = keep). ``data`` defaults to
    ``train.data``. ``norm``/``reuse`` pick the variant. ``fit_data`` builds a model with
    a fixed input/class count for a data set that differs. ``amp`` (bfloat16 autocast) and
    ``channels_last`` default to on for CUDA, off for CPU (where they can be asked for, mainly
    to exercise the GPU code path). ``subset``/``test_subset`` use
    class-stratified subsets of the training/test images. ``weights`` (a .pth state dict,
    relative to the working directory, or ``torchvision:NAME``) overrides ``train.weights``:
    pretrained weights loaded by structure into the new model (normscope.model.weights),
    with a report of what was loaded. ``normalize`` (imagenet | dataset | none), ``image_size`` and
    ``resize`` (image folders) override ``train.normalize``, ``train.image_size``, ``train.resize``.
    ``resume`` continues the run
    directory of a killed run (``epochs`` may extend it; everything else comes from the
    run). ``callbacks`` are called with each epoch's metrics row (plus ``train_seconds``,
    the training loop alone, and ``run_dir``) after its checkpoint is written. Raises
    TrainingFailed when the loss becomes NaN/inf (the run directory keeps the last good
    checkpoint, results.json says ``failed``); RunInterrupted (a KeyboardInterrupt) after
    Ctrl-C or SIGTERM; OSError after a failed write (a full disk), the last complete
    checkpoint intact.
    """
    unknown = set(settings) - set(OVERRIDABLE)
    if unknown:
        raise TypeError(f"train() got unexpected keyword arguments: {', '.join(sorted(unknown))}")
    options = {k: v for k, v in locals().items() if k not in ("settings", "unknown")} | settings
    reporter = Reporter(progress)
    with interrupt_signals():
        if resume is not None:
            run = reopen_run(Path(resume), epochs=epochs, device=device, data_dir=data_dir, reporter=reporter)
        else:
            run = new_run(description, options, reporter)  # train()'s arguments
        try:
            return _train(run, reporter, callbacks)
        finally:
            run.release()


def _train(run: PreparedRun, reporter: Reporter, callbacks) -> Path:
    """Build, restore (a resume's changes written only then), train, finish; an interrupted
    or failed run says how to continue it."""
    try:
        trainer = Trainer(run, reporter)  # build: model, optimizer, loss, data on the device
        trainer.restore(run.checkpoint)  # resume from last.pt, or start fresh (in memory)
        commit_resume(run, trainer.state)  # a resume's new epochs, best.pt repaired, metrics.csv
        status, message = trainer.run_epochs(callbacks)  # train, validate, checkpoint each epoch
        return trainer.finish(status, message)  # test metrics of best.pt, results.json, curves
    except KeyboardInterrupt as exc:
        raise RunInterrupted(run.run_dir) from exc
    except OSError as exc:
        where = f" ({exc.filename})" if exc.filename else ""
        raise OSError(
            exc.errno,
            f"{exc.strerror or exc}{where}: the run stopped, its last complete checkpoint is intact; "
            f"free space (or fix the cause), then continue with: normscope train --resume {run.run_dir}",
        ) from exc
