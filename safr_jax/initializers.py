"""Parameter initialisers: Flax's defaults, or PyTorch's for the authors' modules.

The authors' PyTorch model is initialised by PyTorch's defaults: ``nn.Embedding``
N(0, 1) (no ``padding_idx``, so ``<PAD>`` is an ordinary learned vector), every
``nn.Linear`` weight and bias U(±1/sqrt(fan_in)), LayerNorm 1/0. Flax's
defaults differ (embedding std 1/sqrt(d), LeCun-normal kernels, zero biases);
after the model's ·sqrt(d) embedding scaling the authors' token vectors are
~sqrt(d) times larger per dimension than Flax's. "torch_embedding" and
"torch_dense" take PyTorch's for that part only (Flax's for the rest): they
split what the initialisation does to the authors' baseline.
"""

from __future__ import annotations

import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

__all__ = ["INIT_MODES", "dense_init", "embed_init"]

INIT_MODES = ("flax", "torch", "torch_embedding", "torch_dense")


def _torch_uniform(fan_in: int):
  """U(-1/sqrt(fan_in), 1/sqrt(fan_in)): PyTorch's ``nn.Linear`` default for
  both weight (kaiming_uniform with a=sqrt(5)) and bias."""
  bound = 1.0 / math.sqrt(fan_in)

  def init(key, shape, dtype=jnp.float32):
    return jax.random.uniform(key, shape, dtype, -bound, bound)
  return init


def dense_init(init: str, fan_in: int) -> dict[str, Any]:
  """``kernel_init``/``bias_init`` for a ``Dense`` reading ``fan_in`` inputs.

  "torch", "torch_dense": what the authors' PyTorch modules get (``nn.Linear``'s
  U(±1/sqrt(fan_in)) for both); else Flax's defaults (LeCun normal kernel,
  zero bias).
  """
  if init not in INIT_MODES:
    raise ValueError(f"init must be one of {INIT_MODES}, got {init!r}")
  if init in ("torch", "torch_dense"):
    return dict(kernel_init=_torch_uniform(fan_in), bias_init=_torch_uniform(fan_in))
  return {}


def embed_init(init: str) -> dict[str, Any]:
  """"torch", "torch_embedding": ``nn.Embedding``'s N(0, 1) (the authors set no
  padding_idx, so ``<PAD>`` is an ordinary learned row); else Flax's N(0, 1/d)-like
  default."""
  dense_init(init, 1)  # validates the name
  if init in ("torch", "torch_embedding"):
    return dict(embedding_init=nn.initializers.normal(stddev=1.0))
  return {}
