r"""Token importance and token pairs read off the attention weights.

With ``A`` a layer's ``[heads, n, n]`` (query, key) attention weights over the
real tokens of an example, averaged over heads and layers to ``Ā [n, n]``:

* attention *received* by token j (its importance as attention sees it)::

      r_j = Σ_i Ā_ij        (sums to n over the tokens)

* pair strength of tokens i ≠ k, symmetric::

      S_ik = (Ā_ik + Ā_ki) / 2

  L_Inter weighs each pair by its attention correlation ``C_ik = A_ik / Σ_k A_ik``
  (= ``A_ik``, softmax rows sum to 1), so the strongest ``S`` pairs are the ones
  the regularizer pulls together hardest.
"""

from __future__ import annotations

import numpy as np

__all__ = ["received", "pair_strength", "top_pairs"]


def received(mean_attention: np.ndarray, token_mask: np.ndarray) -> np.ndarray:
  """Attention received per key, ``[..., n]``; padding queries do not count."""
  a = np.asarray(mean_attention, np.float64)
  m = np.asarray(token_mask, bool)
  return np.einsum("...qk,...q->...k", a, m.astype(np.float64))


def pair_strength(mean_attention: np.ndarray) -> np.ndarray:
  """``S = (Ā + Āᵀ) / 2`` with a zero diagonal, ``[..., n, n]``."""
  a = np.asarray(mean_attention, np.float64)
  s = (a + np.swapaxes(a, -1, -2)) / 2
  n = s.shape[-1]
  return np.where(np.eye(n, dtype=bool), 0.0, s)


def top_pairs(strength: np.ndarray, k: int) -> list[tuple[int, int, float]]:
  """The ``k`` strongest unordered pairs ``(i, j, S_ij)``, i < j, strongest first.

  ``strength`` is ``[n, n]`` over the example's real tokens only. Ties go to
  the pair that comes first in text order.
  """
  s = np.asarray(strength, np.float64)
  n = s.shape[0]
  i, j = np.triu_indices(n, k=1)
  if not i.size or k <= 0:
    return []
  values = s[i, j]
  order = np.lexsort((j, i, -values))[:k]
  return [(int(i[o]), int(j[o]), float(values[o])) for o in order]
