"""Data sets as in-memory uint8 tensors: sources, stratified splits and one ``load_data``.

Sources (registry :data:`DATASETS`): ``fashion-mnist``, ``mnist`` (IDX files), ``cifar10``,
``cifar100`` (python batches), ``digits`` (scikit-learn), ``folder`` (your images) and
``synthetic`` (generated shapes).

>>> from convbench.config import DataConfig
>>> bundle = load_data(DataConfig(dataset="digits", val_fraction=0.1), seed=0)
>>> bundle.channels, bundle.image_size, bundle.num_classes
(1, (8, 8), 10)
"""

from __future__ import annotations

# Importing the source modules registers them; the order is the listing order.
from . import cifar, digits, folder, idx, synthetic  # noqa: F401
from .bundle import DataBundle, RawData, Split
from .info import check_available, dataset_info
from .load import load_data
from .sources import DATASETS, Source
from .splits import stratified_indices, stratified_split

__all__ = ["DATASETS", "DataBundle", "RawData", "Source", "Split", "check_available",
           "dataset_info", "load_data",
           "stratified_indices", "stratified_split"]
