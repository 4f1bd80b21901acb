"""Normalization layers. Each forward returns (output, [(suffix, (B, C) statistic), ...])."""

from .batchnorm import BatchNorm
from .gdn import GDN
from .instancenorm import InstanceNorm

NORM_LAYERS = {"bn": BatchNorm, "in": InstanceNorm, "gdn": GDN}

__all__ = ["BatchNorm", "InstanceNorm", "GDN", "NORM_LAYERS"]
