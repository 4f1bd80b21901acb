"""Before the first epoch: a new run (settings, data, model fit, run directory) or a
killed one reopened to resume. Both give a :class:`PreparedRun` to the loop.

The test split is loaded here but not touched before the run finishes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import yaml

import normscope.train.runs as runs
from normscope.data.batches import Splits, prepare_data
from normscope.errors import NormscopeError
from normscope.spec import load_spec
from normscope.train.config import RunConfig
from normscope.train.progress import Reporter
from normscope.train.settings import pick_device, resolve_settings

__all__ = ["PreparedRun", "start_run", "reopen_run", "fit_to_data"]

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
    settings.data = _data_of(spec, settings.data)
    if data_dir is not None:
        data_dir = Path(data_dir).expanduser().resolve()
    splits = prepare_data(
        settings.data,
        data_dir=data_dir,
        subset=settings.subset,
        test_subset=test_subset,
        validation=settings.validation,
        standardize=settings.standardize,
        split_seed=SPLIT_SEED,
    )
    input_shape, classes, notes = fit_to_data(spec, splits, settings.data, fit_data)
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
    _write_new_run(run_dir, spec, config, dev)
    for note in notes + [f"warning: {w}" for w in spec.warnings]:
        reporter.note(note)
    return PreparedRun(run_dir, config, splits, dev)


def _data_of(spec, data: str | None) -> str:
    """The data set to train on; an existing npz file by its absolute path (found from anywhere later)."""
    if not data:
        raise NormscopeError(
            f"{spec.file}: no data set: pass --data (cifar100, fashion-mnist, "
            "npz:PATH, synthetic) or set train.data in the description"
        )
    if data.startswith("npz:") and Path(data[4:]).expanduser().exists():
        return "npz:" + str(Path(data[4:]).expanduser().resolve())
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
    contents; everything but ``epochs``, the device and ``data_dir`` comes from the run."""
    if not (run_dir / runs.LAST).is_file():
        if (run_dir / runs.CONFIG).is_file():
            raise NormscopeError(
                f"{run_dir}: no checkpoint to resume from (the run did not finish its first epoch); start it again"
            )
        raise NormscopeError(f"{run_dir}: not a normscope run directory")
    config = RunConfig.read(run_dir)
    results = runs.read_json(run_dir / runs.RESULTS) if (run_dir / runs.RESULTS).is_file() else {}
    if epochs is not None and epochs != config.train.epochs:
        _extend(run_dir, config, int(epochs))
    elif results.get("status") == "completed":
        raise NormscopeError(
            f"{run_dir}: the run is already complete ({config.train.epochs} epochs); pass --epochs to extend it"
        )
    dev = _resume_device(config, device, reporter)
    splits = config.load_splits(data_dir, where=run_dir)
    checkpoint = runs.load_checkpoint(run_dir / runs.LAST, map_location="cpu")
    reporter.note(f"resuming {run_dir} after epoch {checkpoint['epoch']}")
    return PreparedRun(run_dir, config, splits, dev, checkpoint)


def _extend(run_dir: Path, config: RunConfig, epochs: int) -> None:
    """Set the run's epochs to ``epochs`` in description.yml (still valid) and config.json."""
    config.train.epochs = epochs
    doc = yaml.safe_load((run_dir / runs.DESCRIPTION).read_text())
    doc["train"]["epochs"] = epochs
    runs.write_text(run_dir / runs.DESCRIPTION, yaml.safe_dump(doc, sort_keys=False))
    load_spec(run_dir / runs.DESCRIPTION)
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
