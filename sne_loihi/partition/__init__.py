"""Feature partitioning among students and teacher disentanglement (method.md section 4).

- :class:`Partition`: the groups of teacher feature dimensions, one per student (JSON I/O).
- :data:`PARTITIONERS` / :func:`compute_partition`: fixed, agglomerative, kmeans,
  balanced-kmeans, balanced-optimal, finetune (contiguous split).
- :func:`group_widths`: student widths for groups of unequal size.
- :func:`similarity_loss` (L_sim) and :func:`finetune_teacher`: teacher disentanglement.
"""

from sne_loihi.partition.base import Partition, contiguous_partition, fixed_partition
from sne_loihi.partition.widths import group_widths
from sne_loihi.partition.disentangle import finetune_teacher, normalized_chunks, similarity_loss
from sne_loihi.partition.strategies import (
    EQUAL_SIZE_STRATEGIES,
    PARTITIONERS,
    balanced_assignment,
    compute_partition,
    greedy_rebalance,
)

__all__ = [
    "EQUAL_SIZE_STRATEGIES",
    "PARTITIONERS",
    "Partition",
    "balanced_assignment",
    "group_widths",
    "compute_partition",
    "contiguous_partition",
    "finetune_teacher",
    "fixed_partition",
    "greedy_rebalance",
    "normalized_chunks",
    "similarity_loss",
]
