"""Before the first epoch: a new run (settings, data, model fit, run directory) or a
killed one reopened to resume. Both give a :class:`PreparedRun`, holding the run
directory's lock (normscope.rundir.lock), to the loop.

Validate, then write: everything is checked (settings, output directory, data, the
checkpoint against the description) before a new run directory is made or a file of an
existing one changes; a resumed run's changes are written by :func:`commit_resume` once
the trainer has restored last.pt. The test split is loaded here but not touched before the
run finishes.
"""

from __future__ import annotations

import itertools
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
import yaml

import normscope.train.runs as runs
from normscope.data.batches import Splits, prepare_data
from normscope.data.folder import ImageOptions
from normscope.errors import NormscopeError
from normscope.model.build import build_model
from normscope.model.diagnostics import too_large
from normscope.model.graph import build_graph
from normscope.model.weights import TORCHVISION, Weights, load_weights, match_weights, read_weights, resolve_source
from normscope.rundir import lock
from normscope.spec import load_spec
from normscope.spec.schema import check_setting
from normscope.train.callbacks import EarlyStopping, check_log
from normscope.train.checkpoint import LAST_KEYS
from normscope.train.config import RunConfig
from normscope.train.progress import Reporter
from normscope.train.settings import OVERRIDABLE, check_count, pick_device, resolve_settings
from normscope.train.state import TrainState

__all__ = ["PreparedRun", "start_run", "new_run", "reopen_run", "commit_resume", "fit_to_data", "load_pretrained"]

SPLIT_SEED = 0  # the splits depend on this only: runs with other training seeds see the same images


@dataclass
class PreparedRun:
    """A run directory ready to train: its configuration, its data, the device, and
    last.pt's contents when it is resumed."""

    run_dir: Path
    config: RunConfig
    splits: Splits
    device: torch.device
    checkpoint: dict | None = None
    weights: Weights | None = None  # a new run's pretrained weights (train.weights), already matched
    run_lock: lock.RunLock | None = None  # the run directory's, held until the run ends
    extend_to: int | None = None  # a resumed run's new epoch count, written by commit_resume

    def release(self) -> None:
        if self.run_lock is not None:
            self.run_lock.release()


# --------------------------------------------------------------------------- #
# A new run
# --------------------------------------------------------------------------- #


def start_run(
    description,
    *,
    overrides: dict,
    data_dir,
    out,
    name: str | None,
    norm: str | None,
    reuse: bool | None,
    test_subset: int | None,
    device: str | None,
    fit_data: bool,
    amp: bool | None,
    channels_last: bool | None,
    eval_batch_size: int | None,
    reporter: Reporter,
) -> PreparedRun:
    """Resolve the settings of ``description`` (a path or a ModelSpec) with ``overrides``,
    load the data, check the model fits it, and write the new run directory's
    description.yml, config.json and env.json."""
    if description is None:
        raise NormscopeError("train needs a model description (or resume=RUN_DIR)")
    spec = load_spec(description, norm=norm, reuse=reuse)
    settings = resolve_settings(spec, overrides)
    check_log(settings.log)  # (both checked before any file is made)
    EarlyStopping.from_settings(settings.early_stopping)
    if test_subset is not None:
        check_count(test_subset, "--test-subset (test images)")
    settings.data = _data_of(spec, settings.data)
    settings.weights = _weights_of(spec, overrides.get("weights"), settings.weights)
    resolve_data_options(spec, settings)
    runs.check_out_dir(out)  # before the data loads: a long run must not die at its first write
    if data_dir is not None:
        data_dir = Path(data_dir).expanduser().resolve()
    splits = _splits(settings, data_dir, test_subset)
    input_shape, classes, notes = fit_to_data(spec, splits, settings.data, fit_data)
    _check_fits_memory(spec, input_shape, classes)
    weights = _matched_weights(spec, settings.weights, input_shape, classes)
    dev = pick_device(device)
    config = RunConfig.new(
        spec,
        settings,
        splits,
        input_shape=input_shape,
        classes=classes,
        data_dir=data_dir,
        test_subset=test_subset,
        split_seed=SPLIT_SEED,
        fit_data=bool(notes),
        device=dev,
        amp=amp,
        channels_last=channels_last,
        eval_batch_size=eval_batch_size,
    )
    run_dir = runs.create_run_dir(
        out, name or runs.default_run_name(spec.name, settings.data, settings.seed), unique=name is None
    )
    held = lock.acquire(run_dir)
    try:
        _write_new_run(run_dir, spec, config, dev)
    except BaseException:  # (a full disk, Ctrl-C): no half-made run directory stays behind
        shutil.rmtree(run_dir, ignore_errors=True)
        held.release()
        raise
    if name is not None and run_dir.name != name:
        notes.append(f"note: --name {name!r} is not a safe directory name; the run directory is {run_dir}")
    for note in notes + [f"warning: {w}" for w in spec.warnings]:
        reporter.note(note)
    return PreparedRun(run_dir, config, splits, dev, weights=weights, run_lock=held)


