r"""Faithfulness of token-importance explanations: does deleting the tokens an
explanation ranks highest change the prediction (and keeping only them not)?

Deletion replaces a token by ``<PAD>`` (id 0), keeping every other token at its
position. Our padding-aware models mask id 0 out of attention and pooling, so
for them this *removes* the token without shifting positions; a reference-mode
model (``pool="all"``) still averages the ``<PAD>`` positions in, as the
authors' model does with padding.

For an example x with n tokens, predicted class ŷ (on the full input), p(·) =
p(ŷ | ·), and ``r_m`` the m tokens an explanation ranks highest:

* comprehensiveness (DeYoung et al. 2020, ERASER), higher = more faithful::

      comp = 1/|B| Σ_{b∈B} [ p(x) − p(x \ r_{m_b}) ]

* sufficiency (ERASER), lower = more faithful::

      suff = 1/|B| Σ_{b∈B} [ p(x) − p(r_{m_b}) ]        (only r kept)

  with bins B = {1, 5, 10, 20, 50} % and ``m_b = ceil(b · n)`` tokens (at least
  1, at most n).

* AOPC (Samek et al. 2017, as in Nguyen 2018 for text), higher = better::

      AOPC = 1/(K+1) Σ_{k=0}^{K} [ p(x) − p(x \ r_{min(k, n)}) ],   K = 10

  the area over the most-relevant-first deletion curve of the first K tokens.
  K tokens are all of a short sentence and a sliver of a long review, so the
  same area is also taken at a *depth* d, a fraction of each text's length,
  in K equal steps (comparable across datasets)::

      AOPC@d = 1/(K+1) Σ_{k=0}^{K} [ p(x) − p(x \ r_{ceil(k·d·n/K)}) ],  d ∈ DEPTHS
* AOPC against random order: the same curve for random rankings (mean over R
  orders) is the floor any explanation should clear::

      aopc_minus_random = AOPC − AOPC_random        (> 0: better than chance)
      aopc_over_random  = AOPC / AOPC_random        (> 1: better than chance;
                                                     null if AOPC_random ≤ 1e-6)

Every number is a mean over the examples that have at least one token; the
per-example values (``per_example``) let intervals cover the examples too.
"""

from __future__ import annotations

import math
from typing import Callable, Mapping, Sequence

import numpy as np

__all__ = ["BINS", "DEPTHS", "AOPC_STEPS", "bin_sizes", "depth_sizes", "ranking",
           "evaluate_faithfulness"]

BINS = (0.01, 0.05, 0.10, 0.20, 0.50)
DEPTHS = (0.10, 0.20, 0.50)
AOPC_STEPS = 10
RANDOM = "random"


def bin_sizes(n: int, bins: Sequence[float] = BINS) -> list[int]:
  """Tokens per bin: ``ceil(b · n)``, at least 1 and at most ``n``."""
  return [min(n, max(1, math.ceil(b * n - 1e-9))) for b in bins]


def depth_sizes(n: int, depth: float, steps: int = AOPC_STEPS) -> list[int]:
  """Tokens deleted at steps 1..K of the curve to ``depth``: ``ceil(k·d·n/K)``."""
  return [min(n, math.ceil(k * depth * n / steps - 1e-9)) for k in range(1, steps + 1)]


def ranking(scores: np.ndarray, token_mask: np.ndarray) -> np.ndarray:
  """Real-token positions, highest score first (ties: earlier position first)."""
  positions = np.flatnonzero(token_mask)
  s = np.asarray(scores, np.float64)[positions]
  return positions[np.lexsort((positions, -s))]


def _label(b: float) -> str:
  return f"{b * 100:g}%"


def _deleted(n, bins, aopc_steps, depths):
  """Every number of top tokens some metric deletes from an n-token text."""
  sizes = set(bin_sizes(n, bins)) | {min(k, n) for k in range(1, aopc_steps + 1)}
  for d in depths:
    sizes |= set(depth_sizes(n, d, aopc_steps))
  return sorted(sizes - {0})


def _perturbations(mask, n_tokens, examples, scores, bins, aopc_steps, depths):
  """Every perturbed copy as ``(example, keep mask)`` and its key ``(method,
  order index, example, kind, m)``: kind "del" = the m top tokens deleted,
  "keep" = only they kept. Returns ``(rows [R], keep [R, L], keys)``."""
  rows, keeps, keys = [], [], []
  width = mask.shape[1]
  for name, arrays in scores.items():
    for o, s in enumerate(arrays):
      s = np.asarray(s)
      if s.shape != mask.shape:
        raise ValueError(f"scores[{name!r}][{o}] has shape {s.shape}, ids {mask.shape}")
      for e in examples:
        n = int(n_tokens[e])
        rank = np.full(width, n)            # padding: never among the top m ≤ n
        rank[ranking(s[e], mask[e])] = np.arange(n)
        bsz = bin_sizes(n, bins)
        deleted = _deleted(n, bins, aopc_steps, depths)
        kept = sorted(set(bsz))
        keeps.append(mask[e] & (rank >= np.array(deleted)[:, None]))
        keeps.append(rank < np.array(kept)[:, None])
        rows.extend([e] * (len(deleted) + len(kept)))
        keys.extend([(name, o, e, "del", m) for m in deleted]
                    + [(name, o, e, "keep", m) for m in kept])
  keep = np.concatenate(keeps) if keeps else np.zeros((0, width), bool)
  return np.asarray(rows, np.int64), keep, keys


