"""TFDS, by name only (not inside ``auto``): ``glue/sst2`` and ``imdb_reviews`` (docs/DATA.md),
read through ``tfds.data_source`` (array_record, no TensorFlow). An unprepared dataset is
downloaded only when its host answers the probe: TFDS alone retries a dead network for
minutes."""

from __future__ import annotations

import ml_collections
import numpy as np

from safr_jax.data import free_text, probe
from safr_jax.data.core import RawSplit, Source, carve
from safr_jax.errors import DataError

IMDB_TRAIN_FRACTION = 0.8  # 10,000 of each class's 12,500
# name: (text feature, TFDS split used as test, where TFDS downloads from)
_READ = {
    "glue/sst2": ("sentence", "validation",
                  "https://dl.fbaipublicfiles.com/glue/data/SST-2.zip"),
    "imdb_reviews": ("text", "test",
                     "http://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz"),
}


def options() -> ml_collections.ConfigDict:
  """``config.data.tfds``."""
  return ml_collections.ConfigDict({
      # TFDS data_dir; None = the TFDS default (~/tensorflow_datasets or $TFDS_DATA_DIR).
      "data_dir": ml_collections.FieldReference(None, field_type=str),
      "dev_fraction": 0.1})  # glue/sst2: dev share carved from GLUE train


def _ready(tfds, name: str, data_dir: str | None, cfg) -> tuple[bool, str]:
  """Prepared locally, or downloaded and prepared now if the host answers."""
  try:
    tfds.data_source(name, split="train", data_dir=data_dir, download=False)
    return True, "prepared locally"
  except Exception as e:  # pylint: disable=broad-except
    why = (f"{name} is not prepared in {data_dir or 'the default TFDS data_dir'} "
           f"({type(e).__name__})")
  reachable, answer = probe.probe_url(_READ[name][2], probe.probe_timeout(cfg))
  if not reachable:
    return False, f"{why}; download host unreachable: {answer}"
  try:
    tfds.builder(name, data_dir=data_dir).download_and_prepare(file_format="array_record")
  except Exception as e:  # pylint: disable=broad-except
    return False, f"{why}; download_and_prepare failed: {type(e).__name__}: {e}"
  return True, f"downloaded and prepared ({answer})"


def _read_split(tfds, name: str, split: str, data_dir: str | None) -> RawSplit:
  """All examples of one TFDS split, from mock (str, 0-d array) or real (bytes, int) values."""
  source = tfds.data_source(name, split=split, data_dir=data_dir, download=False)
  n, key = len(source), _READ[name][0]
  texts, labels = [], []
  for start in range(0, n, 1024):
    idx = list(range(start, min(n, start + 1024)))
    try:
      records = source.__getitems__(idx)
    except (AttributeError, TypeError):  # tfds mock data sources lack batched reads
      records = [source[i] for i in idx]
    for i, record in zip(idx, records):
      text = record[key].item() if isinstance(record[key], np.ndarray) else record[key]
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


def _loader(name: str):
  def load(cfg, path=None):
    del path
    try:  # with the GLUE builders registered
      import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
      import tensorflow_datasets.text.glue  # pylint: disable=g-import-not-at-top,unused-import
    except Exception as e:  # ImportError or a broken install.
      raise DataError(f"tensorflow_datasets is not usable: {e!r}") from e
    data_dir = cfg.tfds.data_dir
    ready, why = _ready(tfds, name, data_dir, cfg)
    if not ready:
      raise DataError(
          f"{why}. Prepare it on a machine with internet: tfds.builder({name!r})."
          "download_and_prepare(file_format='array_record') and copy the data_dir "
          "here (config.data.tfds.data_dir), or use source='auto'.")
    train = _read_split(tfds, name, "train", data_dir)
    test = _read_split(tfds, name, _READ[name][1], data_dir)
    if name == "imdb_reviews":  # the authors' rule: the first 80 % of each class train
      rows = [np.flatnonzero(train.labels == label) for label in np.unique(train.labels)]
      keep = [int(round(len(r) * IMDB_TRAIN_FRACTION)) for r in rows]
      train, dev = (train.take(np.concatenate([r[:k] for r, k in zip(rows, keep)])),
                    train.take(np.concatenate([r[k:] for r, k in zip(rows, keep)])))
    else:
      fraction = float(cfg.tfds.dev_fraction)
      if not 0.0 < fraction < 1.0:
        raise DataError(f"config.data.tfds.dev_fraction must be in (0, 1), got {fraction}")
      dev_size = int(round(len(train) * fraction))
      train, dev = carve(train, [len(train) - dev_size, dev_size], int(cfg.split_seed))
    return {"train": train, "dev": dev, "test": test}, {"tfds_data_dir": data_dir}
  return load


SOURCES = (
    Source("glue/sst2",
           "GLUE SST-2 (Stanford Sentiment Treebank, binary sentences; Socher et al. 2013) via "
           "TFDS. GLUE's test labels are hidden, so test = GLUE validation (872) and dev is "
           "carved from GLUE train (dev_fraction, seeded, stratified).",
           _loader("glue/sst2"), options=options, group="tfds",
           prepare_text=lambda text: free_text.ptb(text).lower()),  # as GLUE's sentences
    Source("imdb_reviews",
           "IMDB Large Movie Review Dataset (Maas et al. 2011) via TFDS: the official 25k train "
           "split as the authors split it (the first 10,000 of each class train, the other 2,500 "
           "dev; in TFDS's order), the official 25k test.",
           _loader("imdb_reviews"), options=options, group="tfds"),
)
