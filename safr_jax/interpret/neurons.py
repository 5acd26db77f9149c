r"""Neuron allocation: which FFN neurons each token activates, and how much
tokens share them.

A token i *activates* neuron n of an FFN layer when its ReLU activation
``h_{i,n} > threshold`` (default 0: the neuron is on). Its active set is
``A_i = {n : h_{i,n} > threshold}``, and two tokens overlap by the Jaccard index::

    J(A, B) = |A ∩ B| / |A ∪ B|        (J(∅, ∅) = 0: nothing is shared)

SAFR wants important tokens to get neurons of their own (low J among them) and
tokens that attend to each other to share (high J for attention pairs).
"""

from __future__ import annotations

from typing import Iterable

import numpy as np

__all__ = ["active", "jaccard", "pairwise_jaccard", "NeuronOrder"]


def active(hidden: np.ndarray, threshold: float = 0.0) -> np.ndarray:
  """Bool ``[..., neurons]``: activation above ``threshold``."""
  return np.asarray(hidden) > threshold


def jaccard(a: Iterable[int], b: Iterable[int]) -> float:
  """Jaccard index of two sets of neuron ids (0 for two empty sets)."""
  a, b = set(a), set(b)
  union = len(a | b)
  return len(a & b) / union if union else 0.0


def pairwise_jaccard(active_sets: np.ndarray) -> np.ndarray:
  """``[n, n]`` Jaccard of the active sets, the rows of bool ``[n, neurons]``."""
  a = np.asarray(active_sets, np.float64)
  intersection = a @ a.T
  size = a.sum(axis=1)
  union = size[:, None] + size[None, :] - intersection
  return np.divide(intersection, union, out=np.zeros_like(intersection), where=union > 0)


class NeuronOrder:
  """A column order for a tokens × neurons picture, and each token's sets.

  Attributes:
    order: neuron ids to draw, left to right: shared neurons (active for two or
      more tokens; most shared first), then exclusive ones (active for exactly
      one token) grouped by their token in text order. Neurons no token
      activates are left out.
    num_shared: how many of ``order`` are shared (the rest are exclusive).
    num_silent: neurons no token activates.
    active_sets: per token, its active neuron ids (ascending).
    exclusive_sets: per token, the neurons only it activates.
  """

  def __init__(self, hidden: np.ndarray, threshold: float = 0.0):
    hidden = np.asarray(hidden, np.float64)
    if hidden.ndim != 2:
      raise ValueError(f"hidden must be [tokens, neurons], got {hidden.shape}")
    on = active(hidden, threshold)
    users = on.sum(axis=0)
    strength = np.where(on, hidden, 0.0).sum(axis=0)
    shared = np.flatnonzero(users >= 2)
    shared = shared[np.lexsort((-strength[shared], -users[shared]))]
    exclusive = np.flatnonzero(users == 1)
    owner = np.argmax(on[:, exclusive], axis=0) if exclusive.size else exclusive
    exclusive = exclusive[np.lexsort((-strength[exclusive], owner))]
    self.order = np.concatenate([shared, exclusive]).astype(np.int64)
    self.num_shared = int(shared.size)
    self.num_silent = int((users == 0).sum())
    self.active_sets = [np.flatnonzero(row) for row in on]
    self.exclusive_sets = [np.flatnonzero(row & (users == 1)) for row in on]
