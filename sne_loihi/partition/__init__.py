"""Feature partitioning among students and teacher disentanglement (method.md section 4)."""

from sne_loihi.partition.base import Partition, contiguous_partition, fixed_partition
from sne_loihi.partition.capacity import capacity_widths

__all__ = ["Partition", "capacity_widths", "contiguous_partition", "fixed_partition"]
