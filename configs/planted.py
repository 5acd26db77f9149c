"""SAFR on `planted`: synthetic text whose label-deciding tokens are known.

    python train.py --config=configs/planted.py --workdir=runs/planted
    python -m safr_jax.evaluate --workdir=runs/planted

Used to check explanations against ground truth. Variants as for sst2.py.
"""

from safr_jax import configs


def get_config(arg=None):
  return configs.get_config("planted", arg)
