"""SAFR on SST-2 (max_len 128).

    python train.py --config=configs/sst2.py            # SAFR
    python train.py --config=configs/sst2.py:baseline   # plain Transformer
    python train.py --config=configs/sst2.py:quick --workdir=/tmp/quick

Variants (combine with commas, e.g. `:reference,baseline`): safr, baseline,
vmask, imp, inter, ib, safr_ib, reference, quick. Data: the paper's sentence-level
SST-2 with --config.data.sst_dir=PATH/stanfordSentimentTreebank (source
`sst_treebank`, docs/DATA.md); otherwise GLUE
SST-2 from TFDS when it is prepared or downloadable; offline the builtin
`rt_polarity` (Rotten Tomatoes sentences, NOT the SST-2 benchmark) with a
warning. Force one with --config.data.source=rt_polarity.
"""

from safr_jax import configs


def get_config(arg=None):
  return configs.get_config("sst2", arg)
