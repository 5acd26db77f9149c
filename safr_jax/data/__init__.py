"""Data for safr-jax: text sources → vocabulary → fixed-shape ids → batches.

Usage::

  from safr_jax import data
  bundle = data.load_dataset(config.data, workdir)    # writes vocab.txt, labels.json
  train = bundle.splits["train"]                      # data.EncodedSplit
  it = data.train_iterator(train, batch_size=50, seed=0, pad_to="max_len")
  # or batching="bucketed" (+ bucket_window=100): batches of similar length
  batch = next(it)            # ids int32 [50, L], labels int32 [50]
  state = it.get_state()      # JSON; it.set_state(state) resumes exactly
  for batch in data.eval_batches(bundle.splits["dev"], batch_size=50,
                                 pad_to="max_len"):
    ...                       # + weights float32 [50], 0 on filler rows
  vocab, label_names = data.load_vocab_and_labels(workdir)   # at explain time

Modules: ``sources`` (TFDS, builtin offline data, network probe),
``sst_treebank`` and ``aclimdb`` (the paper's SST-2 and IMDB, read as the
authors read them), ``acquire`` (where those are: a path, the cache, a
download) and ``download`` (the atomic, shared download cache), ``files``
(user CSV/TSV/JSONL), ``planted`` (synthetic data with known answers),
``splits`` (seeded stratified splitting), ``vocabulary`` (text → ids),
``free_text`` (typed text split like a source's training texts),
``dataset`` (``load_dataset``, the saved vocab/labels), ``pipeline`` (grain
batches), ``config`` (every ``config.data`` field). Errors:
``safr_jax.errors.DataError``.

``config.data``: every field, its default and its meaning are in
``safr_jax/data/config.py`` (``data.default_config()``; an absent field takes its
default).

Empty texts are kept as all-padding rows (length 0, every id 0) and counted in
``bundle.info["empty_texts"]``; the model must cope with a row without tokens.
Bad input raises :class:`DataError` (a ``ValueError``) naming file, line and
field.
"""

from __future__ import annotations

from safr_jax.data.config import default_config
from safr_jax.data.dataset import (DatasetBundle, EncodedSplit, load_dataset,
                                   load_vocab_and_labels, resolve_auto,
                                   save_vocab_and_labels)
from safr_jax.errors import DataError
from safr_jax.data.pipeline import (TrainIterator, batch_width,
                                    bucketed_epoch, eval_batches,
                                    num_eval_batches, steps_per_epoch,
                                    train_iterator)
from safr_jax.data.sources import probe_url
from safr_jax.data.vocabulary import PAD, UNK, Vocabulary, tokenize

__all__ = [
    "DataError",
    "DatasetBundle",
    "EncodedSplit",
    "PAD",
    "TrainIterator",
    "UNK",
    "Vocabulary",
    "batch_width",
    "bucketed_epoch",
    "default_config",
    "eval_batches",
    "load_dataset",
    "load_vocab_and_labels",
    "num_eval_batches",
    "probe_url",
    "resolve_auto",
    "save_vocab_and_labels",
    "steps_per_epoch",
    "tokenize",
    "train_iterator",
]
