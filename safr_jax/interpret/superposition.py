r"""Superposition of token representations (Elhage et al. 2022, "Toy Models of
Superposition"), measured per token inside one example.

For the real tokens ``x_1 … x_n`` of an example (rows of ``[n, dim]``: the
VMASK-gated embeddings, or one layer's FFN activations)::

    x̂_i      = x_i / ‖x_i‖
    sharing_i = Σ_{j≠i} (x̂_i · x_j)²                 interference with the others
    dim_i     = ‖x_i‖² / Σ_j (x̂_i · x_j)²            feature dimensionality
              = ‖x_i‖² / (‖x_i‖² + sharing_i)          ∈ (0, 1]

``dim_i = 1``: token i has directions to itself (no other token projects on it);
``dim_i → 0``: it shares its directions with others. Less sharing and larger
dimensionality mean less superposition. A token whose vector is (numerically)
zero has no direction: it is left out (``NaN``) and counted separately.
"""

from __future__ import annotations

import numpy as np

__all__ = ["token_superposition", "ZERO_NORM"]

ZERO_NORM = 1e-8  # a vector shorter than this has no direction


def token_superposition(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Sharing and feature dimensionality of each row of ``x [n, dim]``.

  Every row is a real token of one example (drop padding before calling).

  Returns:
    ``(sharing [n], dimensionality [n])`` as float64; both NaN for a row whose
    norm is below ``ZERO_NORM``.
  """
  x = np.asarray(x, np.float64)
  if x.ndim != 2:
    raise ValueError(f"x must have shape [tokens, dim], got {x.shape}")
  norms = np.linalg.norm(x, axis=-1)
  ok = norms > ZERO_NORM
  x_hat = np.where(ok[:, None], x / np.where(ok, norms, 1.0)[:, None], 0.0)
  overlap = (x_hat @ x.T) ** 2                     # [i, j] = (x̂_i · x_j)²
  total = overlap.sum(axis=1)                      # includes j = i: ‖x_i‖²
  sharing = total - np.diagonal(overlap)
  with np.errstate(invalid="ignore", divide="ignore"):
    dimensionality = norms ** 2 / total
  nan = np.full_like(sharing, np.nan)
  return np.where(ok, sharing, nan), np.where(ok, dimensionality, nan)
