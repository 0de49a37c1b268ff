"""Data sets (``DATASETS`` registry: ``digits``, ``cifar10``, ``imagefolder``, ``npz``) and augmentation.

Importing this package registers the built-in loaders; none of them reads data at import.
"""

from sne_loihi.data import cifar10 as _cifar10  # noqa: F401  (registers "cifar10")
from sne_loihi.data import digits as _digits  # noqa: F401  (registers "digits")
from sne_loihi.data import imagefolder as _imagefolder  # noqa: F401  (registers "imagefolder")
from sne_loihi.data import npz as _npz  # noqa: F401  (registers "npz")
from sne_loihi.data.augment import augment_nchw
from sne_loihi.data.dataset import DATASETS, Dataset, load_dataset, stratified_subset

__all__ = ["DATASETS", "Dataset", "augment_nchw", "load_dataset", "stratified_subset"]
