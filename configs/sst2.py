"""SAFR on the paper's SST-2 (max_len 128).

    python train.py --config=configs/sst2.py            # SAFR
    python train.py --config=configs/sst2.py:baseline   # plain Transformer
    python train.py --config=configs/sst2.py:quick --workdir=/tmp/quick

Variants (combine with commas, e.g. `:reference,baseline`): safr, baseline,
vmask, imp, inter, ib, safr_ib, reference, quick.

Data (`source="auto"`, `benchmark="sst_treebank"`, docs/DATA.md): the
sentence-level Stanford Sentiment Treebank read as the authors read it (6,244 /
825 / 1,743) from --config.data.sst_treebank.dir=PATH/stanfordSentimentTreebank,
else from the cache (~/.cache/safr_jax/data), else downloaded from the authors'
address; offline the builtin `rt_polarity` (Rotten Tomatoes sentences, NOT the
SST-2 benchmark) with a warning.

The values a run uses: every field and its default is in safr_jax/configs.py
(model, loss, train), safr_jax/data/config.py (shared data options) and
safr_jax/data/sources/ (each source's group); this file changes only the
dataset's own entry of configs.DATASETS, and a variant changes what it
names. `python -m safr_jax.configs configs/sst2.py[:VARIANTS]` prints them all.
"""

from safr_jax import configs


def get_config(arg=None):
  return configs.get_config("sst2", arg)