def new_run(description, options: dict, reporter: Reporter) -> PreparedRun:
    """:func:`start_run` with train()'s keyword arguments ``options``."""
    overrides = {key: options.get(key) for key in OVERRIDABLE}
    keys = ("data_dir", "out", "name", "norm", "reuse", "test_subset", "device", "fit_data", "amp", "channels_last")
    return start_run(
        description,
        overrides=overrides,
        eval_batch_size=options["eval_batch_size"],
        reporter=reporter,
        **{key: options[key] for key in keys},
    )


def _splits(settings, data_dir, test_subset: int | None) -> Splits:
    """The data of a new run; refused when a split the run needs is empty."""
    splits = prepare_data(
        settings.data,
        data_dir=data_dir,
        subset=settings.subset,
        test_subset=test_subset,
        validation=settings.validation,
        standardize=settings.standardize,
        split_seed=SPLIT_SEED,
        normalize=settings.normalize,
        image=ImageOptions.of(settings.image_size, settings.resize),
    )
    for split in ("train", "test"):
        if len(splits.y[split]) == 0:
            raise NormscopeError(f"{settings.data}: the {split} split is empty; a run needs {split} images")
    return splits


def resolve_data_options(spec, settings) -> None:
    """Fill in ``settings.normalize`` (imagenet with torchvision: weights, all ImageNet's; else
    dataset, or none without standardize) and, for an image folder, ``image_size`` (default: the
    description's input) and ``resize`` (default: image_size); recorded in the run as resolved."""
    if settings.normalize is None:
        imagenet = bool(settings.weights) and str(settings.weights).startswith(TORCHVISION)
        settings.normalize = "imagenet" if imagenet else "dataset" if settings.standardize else "none"
    if not str(settings.data).startswith("folder:"):
        return
    if settings.image_size is None:
        shape = spec.input_shape
        if shape is None or shape[1] != shape[2]:
            raise NormscopeError(
                f"{settings.data}: image folders need an image size: set train.image_size "
                "(or a square `input` in the description)"
            )
        settings.image_size = int(shape[1])
    settings.resize = settings.resize or settings.image_size
    ImageOptions.of(settings.image_size, settings.resize)  # checked now, before any work


def _weights_of(spec, given: str | None, setting: str | None) -> str | None:
    """The run's pretrained weights: a path given to train() from the working directory, one in
    the description from the description's directory (absolute, so description.yml finds it)."""
    if given:
        return resolve_source(given)
    if setting:
        return resolve_source(setting, Path(spec.file).parent if spec.file else None)
    return None


def _matched_weights(spec, source: str | None, input_shape, classes) -> Weights | None:
    """The pretrained weights read (downloaded) and matched against the model before the run
    directory is made: a model on the meta device holds no memory and draws nothing."""
    if source is None:
        return None
    weights = read_weights(source)
    with torch.device("meta"):
        probe = build_model(spec, input_shape=input_shape, classes=classes, freeze=False)
    match_weights(probe, weights)
    return weights