def _method(name, orders, examples, n_tokens, p_full, p_of, bins, aopc_steps, depths):
  """One method's metrics from the probabilities ``p_of[key]`` of its rows:
  ``(summary, per_example)``, each per-example array over ``examples``
  (averaged over orders)."""
  if not len(examples):
    return {"comprehensiveness": None, "sufficiency": None, "aopc": None}, {}
  comp = np.zeros((orders, len(examples), len(bins)))
  suff = np.zeros_like(comp)
  aopc = np.zeros((orders, len(examples), 1 + len(depths)))
  for o in range(orders):
    for x, e in enumerate(examples):
      n, p0 = int(n_tokens[e]), p_full[e]
      drop = lambda m: p0 - p_of[(name, o, e, "del", m)] if m else 0.0  # pylint: disable=cell-var-from-loop
      comp[o, x] = [drop(m) for m in bin_sizes(n, bins)]
      suff[o, x] = [p0 - p_of[(name, o, e, "keep", m)] for m in bin_sizes(n, bins)]
      curves = [[min(k, n) for k in range(1, aopc_steps + 1)]]
      curves += [depth_sizes(n, d, aopc_steps) for d in depths]
      aopc[o, x] = [sum(drop(m) for m in c) / (aopc_steps + 1) for c in curves]
  comp, suff, aopc = comp.mean(axis=0), suff.mean(axis=0), aopc.mean(axis=0)
  per_example = {"comprehensiveness": comp.mean(axis=1), "sufficiency": suff.mean(axis=1),
                 "aopc": aopc[:, 0]}
  per_example.update({f"aopc@{_label(d)}": aopc[:, 1 + i] for i, d in enumerate(depths)})
  summary = {
      "comprehensiveness": float(comp.mean()),
      "sufficiency": float(suff.mean()),
      "aopc": float(aopc[:, 0].mean()),
      "aopc_by_depth": {_label(d): float(aopc[:, 1 + i].mean()) for i, d in enumerate(depths)},
      "comprehensiveness_by_bin": {_label(b): float(v) for b, v in zip(bins, comp.mean(axis=0))},
      "sufficiency_by_bin": {_label(b): float(v) for b, v in zip(bins, suff.mean(axis=0))},
  }
  return summary, per_example


def evaluate_faithfulness(
    prob_fn: Callable[[np.ndarray], np.ndarray],
    ids: np.ndarray,
    scores: Mapping[str, Sequence[np.ndarray]],
    *,
    full_probs: np.ndarray | None = None,
    bins: Sequence[float] = BINS,
    aopc_steps: int = AOPC_STEPS,
    depths: Sequence[float] = DEPTHS,
    deletion_fn: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None,
) -> dict:
  """Comprehensiveness, sufficiency and AOPC of each explanation method.

  Args:
    prob_fn: ``ids [R, L] -> probs [R, C]`` (the model; 0 = padding). Unless
      ``deletion_fn`` is given, every perturbed row of every method goes to it
      in one call, so it should batch.
    ids: ``[N, L]`` the examples.
    scores: method name → one or more ``[N, L]`` token scores (higher = more
      important); several score arrays (e.g. random orders) are averaged. The
      name ``"random"``, if present, is the reference for ``aopc_*_random``.
    full_probs: ``[N, C]`` probabilities of ``ids`` if already known.
    bins: fractions of the tokens for comprehensiveness and sufficiency.
    aopc_steps: K, the number of deletion steps of AOPC.
    depths: fractions of each text's length for ``aopc_by_depth``.
    deletion_fn: ``(rows [R], keep [R, L]) -> probs [R, C]``, the probabilities
      of ``ids[rows]`` with every token outside ``keep`` deleted (e.g.
      ``functools.partial(forward.Predictor.deletion_probs, predictor, ids)``,
      much faster than building the rows); default: ``prob_fn`` on the rows.

  Returns:
    ``{"bins", "depths", "aopc_steps", "examples", "methods": {name: {...}},
    "example_rows": [E], "per_example": {name: {metric: [E]}}}`` over the E
    rows of ``ids`` that have a token (see the module docstring).
  """
  ids = np.asarray(ids, np.int32)
  mask = ids != 0
  n_tokens = mask.sum(axis=1)
  if full_probs is None:
    full_probs = prob_fn(ids)
  target = np.argmax(full_probs, axis=-1)
  p_full = full_probs[np.arange(len(ids)), target]
  examples = np.flatnonzero(n_tokens > 0)
  if deletion_fn is None:
    def deletion_fn(rows, keep):
      return prob_fn(np.where(keep, ids[rows], 0))
  rows, keep, keys = _perturbations(mask, n_tokens, examples, scores, bins, aopc_steps,
                                    depths)
  probs = deletion_fn(rows, keep) if len(rows) else np.zeros((0, full_probs.shape[1]))
  p_of = {key: float(probs[r, target[key[2]]]) for r, key in enumerate(keys)}
  measured = {name: _method(name, len(arrays), examples, n_tokens, p_full, p_of, bins,
                            aopc_steps, depths)
              for name, arrays in scores.items()}
  methods = {name: summary for name, (summary, _) in measured.items()}
  if RANDOM in methods and methods[RANDOM]["aopc"] is not None:
    floor = methods[RANDOM]["aopc"]
    for m in methods.values():
      if m["aopc"] is None:
        continue
      m["aopc_minus_random"] = m["aopc"] - floor
      m["aopc_over_random"] = m["aopc"] / floor if floor > 1e-6 else None
  return {"deletion": "replace with <PAD> (id 0), positions kept",
          "bins": [_label(b) for b in bins], "depths": [_label(d) for d in depths],
          "aopc_steps": int(aopc_steps), "examples": int(len(examples)), "methods": methods,
          "example_rows": examples,
          "per_example": {name: per for name, (_, per) in measured.items()}}
