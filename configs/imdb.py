"""SAFR on the paper's IMDB (max_len 256).

    python train.py --config=configs/imdb.py            # SAFR
    python train.py --config=configs/imdb.py:baseline   # plain Transformer
    python train.py --config=configs/imdb.py \
        --config.data.aclimdb.dir=PATH/aclImdb_v1.tar.gz  # the official archive

Variants: safr, baseline, vmask, imp, inter, ib, safr_ib, reference, quick.

Data (`source="auto"`, `benchmark="aclimdb"`, docs/DATA.md): IMDB's official
archive split as the authors split it (20,000 / 5,000 / 25,000; texts as in the
files, `<br />` kept) from --config.data.aclimdb.dir, else the cache
(~/.cache/safr_jax/data), else downloaded from the authors' address; offline the
builtin `imdb_builtin` (the 25,000 IMDB *train* reviews split 20k/2.5k/2.5k; its
test set is carved from IMDB's train split) with a warning.

The values a run uses: safr_jax/configs.py, safr_jax/data/config.py and
safr_jax/data/sources/ (each source's own group);
`python -m safr_jax.configs configs/imdb.py[:VARIANTS]` prints them all.
"""

from safr_jax import configs


def get_config(arg=None):
  return configs.get_config("imdb", arg)