def load_pretrained(model, run: PreparedRun, reporter: Reporter) -> None:
    """A new run's pretrained weights into ``model``, the report shown and written to weights.json;
    a loud warning where layers stay random although the weights had layers for them."""
    report = load_weights(model, run.weights)
    run.weights = None  # their memory goes back
    reporter.note(str(report))
    runs.write_json(run.run_dir / runs.WEIGHTS, report.to_dict())
    if report.warning():
        reporter.warn_block(report.warning(), "pretrained layers left random")


def _check_fits_memory(spec, input_shape, classes) -> None:
    """A model whose weights alone exceed this machine's memory is refused before it is built."""
    for problem in too_large(build_graph(spec, input_shape=input_shape, classes=classes)):
        raise NormscopeError(str(problem))


def _data_of(spec, data: str | None) -> str:
    """The data set to train on; an existing npz file by its absolute path (found from anywhere later)."""
    if not data:
        raise NormscopeError(
            f"{spec.file}: no data set: pass --data (cifar100, fashion-mnist, "
            "npz:PATH, folder:PATH, synthetic) or set train.data in the description"
        )
    for kind in ("npz:", "folder:"):
        if data.startswith(kind) and Path(data[len(kind) :]).expanduser().exists():
            return kind + str(Path(data[len(kind) :]).expanduser().resolve())
    return data


def fit_to_data(spec, splits: Splits, data: str, fit_data: bool) -> tuple[tuple, int, list[str]]:
    """(input_shape, classes) the model is built with, and notes for the log.

    `auto` in the description takes the data's value; a fixed value that differs from
    the data is an error unless ``fit_data`` (then the data's value wins, with a note)."""
    shape, classes = splits.input_shape, splits.num_classes
    problems = []
    if spec.input_shape is not None and tuple(spec.input_shape) != shape:
        problems.append(
            f"the description's input is {_shape_str(spec.input_shape)} but the images "
            f"of {data} are {_shape_str(shape)}"
        )
    if spec.classes is not None and spec.classes != classes:
        problems.append(f"the description has {spec.classes} classes but {data} has {classes}")
    if problems and not fit_data:
        raise NormscopeError(
            f"{spec.file}: the model does not fit the data: {'; '.join(problems)}. "
            "Set `input: auto` and `classes: auto` in the description to take them "
            "from the data, or pass --fit-data."
        )
    return shape, classes, [f"--fit-data: {p}; building the model for the data" for p in problems]


def _shape_str(shape) -> str:
    return "x".join(str(v) for v in shape)


def _write_new_run(run_dir: Path, spec, config: RunConfig, dev: torch.device) -> None:
    """description.yml (the resolved description: `normscope train` on it reproduces the
    run), config.json and env.json."""
    document = dict(spec.document)
    document.update(
        {
            "input": list(config.input_shape),
            "classes": config.classes,
            "train": {k: v for k, v in config.train.to_dict().items() if v is not None},
        }
    )
    document.pop("variants", None)
    runs.write_text(
        run_dir / runs.DESCRIPTION,
        f"# resolved by normscope from {spec.file}\n" + yaml.safe_dump(document, sort_keys=False),
    )
    config.write(run_dir)
    runs.write_json(run_dir / runs.ENV, runs.environment(dev))


# --------------------------------------------------------------------------- #
# Resuming
# --------------------------------------------------------------------------- #


def reopen_run(run_dir: Path, *, epochs: int | None, device: str | None, data_dir, reporter: Reporter) -> PreparedRun:
    """A killed (or finished, when ``epochs`` extends it) run directory with last.pt's
    contents; everything but ``epochs``, the device and ``data_dir`` comes from the run.

    Takes the directory's lock (RunBusy when another live process holds it), then checks
    everything (config.json, description.yml, results.json, last.pt against the description,
    ``epochs``, the device, the data) and writes nothing: a refused resume leaves every file
    as it was. A run killed before its first epoch ended (no last.pt) starts again from it."""
    run_dir = Path(run_dir).expanduser()
    runs.check_run_dir(run_dir)
    held = lock.acquire(run_dir)
    try:
        return _reopen(run_dir, epochs, device, data_dir, reporter, held)
    except BaseException:
        held.release()
        raise


