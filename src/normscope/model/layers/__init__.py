"""Normalization layers. Each forward returns (output, [(suffix, (B, C) statistic), ...])."""

from normscope.model.layers.batchnorm import BatchNorm
from normscope.model.layers.gdn import GDN
from normscope.model.layers.instancenorm import InstanceNorm

NORM_LAYERS = {"bn": BatchNorm, "in": InstanceNorm, "gdn": GDN}

__all__ = ["BatchNorm", "InstanceNorm", "GDN", "NORM_LAYERS"]
