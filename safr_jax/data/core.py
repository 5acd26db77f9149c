"""What every source shares: the split names, ``RawSplit`` (texts and labels before
tokenisation) and ``Source``, the interface each module of ``data/sources/`` fills in."""

from __future__ import annotations

import dataclasses
import pathlib
from typing import Any, Callable

import ml_collections
import numpy as np

from safr_jax.data import splits as splits_lib
from safr_jax.errors import DataError

SPLITS = ("train", "dev", "test")
SENTIMENT_LABELS = ("negative", "positive")


@dataclasses.dataclass
class RawSplit:
  """Texts and label ids of one split, before tokenisation."""
  texts: list[str]
  labels: np.ndarray  # int32 [N], ids into the bundle's label_names
  # int64 [N], each example's row in its source (TFDS index, file line, sentence id,
  # generator index), so splits can be traced back.
  example_ids: np.ndarray
  extras: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)  # planted's, [N, …]

  def __len__(self) -> int:
    return len(self.texts)

  def take(self, indices: np.ndarray) -> RawSplit:
    """The examples at ``indices`` (in that order)."""
    indices = np.asarray(indices, np.int64)
    return RawSplit(texts=[self.texts[i] for i in indices],
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


def given_path(path: Any, group: str, expected: str) -> pathlib.Path:
  """``path``, a ``config.data.<group>.dir`` that is set and exists (holding ``expected``)."""
  if path is None or not str(path):
    raise DataError(f"the {group} source needs config.data.{group}.dir: {expected} "
                    "(see docs/DATA.md)")
  path = pathlib.Path(path).expanduser()
  if not path.exists():
    raise DataError(f"config.data.{group}.dir {path} does not exist (expected {expected})")
  return path


def benchmark_options(url: str) -> Callable[[], ml_collections.ConfigDict]:
  """A benchmark's ``config.data.<group>``: ``dir``, the data on disk (None: the cache,
  else a download from ``url``, by default the authors' address)."""
  return lambda: ml_collections.ConfigDict(
      {"dir": ml_collections.FieldReference(None, field_type=str), "url": url})


@dataclasses.dataclass(frozen=True)
class Acquire:
  """How ``acquire`` finds a benchmark: ``config.data.<group>.dir``, else
  ``<download.cache_dir>/<cache_name>``, else ``<group>.url`` downloaded there (a zip
  unpacked to a folder holding ``required_files``, or with ``()`` a file kept whole)."""
  cache_name: str
  required_files: tuple[str, ...]
  check: Callable[[pathlib.Path], object]  # reads a download as load would


@dataclasses.dataclass(frozen=True)
class Source:
  """One ``config.data.source``: its name, a description (log, results.json), its ``load``."""
  name: str
  description: str
  load: Loader
  labels: tuple[str, ...] | None = SENTIMENT_LABELS  # None: the data name them
  # Free text (explain --text) with its tokens separated as the training texts' (free_text).
  prepare_text: Callable[[str], str] = lambda text: text
  options: Callable[[], ml_collections.ConfigDict] | None = None  # config.data.<group>
  group: str | None = None  # default: name
  acquire: Acquire | None = None  # the paper's benchmarks
  stand_in: str | None = None  # what auto uses, loudly, when this benchmark cannot be had

  @property
  def config_group(self) -> str:
    return self.group or self.name
