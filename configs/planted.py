"""SAFR on `planted`: synthetic text whose label-deciding tokens are known.

    python train.py --config=configs/planted.py --workdir=runs/planted
    python -m safr_jax.evaluate --workdir=runs/planted

Used to check explanations against ground truth. Variants as for sst2.py.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # pylint: disable=g-import-not-at-top


def get_config(arg=None):
  return common.get_config("planted", arg)
