"""The trainer of one run, :class:`Trainer`: build (model, optimizer, loss, data on the
device), restore, the epochs (train, validate, checkpoint), finish (test metrics, results).
:func:`normscope.train.loop.train` prepares a run and drives it."""

from __future__ import annotations

import contextlib
import math
import time
from pathlib import Path
from typing import Callable, Sequence

import torch
from torch import nn

import normscope.train.runs as runs
from normscope.errors import SpecError
from normscope.model.build import build_model, count_params
from normscope.spec.provenance import provenance
from normscope.train.callbacks import RunExtras
from normscope.train.errors import RunError, TrainingFailed, interrupts_deferred
from normscope.train.evaluate import autocast, evaluate_best, loss_and_accuracy, predict_batches
from normscope.train.freeze import CachedFeatures, backbone_cut, frozen_norms, set_frozen_eval
from normscope.train.optim import lr_factor, make_optimizer, set_lr
from normscope.train.prepare import PreparedRun, load_pretrained
from normscope.train.progress import Reporter
from normscope.train.state import TrainState

__all__ = ["Trainer"]


# --------------------------------------------------------------------------- #
# State carried from epoch to epoch (and through last.pt)
# --------------------------------------------------------------------------- #


class _Diverged(Exception):
    def __init__(self, epoch: int, batch: int | None, value: float):
        super().__init__(f"non-finite loss {value} in epoch {epoch}")
        self.epoch, self.batch, self.value = epoch, batch, value


# --------------------------------------------------------------------------- #
# The trainer
# --------------------------------------------------------------------------- #


