"""``--config=sst2[:VARIANTS]``: a dataset's config by name, from any directory.

The command line turns ``--config=NAME[:VARIANTS]`` (a name of
``configs.DATASETS``, not a file) into this file with the argument
``NAME,VARIANTS``, so an installed ``safr-train`` needs no checkout's
``configs/`` folder; the config is the one ``configs/NAME.py`` gives.
"""

from safr_jax import configs


def get_config(arg: str):
  name, _, variants = arg.partition(",")
  return configs.get_config(name, variants or None)
