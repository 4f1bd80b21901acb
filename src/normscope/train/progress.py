"""Training progress: a rich progress bar on a terminal, one plain line per epoch otherwise."""

from __future__ import annotations

import sys

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from normscope.fileio import visible

__all__ = ["Reporter"]


class Reporter:
    """Epoch and batch progress. ``mode``: 'bar' (rich), 'log' (one line per epoch),
    'none', or 'auto' (bar when stdout is a terminal, else log)."""

    def __init__(self, mode: str = "auto", stream=None):
        self.stream = stream or sys.stdout
        if mode == "auto":
            mode = "bar" if getattr(self.stream, "isatty", lambda: False)() else "log"
        self.mode = mode
        self._progress = None

    @property
    def live(self) -> bool:
        return self.mode == "bar"

    def note(self, text: str) -> None:
        if self.mode == "none":
            return
        text = visible(text)  # names from descriptions and data files: no terminal commands
        if self._progress is not None:
            self._progress.console.print(text, highlight=False, markup=False)
        else:
            print(text, file=self.stream, flush=True)

    def warn_block(self, text: str, title: str = "warning") -> None:
        """A loud warning on stderr, a red panel (shown whatever the mode: it must not go unseen)."""
        from rich.markup import escape
        from rich.panel import Panel

        Console(stderr=True).print(Panel(escape(text), title=f"[bold red]{escape(title)}[/]", border_style="red"))

    def start(self, epochs: int, first_epoch: int, steps: int) -> None:
        if self.mode != "bar":
            return
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[info]}"),
            console=Console(file=self.stream),
            transient=False,
        )
        self._progress.start()
        self._epochs = self._progress.add_task("epochs", total=epochs, completed=first_epoch, info="")
        self._batches = self._progress.add_task("batches", total=steps, info="")

    def epoch_start(self, epoch: int) -> None:
        if self._progress is not None:
            self._progress.reset(self._batches, description=f"epoch {epoch}", info="")

    def batch(self, done: int, loss: float | None = None, acc: float | None = None) -> None:
        if self._progress is not None:
            info = "" if loss is None or acc is None else f"loss {loss:.4f}  acc {acc:.4f}"
            self._progress.update(self._batches, completed=done, info=info)

    def epoch_end(self, row: dict, epochs: int, best: bool) -> None:
        if self.mode == "none":
            return
        val = "" if row["val_loss"] is None else f"  val_loss {row['val_loss']:.4f}  val_acc {row['val_accuracy']:.4f}"
        line = (
            f"epoch {row['epoch']:>{len(str(epochs))}}/{epochs}  loss {row['train_loss']:.4f}  "
            f"acc {row['train_accuracy']:.4f}{val}  lr {row['lr']:.3g}  {row['seconds']:.1f}s"
            f"{'  *best' if best else ''}"
        )
        if self._progress is not None:
            self._progress.update(self._epochs, completed=row["epoch"])
        self.note(line)

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
