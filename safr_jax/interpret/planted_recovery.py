r"""Explanations checked against the known answers of the ``planted`` data.

In ``planted`` the label is decided by a few planted tokens (sentiment words
and the ``not`` that flips them; everything else is random filler), so a
faithful explanation ranks the planted tokens first.

* precision@k and recall@k of an explanation, per example with P planted
  tokens among n, ``top_k`` its k highest-scored tokens (k ≤ n)::

      precision@k = |top_k ∩ P| / k        recall@k = |top_k ∩ P| / |P|

  for k = 1, 3, 5 and k = |P| (where precision = recall, "R-precision"); means
  over examples. A random ranking expects precision |P| / n.
* negation pairs: with m planted (``not``, word) pairs in an example and S the
  attention pair strength (see ``attention``), the share of the m strongest
  attention pairs that are planted pairs, pooled over examples::

      pair_hit_rate = Σ_e |top_m(S_e) ∩ pairs_e| / Σ_e m_e

  chance level: ``Σ_e m_e · m_e / C(n_e, 2) / Σ_e m_e``. Also how often a
  negated word's strongest attention partner is its ``not`` (chance 1/(n−1)).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from safr_jax.interpret import attention as attention_lib
from safr_jax.interpret.faithfulness import ranking

__all__ = ["precision_recall", "negation_pairs", "KS"]

KS = (1, 3, 5)


def precision_recall(scores: Sequence[np.ndarray], planted: np.ndarray,
                     token_mask: np.ndarray, ks: Sequence[int] = KS) -> dict:
  """Precision and recall at k of ``scores`` (one or more ``[N, L]`` arrays,
  averaged) for the ``planted [N, L]`` positions."""
  planted = np.asarray(planted, bool)
  token_mask = np.asarray(token_mask, bool)
  planted = planted[:, :token_mask.shape[1]] & token_mask
  rows = np.flatnonzero(planted.any(axis=1))
  names = [str(k) for k in ks] + ["|P|"]
  prec = {k: [] for k in names}
  rec = {k: [] for k in names}
  for s in scores:
    s = np.asarray(s)
    for e in rows:
      order = ranking(s[e], token_mask[e])
      size = int(planted[e].sum())
      for name, k in zip(names, list(ks) + [size]):
        top = order[:min(k, len(order))]
        hits = int(planted[e, top].sum())
        prec[name].append(hits / max(len(top), 1))
        rec[name].append(hits / size)
  mean = lambda v: float(np.mean(v)) if v else None
  return {"examples": int(len(rows)),
          "precision": {f"@{k}": mean(prec[k]) for k in names},
          "recall": {f"@{k}": mean(rec[k]) for k in names}}


def negation_pairs(mean_attention: np.ndarray, token_mask: np.ndarray,
                   pairs: np.ndarray) -> dict:
  """How often the strongest attention pairs are the planted (not, word) pairs.

  Args:
    mean_attention: ``[N, L, L]`` attention averaged over heads and layers.
    token_mask: ``[N, L]`` real tokens (a prefix of each row).
    pairs: ``[N, P, 2]`` (position of ``not``, position of its word), -1 padded.
  """
  hits = slots = 0
  chance = 0.0
  partner_hits, partner_chance, partner_count, examples = 0, 0.0, 0, 0
  for e in range(len(pairs)):
    n = int(np.asarray(token_mask[e]).sum())
    planted = {(int(min(a, b)), int(max(a, b))) for a, b in pairs[e]
               if a >= 0 and b >= 0 and max(a, b) < n}
    if not planted or n < 2:
      continue
    examples += 1
    s = attention_lib.pair_strength(np.asarray(mean_attention[e])[:n, :n])
    m = len(planted)
    top = {(i, j) for i, j, _ in attention_lib.top_pairs(s, m)}
    hits += len(top & planted)
    slots += m
    chance += m * m / (n * (n - 1) / 2)
    for neg, word in pairs[e]:
      if neg < 0 or max(neg, word) >= n:
        continue
      partner_hits += int(np.argmax(s[word]) == neg)
      partner_chance += 1.0 / (n - 1)
      partner_count += 1
  div = lambda a, b: a / b if b else None
  return {"examples": examples, "pairs": slots,
          "pair_hit_rate": div(hits, slots),
          "pair_hit_rate_chance": div(chance, slots),
          "word_top_partner_is_not": div(partner_hits, partner_count),
          "word_top_partner_is_not_chance": div(partner_chance, partner_count)}
