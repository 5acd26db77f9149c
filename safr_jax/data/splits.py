"""Seeded, stratified, machine-independent splitting and subsampling. Permutations are the
raw output of numpy's PCG64 ordered by a stable sort: PCG64's stream is fixed by its
algorithm, unlike ``np.random.Generator``'s methods, and no ``hash()`` is involved, so a
split is the same on every machine, Python and numpy version."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from safr_jax.errors import DataError


def stable_permutation(n: int, seed: int) -> np.ndarray:
  """A seeded permutation of ``range(n)``: int64 [n]."""
  keys = np.random.PCG64(seed).random_raw(n)
  return np.argsort(keys, kind="stable").astype(np.int64)


def _largest_remainder(total: int, weights: np.ndarray) -> np.ndarray:
  """Integers summing to ``total``, proportional to ``weights`` (ties → lower index)."""
  weights = np.asarray(weights, np.int64)
  denom = int(weights.sum())
  if denom == 0:
    return np.zeros_like(weights)
  # Integer arithmetic, no rounding: (quotient, remainder) of each exact share.
  shares = [divmod(total * int(w), denom) for w in weights]
  counts = np.array([q for q, _ in shares], np.int64)
  order = sorted(range(len(weights)), key=lambda i: (-shares[i][1], i))
  counts[order[:total - int(counts.sum())]] += 1
  return counts


def stratified_split(labels: np.ndarray, sizes: Sequence[int], seed: int) -> list[np.ndarray]:
  """A partition of ``range(len(labels))`` into sorted int64 parts of exactly ``sizes``,
  each with every class in (as nearly as integers allow) its share of the whole; within a
  class the order is :func:`stable_permutation` seeded with ``seed + class_id + 1``."""
  labels = np.asarray(labels)
  n = len(labels)
  if sum(sizes) != n or any(s < 0 for s in sizes):
    raise DataError(f"split sizes {list(sizes)} do not add up to the {n} examples")
  classes = np.unique(labels)
  pools = [np.flatnonzero(labels == c)[stable_permutation(
      int((labels == c).sum()), seed + int(c) + 1)] for c in classes]
  remaining = np.array([len(p) for p in pools], np.int64)
  taken = np.zeros_like(remaining)
  parts = []
  for k, size in enumerate(sizes):
    last = k == len(sizes) - 1
    counts = remaining.copy() if last else _largest_remainder(size, remaining)
    chunks = [p[t:t + c] for p, t, c in zip(pools, taken, counts)]
    parts.append(np.sort(np.concatenate(chunks)) if chunks else np.zeros((0,), np.int64))
    taken += counts
    remaining -= counts
  return parts


def stratified_subsample(labels: np.ndarray, n: int, seed: int) -> np.ndarray:
  """Sorted indices of a stratified ``n``-example subset (all if ``n >= N``)."""
  total = len(labels)
  if n >= total:
    return np.arange(total, dtype=np.int64)
  return stratified_split(labels, [n, total - n], seed)[0]


def split_sizes(n: int, fractions: Sequence[float]) -> list[int]:
  """Part sizes for ``fractions`` of ``n``; the first part takes the rounding."""
  rest = [int(round(n * f)) for f in fractions[1:]]
  first = n - sum(rest)
  if first < 0:
    raise DataError(f"fractions {list(fractions)} leave no room in {n} examples")
  return [first] + rest
