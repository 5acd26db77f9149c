"""What every source shares: the split names, ``RawSplit`` (texts and labels
before tokenisation) and ``Source``, the small interface each module of
``data/sources/`` fills in and ``sources.REGISTRY`` finds by name."""

from __future__ import annotations

import dataclasses
import pathlib
from typing import Any, Callable

import ml_collections
import numpy as np

from safr_jax.data import splits as splits_lib

SPLITS = ("train", "dev", "test")
SENTIMENT_LABELS = ("negative", "positive")


@dataclasses.dataclass
class RawSplit:
  """Texts and label ids of one split, before tokenisation.

  Attributes:
    texts: N strings.
    labels: int32 [N], ids into the bundle's ``label_names``.
    example_ids: int64 [N], each example's row in its source (TFDS index, CSV
      row, file line, sentence id, generator index): splits can be traced back.
    extras: per-example arrays of length N (``planted``'s known answers).
  """
  texts: list[str]
  labels: np.ndarray
  example_ids: np.ndarray
  extras: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)

  def __len__(self) -> int:
    return len(self.texts)

  def take(self, indices: np.ndarray) -> RawSplit:
    """The examples at ``indices`` (in that order)."""
    indices = np.asarray(indices, np.int64)
    return RawSplit(
        texts=[self.texts[i] for i in indices],
        labels=np.asarray(self.labels, np.int32)[indices],
        example_ids=np.asarray(self.example_ids, np.int64)[indices],
        extras={k: v[indices] for k, v in self.extras.items()})


def carve(raw: RawSplit, sizes: list[int], seed: int) -> list[RawSplit]:
  """Stratified, seeded parts of exactly ``sizes`` examples."""
  return [raw.take(ix) for ix in splits_lib.stratified_split(raw.labels, sizes, seed)]


Splits = dict[str, RawSplit]
# load(cfg, path) -> (splits, info): cfg is the whole config.data (the source's
# own options in cfg[group]); path is where acquire found the data (else None);
# info is JSON-ready provenance merged into bundle.info ("description" and
# "label_names" there override the Source's).
Loader = Callable[[ml_collections.ConfigDict, pathlib.Path | None], tuple[Splits, dict[str, Any]]]


def benchmark_options(url: str) -> Callable[[], ml_collections.ConfigDict]:
  """A benchmark's ``config.data.<group>``: ``dir``, the data on disk (None:
  the cache, else a download from ``url``, by default the authors' address)."""
  def options() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.dir = ml_collections.FieldReference(None, field_type=str)
    c.url = url
    return c
  return options


@dataclasses.dataclass(frozen=True)
class Acquire:
  """How a downloadable benchmark is found: ``config.data.<group>.dir``, else
  ``<download.cache_dir>/<cache_name>``, else ``config.data.<group>.url``
  downloaded into the cache (a zip unpacked to a folder holding
  ``required_files``, or with ``required_files=()`` a file kept whole)."""
  cache_name: str
  required_files: tuple[str, ...]
  check: Callable[[pathlib.Path], object]  # reads a download as load would


@dataclasses.dataclass(frozen=True)
class Source:
  """One ``config.data.source``.

  Attributes:
    name: the ``config.data.source`` value.
    description: what it is, for the log and ``results.json``.
    load: see ``Loader``.
    labels: label names (index = id); None when the data name them.
    prepare_text: free text (``explain --text``) with its tokens separated as
      this source's training texts are (``free_text``).
    options: this source's ``config.data.<group>`` defaults (None: none).
    group: that group's name (default: ``name``).
    acquire: path / cache / download, for the paper's benchmarks.
    stand_in: the offline source ``auto`` uses when this benchmark cannot be
      had, loudly.
  """
  name: str
  description: str
  load: Loader
  labels: tuple[str, ...] | None = SENTIMENT_LABELS
  prepare_text: Callable[[str], str] = lambda text: text
  options: Callable[[], ml_collections.ConfigDict] | None = None
  group: str | None = None
  acquire: Acquire | None = None
  stand_in: str | None = None

  @property
  def config_group(self) -> str:
    return self.group or self.name
