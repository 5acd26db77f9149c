"""Data for safr-jax: a source → vocabulary → fixed-shape ids → batches (docs/DATA.md;
the modules: docs/CONTRIBUTING.md, "Inside data/"). Usage::

  from safr_jax import data
  bundle = data.load_dataset(config.data, workdir)    # writes vocab.txt, labels.json
  it = data.train_iterator(bundle.splits["train"], batch_size=50, seed=0)
  batch = next(it)            # ids int32 [50, L], labels int32 [50]
  state = it.get_state()      # JSON; it.set_state(state) resumes exactly
  for batch in data.eval_batches(bundle.splits["dev"], batch_size=50):
    ...                       # + weights float32 [50], 0 on filler rows
  vocab, label_names = data.load_vocab_and_labels(workdir)   # at explain time

Bad input raises ``safr_jax.errors.DataError`` naming the file, line or field."""

from __future__ import annotations

from safr_jax.data.config import default_config
from safr_jax.data.core import SPLITS, RawSplit, Source
from safr_jax.data.dataset import (DatasetBundle, EncodedSplit, load_dataset,
                                   load_vocab_and_labels, save_vocab_and_labels)
from safr_jax.data.probe import probe_url
from safr_jax.data.pipeline import (TrainIterator, batch_width, bucketed_epoch, eval_batches,
                                    num_eval_batches, steps_per_epoch, train_iterator)
from safr_jax.data.sources import REGISTRY, prepare_text
from safr_jax.data.vocabulary import PAD, UNK, Vocabulary, tokenize
from safr_jax.errors import DataError

__all__ = [
    "DataError", "DatasetBundle", "EncodedSplit", "PAD", "REGISTRY", "RawSplit",
    "SPLITS", "Source", "TrainIterator", "UNK", "Vocabulary", "batch_width",
    "bucketed_epoch", "default_config", "eval_batches", "load_dataset",
    "load_vocab_and_labels", "num_eval_batches", "prepare_text", "probe_url",
    "save_vocab_and_labels", "steps_per_epoch", "tokenize", "train_iterator",
]