class Trainer:
    """One run being trained: the built model, optimizer and loss, the data on the device,
    the fixed numbers of the loop and the :class:`TrainState`."""

    def __init__(self, run: PreparedRun, reporter: Reporter):
        self.run_dir, self.config, self.device, self.reporter = run.run_dir, run.config, run.device, reporter
        self.settings = t = run.config.train
        self.amp, self.channels_last = run.config.precision_on(run.device)
        self._build_model()
        if run.weights is not None:  # a new run's pretrained weights, read and matched by start_run
            load_pretrained(self.model, run, reporter)
        # the images: every split on the device, or streamed from an image folder (by the source)
        self.images = self.data = run.splits.feeder(run.device, t.augment.crop)
        self.frozen_norms = frozen_norms(self.model, t.freeze)  # they train in evaluation mode
        augmented = t.augment.crop > 0 or t.augment.flip
        self.cut = backbone_cut(self.model, self.frozen_norms) if t.cache_features and not augmented else None
        self.n_train, self.has_val = self.data.n("train"), self.data.n("val") > 0
        self.steps_per_epoch = math.ceil(self.n_train / t.batch_size)
        self.total_steps = t.epochs * self.steps_per_epoch
        # NaN check (a device sync): ~25 times an epoch with a live bar, ~5 times otherwise
        self.check_every = max(1, self.steps_per_epoch // (25 if reporter.live else 5))
        self.state = TrainState()
        self.extras = RunExtras(self.run_dir, self.config, t)  # TensorBoard, early stopping

    def _build_model(self) -> None:
        """Seeded init, frozen layers (build_model applies train.freeze), optimizer, loss."""
        t, dev, description = self.settings, self.device, self.run_dir / runs.DESCRIPTION
        if dev.type == "cuda":
            torch.backends.cudnn.benchmark = True
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
        # weights from (seed, layer name): variants share the initial weights of shared layers;
        # the global generator (dropout) is seeded after the build, so it starts alike too
        model = build_model(description, seed=t.seed)
        torch.manual_seed(t.seed)
        self.trainable, self.non_trainable = count_params(model)
        self.model = model.to(dev, memory_format=torch.channels_last) if self.channels_last else model.to(dev)
        self.optimizer = make_optimizer(self.model, t, file=description)
        # auxiliary classifiers (`aux: w` on a dense layer): loss = (1 - sum w) * main + sum w * aux
        self.aux = bool(model.aux_weights)
        self.main_weight = 1.0 - sum(model.aux_weights.values())
        if self.main_weight <= 0:
            raise SpecError(
                f"the aux loss weights sum to {1 - self.main_weight:g}; they must leave the main "
                "classifier a positive weight (sum < 1)",
                file=self.config.source,
            )
        self.forward = model.forward_with_aux if self.aux else model.forward
        self.eval_forward = model
        if self.config.compile:
            self.forward = torch.compile(self.forward)
        self.criterion = nn.CrossEntropyLoss(label_smoothing=t.label_smoothing)

    # -- resume ---------------------------------------------------------------------- #

    def restore(self, checkpoint: dict | None) -> None:
        """Continue from last.pt's ``checkpoint`` (weights, optimizer, RNG, state), or seed
        a fresh start. Writes nothing; RunError when last.pt does not fit this run."""
        self.saved = int(checkpoint["epoch"]) if checkpoint else 0  # epochs in last.pt
        if checkpoint is None:
            if self.device.type == "cuda":
                torch.cuda.manual_seed(self.settings.seed)
            return
        try:
            self.model.load_state_dict(checkpoint["model"])
            self.optimizer.load_state_dict(checkpoint["optimizer"])
            self.state = TrainState.from_checkpoint(checkpoint)
            torch.set_rng_state(checkpoint["rng_cpu"])
            if self.device.type == "cuda" and checkpoint.get("rng_cuda"):
                torch.cuda.set_rng_state(checkpoint["rng_cuda"][0], self.device)
        except (RuntimeError, ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise RunError(
                f"{self.run_dir / runs.LAST}: cannot be restored into this run ({first}); {runs.RERUN}"
            ) from None

    # -- the epochs ------------------------------------------------------------------ #

    def run_epochs(self, callbacks: Sequence[Callable[[dict], None]] = ()) -> tuple[str, str | None]:
        """Every remaining epoch: train, validate, checkpoint, report; (status, message)."""
        epochs = self.settings.epochs
        runs.write_json(
            self.run_dir / runs.RESULTS, {"status": "running", "epochs_done": self.state.epoch, "epochs": epochs}
        )
        if self.cut is not None and self.state.epoch < epochs:
            self._cache_backbone()
        self.reporter.start(epochs, self.state.epoch, self.steps_per_epoch)
        try:
            for epoch in range(self.state.epoch, epochs):
                t0 = time.perf_counter()
                row = self.train_epoch(epoch)
                row["val_loss"], row["val_accuracy"] = self.validate()
                row["seconds"] = time.perf_counter() - t0
                self.state.elapsed += row["seconds"]
                improved = self.state.record(_ordered(row), self.has_val)
                self.checkpoint(improved)
                self.reporter.epoch_end(self.state.history[-1], epochs, improved and self.has_val)
                for cb in callbacks:
                    cb(dict(self.state.history[-1], run_dir=self.run_dir))
                if stop := self.extras.after_epoch(self.state.history):
                    self.reporter.note(stop)
                    break
        except _Diverged as exc:
            return "failed", self._divergence_message(exc)
        except (KeyboardInterrupt, OSError) as exc:
            self.reporter.close()
            why = "interrupted" if isinstance(exc, KeyboardInterrupt) else f"stopped: {exc.strerror or exc}"
            with contextlib.suppress(OSError):  # (a full disk may refuse this too: the lock tells then)
                runs.write_json(
                    self.run_dir / runs.RESULTS,
                    {
                        "status": "interrupted",
                        "message": f"{why}; continue with: normscope train --resume {self.run_dir}",
                        "epochs_done": self.saved,
                        "epochs": epochs,
                    },
                )
            raise
        finally:
            self.reporter.close()
        return "completed", None

    def train_epoch(self, epoch: int) -> dict:
        """One pass over the training images in this epoch's order (crops and flips on the
        device); the row of metrics.csv without validation and total seconds."""
        t0 = time.perf_counter()
        t, dev, bs, state = self.settings, self.device, self.settings.batch_size, self.state
        self.reporter.epoch_start(epoch + 1)
        self.model.train()
        set_frozen_eval(self.model, self.frozen_norms)  # Keras' trainable=False: running statistics
        loss_sum = torch.zeros((), device=dev)
        correct = torch.zeros((), device=dev, dtype=torch.long)
        seen = 0
        for b, (xb, yb) in enumerate(self.data.train_batches(t.seed, epoch, t.augment.flip, bs)):
            set_lr(self.optimizer, t.lr, lr_factor(state.step, self.total_steps, self.steps_per_epoch, t))
            loss, logits = self.train_step(xb, yb)
            state.step += 1
            loss_sum += loss.detach() * len(yb)
            correct += (logits.detach().argmax(1) == yb).sum()
            seen += len(yb)
            if (b + 1) % self.check_every == 0 and b + 1 < self.steps_per_epoch:
                running = loss_sum.item() / seen
                if not math.isfinite(running):
                    raise _Diverged(epoch + 1, b + 1, running)
                self.reporter.batch(b + 1, running, correct.item() / seen if self.reporter.live else None)
        train_loss, train_acc = loss_sum.item() / seen, correct.item() / seen  # syncs the device
        loop_seconds = time.perf_counter() - t0
        state.loop_time += loop_seconds
        if not math.isfinite(train_loss):
            raise _Diverged(epoch + 1, None, train_loss)
        self.reporter.batch(self.steps_per_epoch, train_loss, train_acc)
        return {
            "epoch": epoch + 1,
            "train_loss": train_loss,
            "train_accuracy": train_acc,
            "lr": t.lr * lr_factor(state.step - 1, self.total_steps, self.steps_per_epoch, t),
            "train_seconds": loop_seconds,
        }  # (not in metrics.csv: the training loop alone)

    def train_step(self, xb: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One optimizer step on a batch of inputs (images, or cached features); (loss, main logits)."""
        if self.channels_last and xb.ndim == 4:
            xb = xb.contiguous(memory_format=torch.channels_last)
        with autocast(self.device, self.amp):
            if self.aux:
                logits, heads = self.forward(xb)
                loss = self.main_weight * self.criterion(logits.float(), y)
                for aux_logits, weight in heads:
                    loss = loss + weight * self.criterion(aux_logits.float(), y)
            else:
                logits = self.forward(xb)
                loss = self.criterion(logits.float(), y)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.settings.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.settings.grad_clip)
        self.optimizer.step()
        return loss, logits

    def validate(self) -> tuple[float | None, float | None]:
        """(loss, accuracy) on the validation split; (None, None) without one."""
        if not self.has_val:
            return None, None
        batches = self.data.batches("val", self.config.eval_batch_size)
        logits, y = predict_batches(self.model, batches, self.amp, self.channels_last, self.eval_forward)
        return loss_and_accuracy(logits, y)

    def _cache_backbone(self) -> None:
        """The frozen backbone's output (up to ``self.cut``) once for every training and
        validation image; the head's epochs train on it."""
        t0 = time.perf_counter()
        amp = lambda: autocast(self.device, self.amp)  # noqa: E731
        self.data = CachedFeatures(self.model, self.images, self.cut, self.config.eval_batch_size, amp)
        head = self.model.forward_from
        self.forward = (lambda f: head(self.cut, f, want_aux=True)) if self.aux else (lambda f: head(self.cut, f))
        self.eval_forward = lambda f: head(self.cut, f)
        self.reporter.note(
            f"frozen backbone up to '{self.cut}': its features computed once "
            f"({self.data.nbytes / 2**20:,.1f} MiB, {time.perf_counter() - t0:.1f} s); the epochs train the head"
        )

    def checkpoint(self, improved: bool) -> None:
        """metrics.csv, then last.pt, then (when ``improved``) best.pt, Ctrl-C and SIGTERM
        deferred until all are written; a kill in between is repaired on resume
        (runs.repair_best, prepare.commit_resume)."""
        weights = {"model": _cpu_state(self.model), "epoch": self.state.epoch}
        with interrupts_deferred():
            runs.write_history(self.run_dir / runs.METRICS, self.state.history)
            runs.save_checkpoint(
                self.run_dir / runs.LAST,
                {
                    **weights,
                    **self.state.to_checkpoint(),
                    "optimizer": self.optimizer.state_dict(),
                    "rng_cpu": torch.get_rng_state(),
                    "rng_cuda": [torch.cuda.get_rng_state(self.device)] if self.device.type == "cuda" else [],
                },
            )
            self.saved = self.state.epoch
            if improved:
                runs.save_checkpoint(
                    self.run_dir / runs.BEST, {**weights, "val_accuracy": self.state.history[-1]["val_accuracy"]}
                )

    def _divergence_message(self, exc: _Diverged) -> str:
        good = self.state.history[-1]["epoch"] if self.state.history else 0
        return (
            f"the training loss became {exc.value} in epoch {exc.epoch}"
            f"{'' if exc.batch is None else f' (batch {exc.batch})'}; stopped. "
            + (f"The last good checkpoint is epoch {good} ({runs.LAST}). " if good else "No epoch finished. ")
            + "Try a lower learning rate (--lr) or another optimizer."
        )

    # -- finish ---------------------------------------------------------------------- #

    def finish(self, status: str, message: str | None) -> Path:
        """results.json (with the test metrics of best.pt when completed), curves.png; raises
        TrainingFailed after a divergence."""
        config, state, run_dir = self.config, self.state, self.run_dir
        results = {
            "status": status,
            "message": message,
            "name": config.name,
            "variant": config.variant,
            "data": config.data,
            "seed": self.settings.seed,
            "epochs": self.settings.epochs,
            "epochs_done": len(state.history),
            "best_epoch": state.best_epoch or None,
            "best_by": "val_accuracy" if self.has_val else "last_epoch",
            "params": {
                "total": self.trainable + self.non_trainable,
                "trainable": self.trainable,
                "non_trainable": self.non_trainable,
            },
            "seconds": state.elapsed,
            "train_images_per_second": (
                self.n_train * len(state.history) / state.loop_time if state.loop_time > 0 else None
            ),
            "device": str(self.device),
            # the expanded description's hash, normscope's version and commit
            "provenance": provenance(self.model.spec),
        }
        if state.history:
            runs.plot_curves(run_dir / runs.CURVES, state.history, title=f"{config.name} on {config.data}")
        if status == "completed":
            results.update(
                evaluate_best(
                    run_dir,
                    self.model,
                    self.images,
                    config.class_names,
                    config.eval_batch_size,
                    self.amp,
                    self.channels_last,
                )
            )
            results["best_val_accuracy"] = results.get("val", {}).get("accuracy")
        self.extras.finish(results)
        runs.write_json(run_dir / runs.RESULTS, results)
        if status == "failed":
            raise TrainingFailed(f"{run_dir}: {message}", run_dir)
        if self.reporter.mode != "none" and "test" in results:
            m = results["test"]
            self.reporter.note(
                f"test (best epoch {state.best_epoch}): loss {m['loss']:.4f}  "
                f"accuracy {m['accuracy']:.4f}  precision@0.5 {m['precision']:.4f}  "
                f"recall@0.5 {m['recall']:.4f}  auc {m['auc']:.4f}  top5 {m['top5_accuracy']:.4f}  "
                f"macro_f1 {m['macro_f1']:.4f}"
            )
            if m["precision"] == 0 and m["recall"] == 0 and m["accuracy"] > 0:
                self.reporter.note(
                    "(precision@0.5 and recall@0.5 are Keras' Precision() and Recall(): they count the "
                    "(image, class) pairs whose probability exceeds 0.5; no prediction reached 0.5)"
                )
            self.reporter.note(f"run directory: {run_dir}")
        return run_dir


ROW_KEYS = ("epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr", "seconds", "train_seconds")


def _ordered(row: dict) -> dict:
    """An epoch's row in metrics.csv's column order (train_seconds last)."""
    return {k: row[k] for k in ROW_KEYS}


def _cpu_state(model) -> dict:
    """The model's state dict as contiguous CPU tensors (channels_last is a CUDA detail)."""
    return {k: v.detach().to("cpu").contiguous().clone() for k, v in model.state_dict().items()}
