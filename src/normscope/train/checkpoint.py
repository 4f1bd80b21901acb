"""Checkpoints (last.pt, best.pt): only tensors and plain containers, written atomically
(a temporary file, then ``os.replace``), read with ``torch.load(weights_only=True)`` and
checked against the model they are loaded into."""

from __future__ import annotations

import errno
import pickle
from pathlib import Path

import torch

from normscope.fileio import atomic_write
from normscope.rundir.layout import BEST, DESCRIPTION, advice
from normscope.train.errors import RunError

__all__ = ["CHECKPOINT_KEYS", "LAST_KEYS", "save_checkpoint", "load_checkpoint", "check_state", "repair_best"]


def save_checkpoint(path: Path, obj: dict) -> None:
    """torch.save ``obj`` (tensors and plain containers only) atomically. A failed write (a
    full disk) is an OSError naming ``path``; whatever ``path`` held stays intact."""
    try:
        atomic_write(path, lambda f: torch.save(obj, f))
    except OSError as exc:  # (from the temporary file: named here by the file it was to become)
        raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from exc
    except RuntimeError as exc:  # torch's writer reports the file's OSError as a RuntimeError
        cause = exc.__context__
        if isinstance(cause, OSError):
            raise OSError(cause.errno, cause.strerror or str(cause), str(path)) from exc
        if "inline_container" in str(exc) or "PytorchStreamWriter" in str(exc):
            raise OSError(errno.EIO, f"cannot write the checkpoint ({str(exc).splitlines()[0]})", str(path)) from exc
        raise


CHECKPOINT_KEYS = ("model", "epoch")  # what every checkpoint holds; last.pt also the rest of the state:
LAST_KEYS = CHECKPOINT_KEYS + ("optimizer", "step", "history", "best_epoch", "best_val_accuracy", "rng_cpu")


def load_checkpoint(path: Path, map_location="cpu", keys=CHECKPOINT_KEYS) -> dict:
    """A checkpoint, read with ``weights_only=True``; RunError naming the file when it is
    missing, unreadable, or lacks one of ``keys``."""
    path = Path(path)
    if not path.is_file():
        raise RunError(f"{path}: checkpoint not found")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:  # objects weights_only refuses: they could run code
        lines = [line.strip().rstrip(".") for line in str(exc).splitlines() if "GLOBAL" in line]
        raise RunError(
            f"{path}: cannot read the checkpoint: refused, it holds more than tensors "
            f"({lines[0] if lines else 'objects of other types'}) and loading it could run code; {advice(path)}"
        ) from None
    except Exception as exc:  # a truncated file, not a checkpoint
        first = str(exc).strip().split(". ")[0].splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise RunError(f"{path}: cannot read the checkpoint ({first}); {advice(path)}") from None
    missing = [k for k in keys if not isinstance(ckpt, dict) or k not in ckpt]
    if missing or not isinstance(ckpt["model"], dict):
        what = f"no {missing[0]!r} entry" if missing else "its 'model' entry is not a state dict"
        raise RunError(f"{path}: not a normscope checkpoint ({what}); {advice(path)}")
    return ckpt


def _shape(value) -> str:
    shape = getattr(value, "shape", None)
    return "x".join(str(v) for v in shape) if shape is not None else f"a {type(value).__name__}"


def check_state(expected: dict, state: dict, path: Path) -> None:
    """RunError when the weights ``state`` (a checkpoint's "model") do not fit a model whose
    state dict is ``expected``: the first layer that differs, its expected and found shape."""
    missing = [k for k in expected if k not in state]
    extra = [k for k in state if k not in expected]
    wrong = [k for k in expected if k in state and _shape(state[k]) != _shape(expected[k])]
    if not (missing or extra or wrong):
        return
    if wrong:
        k = wrong[0]
        what = f"{k} is {_shape(expected[k])} in the description but {_shape(state[k])} in the checkpoint"
    elif missing:
        k = missing[0]
        what = f"the checkpoint has no {k}"
    else:
        k = extra[0]
        what = f"the checkpoint has {k}, which the description has not"
    layer = k.split(".")[1] if k.startswith("layers.") and k.count(".") >= 2 else k.rsplit(".", 1)[0]
    more = len(missing) + len(extra) + len(wrong) - 1
    others = f" (and {more} more difference{'s' if more > 1 else ''})" if more else ""
    raise RunError(
        f"{path}: the checkpoint does not fit the run's {DESCRIPTION} (another model's checkpoint, or a "
        f"changed description): layer {layer!r}: {what}{others}; {advice(path)}"
    )


def repair_best(run_dir: Path, checkpoint: dict) -> None:
    """A kill between writing last.pt and best.pt leaves best.pt one improvement behind;
    given last.pt's ``checkpoint``, rewrite best.pt with the weights it should hold (those
    of last.pt when its epoch was the best one)."""
    best_path = Path(run_dir) / BEST
    if checkpoint["best_epoch"] == checkpoint["epoch"]:
        current = load_checkpoint(best_path)["epoch"] if best_path.is_file() else None
        if current != checkpoint["epoch"]:
            save_checkpoint(
                best_path,
                {
                    "model": checkpoint["model"],
                    "epoch": checkpoint["epoch"],
                    "val_accuracy": checkpoint["best_val_accuracy"],
                },
            )
