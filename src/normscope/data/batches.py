"""On-device batches (temporary re-export while the trainer is split)."""

from normscope.train.loop import DeviceData, Splits, epoch_order, to_input  # noqa: F401
