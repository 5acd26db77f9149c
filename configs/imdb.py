"""SAFR on IMDB (max_len 256).

    python train.py --config=configs/imdb.py            # SAFR
    python train.py --config=configs/imdb.py:baseline   # plain Transformer

Variants: safr, baseline, vmask, imp, inter, reference, quick. Data: TFDS
`imdb_reviews` when prepared or downloadable; offline the builtin
`imdb_builtin` (the 25,000 IMDB *train* reviews split 20k/2.5k/2.5k; its test
set is carved from IMDB's train split) with a warning.
"""

from safr_jax import configs


def get_config(arg=None):
  return configs.get_config("imdb", arg)