def _reopen(run_dir: Path, epochs, device, data_dir, reporter: Reporter, held: lock.RunLock) -> PreparedRun:
    config = RunConfig.read(run_dir)
    spec = runs.run_spec(run_dir)  # description.yml is a description
    status = _status(run_dir, reporter)
    checkpoint = None
    if (run_dir / runs.LAST).is_file():
        checkpoint = runs.load_checkpoint(run_dir / runs.LAST, map_location="cpu", keys=LAST_KEYS)
        with torch.device("meta"):  # the shapes of the run's model, without its memory
            probe = build_model(run_dir / runs.DESCRIPTION)
        runs.check_state(probe.state_dict(), checkpoint["model"], run_dir / runs.LAST)
    done = int(checkpoint["epoch"]) if checkpoint else 0
    extend_to = None
    if epochs is not None:
        epochs = check_setting("epochs", epochs, "--epochs")
        if epochs < done:
            raise NormscopeError(f"--epochs {epochs}: {run_dir} has already done {done} epochs")
        if epochs != config.train.epochs:
            extend_to = epochs
    if extend_to is None and status == "completed":
        raise NormscopeError(
            f"{run_dir}: the run is already complete ({config.train.epochs} epochs); pass --epochs to extend it"
        )
    dev = _resume_device(config, device, reporter)
    splits = config.load_splits(data_dir, where=run_dir)
    # a run started again from its first epoch starts from its pretrained weights again
    weights = None if checkpoint else _matched_weights(spec, config.train.weights, config.input_shape, config.classes)
    if extend_to is not None:
        config.train.epochs = extend_to  # in memory: commit_resume writes it
    reporter.note(
        f"resuming {run_dir} after epoch {done}" if checkpoint else f"restarting {run_dir} (no epoch had finished)"
    )
    return PreparedRun(run_dir, config, splits, dev, checkpoint, weights, held, extend_to)


def _status(run_dir: Path, reporter: Reporter) -> str | None:
    """results.json's status; a damaged results.json is rewritten by the resumed run."""
    if not (run_dir / runs.RESULTS).is_file():
        return None
    try:
        return runs.read_json(run_dir / runs.RESULTS).get("status")
    except runs.RunError as exc:
        reporter.note(f"note: {exc}")
        return None


def commit_resume(run: PreparedRun, state: TrainState) -> None:
    """What a resume changes, once everything is checked and last.pt restored: the new epoch
    count (description.yml, still valid, and config.json), best.pt where a kill left it one
    improvement behind, metrics.csv as last.pt's history."""
    if run.extend_to is not None:
        _write_epochs(run.run_dir, run.config)
    if run.checkpoint is not None:
        runs.repair_best(run.run_dir, run.checkpoint)
        runs.write_history(run.run_dir / runs.METRICS, state.history)


def _write_epochs(run_dir: Path, config: RunConfig) -> None:
    """The run's epochs in description.yml (its first comment lines kept) and config.json."""
    text = (run_dir / runs.DESCRIPTION).read_text(encoding="utf-8")
    head = "".join(itertools.takewhile(lambda line: line.startswith("#"), text.splitlines(keepends=True)))
    doc = yaml.safe_load(text)
    doc.setdefault("train", {})["epochs"] = config.train.epochs
    runs.write_text(run_dir / runs.DESCRIPTION, head + yaml.safe_dump(doc, sort_keys=False))
    config.write(run_dir)


def _resume_device(config: RunConfig, device: str | None, reporter: Reporter) -> torch.device:
    """``device`` when given, else the run's (the CPU when its CUDA is gone), with a note when
    it is not the run's. (The loop takes the new device kind's precision defaults.)"""
    if device not in (None, "auto"):
        dev = pick_device(device)
    elif torch.device(config.device).type == "cuda" and not torch.cuda.is_available():
        dev = torch.device("cpu")
    else:
        dev = torch.device(config.device)
    if str(dev) != config.device:
        reporter.note(
            f"note: the run was trained on {config.device}, continuing on {dev} "
            "(the continuation is then not bit-identical)"
        )
    return dev
