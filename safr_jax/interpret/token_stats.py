"""Per-token superposition and neuron overlap, pooled over the examples of an
``evaluate`` subset: the ``superposition`` and ``neuron_overlap`` entries of
``interpretability.json`` (definitions in ``superposition``, ``neurons``,
``attention`` and docs/METRICS.md).

Tokens fall in groups by their VMASK keep-probability q: ``important``
(q > ``IMPORTANT``) and ``other``; without VMASK there are no groups, only
``all``. Superposition of the important tokens is reported twice:

* ``important``: their sharing with *every* real token of the example (the
  ``all`` computation, averaged over the important tokens);
* ``important_among_important``: their sharing with the *other important*
  tokens only (the rest removed before computing). VMASK scales the other
  tokens' embeddings towards zero, which by itself lowers ``important``; this
  one does not move when that happens. Null without VMASK.

Both are sums over the other tokens in ‖x‖² units, so they fall when a model
marks fewer tokens important or shrinks them. ``matched`` (per example, so
intervals can cover the examples) compares models on equal terms: the same
``top_k`` tokens by keep-probability for every model, and per *pair* of them
scale-free quantities:

* ``topk_cos2_{embeddings,ffn}``: mean cos² between two top-k tokens'
  vectors (0 = orthogonal, 1 = the same direction);
* ``topk_jaccard``: mean Jaccard of their active FFN neurons;
* ``attention_jaccard`` / ``random_jaccard``: the mean Jaccard of the example's
  strongest attention pairs / of as many random pairs (``attention_minus_random``
  is their difference; no VMASK needed).
"""

from __future__ import annotations

import numpy as np

from safr_jax.interpret import attention as attention_lib
from safr_jax.interpret import neurons, superposition
from safr_jax.interpret.forward import TokenActivations

__all__ = ["TokenStats", "IMPORTANT", "GROUPS", "TOP_K", "MATCHED"]

IMPORTANT = 0.5  # keep-probability above which a token counts as important
# Tokens compared per example, whatever the model: SAFR marks ~4 SST-2 tokens
# important, VMASK alone ~12, so a threshold compares different counts.
TOP_K = 4
MATCHED = ("topk_cos2_embeddings", "topk_cos2_ffn", "topk_jaccard", "attention_jaccard",
           "random_jaccard", "attention_minus_random")
GROUPS = ("all", "important", "other", "important_among_important")
_SPACES = (("embeddings", "emb"), ("ffn", "ffn"))


def _mean(values) -> float | None:
  values = np.asarray(values, np.float64)
  values = values[np.isfinite(values)]
  return float(values.mean()) if values.size else None


def _superposition(emb: np.ndarray, ffn: np.ndarray) -> dict[str, np.ndarray]:
  """Per token: sharing and dimensionality of ``emb [n, D]`` and of ``ffn
  [layers, n, F]`` (averaged over layers)."""
  s, d = superposition.token_superposition(emb)
  per_layer = [superposition.token_superposition(h) for h in ffn]
  return {"emb_sharing": s, "emb_dim": d,
          "ffn_sharing": np.mean([p[0] for p in per_layer], axis=0),
          "ffn_dim": np.mean([p[1] for p in per_layer], axis=0)}


def _mean_cos2(x: np.ndarray) -> float:
  """Mean (x̂_i · x̂_j)² over the pairs i ≠ j of the rows of ``x [k, dim]``."""
  norms = np.linalg.norm(x, axis=-1)
  if len(x) < 2 or (norms <= superposition.ZERO_NORM).any():
    return np.nan
  x_hat = x / norms[:, None]
  i, j = np.triu_indices(len(x), k=1)
  return float(np.mean((x_hat @ x_hat.T)[i, j] ** 2))


def _cat(lists: dict[str, list]) -> dict[str, np.ndarray]:
  return {k: np.concatenate(v) if v else np.zeros(0) for k, v in lists.items()}


class TokenStats:
  """Accumulates one example at a time (``add``); ``summary`` pools them.

  Args:
    threshold: an FFN neuron is active for a token above this activation.
    pairs_per_example: attention pairs and random pairs taken per example.
    seed: seed of the random pairs.
    top_k: tokens (highest keep-probability first) of the ``matched`` metrics.
  """

  def __init__(self, threshold: float, pairs_per_example: int, seed: int,
               top_k: int = TOP_K):
    self.threshold = threshold
    self.k = pairs_per_example
    self.top_k = top_k
    self.matched: dict[int, dict[str, float]] = {}  # row -> MATCHED values
    self.rng = np.random.default_rng(seed)
    self.group: list[np.ndarray] = []  # per token: 1 important, 0 other, -1 n/a
    names = ("emb_sharing", "emb_dim", "ffn_sharing", "ffn_dim")
    self.values = {k: [] for k in names + ("active_fraction",)}
    self.among_important = {k: [] for k in names}  # important tokens only
    # Mean Jaccard of the active-neuron sets of each kind of token pair.
    self.pairs = {k: [] for k in ("important_pairs", "important_other_pairs",
                                  "other_pairs", "attention_pairs", "random_pairs")}

  def add(self, tokens: TokenActivations, row: int = -1) -> None:
    """One example's n ≥ 1 real tokens (``row``: its row, for ``per_example``)."""
    emb, ffn, keep = tokens.embeddings, tokens.ffn, tokens.keep_prob
    n = emb.shape[0]
    group = np.full(n, -1) if keep is None else (keep > IMPORTANT).astype(int)
    self.group.append(group)
    for k, v in _superposition(emb, ffn).items():
      self.values[k].append(v)
    if (group == 1).any():
      important = group == 1
      for k, v in _superposition(emb[important], ffn[:, important]).items():
        self.among_important[k].append(v)
    on = neurons.active(ffn, self.threshold)             # [layers, n, F]
    self.values["active_fraction"].append(on.mean(axis=(0, 2)))
    matched = dict.fromkeys(MATCHED, np.nan)
    if n >= 2:
      jac = np.mean([neurons.pairwise_jaccard(a) for a in on], axis=0)
      self._add_pairs(jac, group, tokens.attention, matched)
      if keep is not None:
        top = np.lexsort((np.arange(n), -keep))[:self.top_k]
        i, j = np.triu_indices(len(top), k=1)
        matched.update(topk_cos2_embeddings=_mean_cos2(emb[top]),
                       topk_cos2_ffn=float(np.mean([_mean_cos2(h[top]) for h in ffn])),
                       topk_jaccard=float(jac[top[i], top[j]].mean()))
    self.matched[row] = matched

  def _add_pairs(self, jac, group, attention, matched) -> None:
    n = len(group)
    i, j = np.triu_indices(n, k=1)
    if (group >= 0).all():
      gi, gj = group[i], group[j]
      self.pairs["important_pairs"].append(jac[i, j][(gi == 1) & (gj == 1)])
      self.pairs["other_pairs"].append(jac[i, j][(gi == 0) & (gj == 0)])
      self.pairs["important_other_pairs"].append(jac[i, j][gi != gj])
    top = attention_lib.top_pairs(attention_lib.pair_strength(attention), self.k)
    attended = np.array([jac[a, b] for a, b, _ in top])
    pick = self.rng.choice(len(i), size=min(self.k, len(i)), replace=False)
    self.pairs["attention_pairs"].append(attended)
    self.pairs["random_pairs"].append(jac[i[pick], j[pick]])
    matched.update(attention_jaccard=attended.mean(), random_jaccard=jac[i[pick], j[pick]].mean())
    matched["attention_minus_random"] = matched["attention_jaccard"] - matched["random_jaccard"]

  def per_example(self, rows: int) -> dict[str, np.ndarray]:
    """Each ``MATCHED`` metric for rows 0..rows-1 (NaN where undefined: fewer
    than 2 tokens, or no VMASK for the top-k ones)."""
    out = {k: np.full(rows, np.nan) for k in MATCHED}
    for row, values in self.matched.items():
      for k, v in values.items():
        out[k][row] = v
    return out

  def matched_summary(self, rows: int) -> dict:
    """``mechanism``: the mean of each ``MATCHED`` metric and its example count."""
    out = {}
    for k, v in self.per_example(rows).items():
      out[k] = _mean(v)
      out[f"{k}_examples"] = int(np.isfinite(v).sum())
    out["top_k"] = self.top_k
    return out

  def superposition_summary(self) -> dict:
    """``superposition.{embeddings,ffn}.<group>.{sharing,dimensionality,tokens}``
    and ``zero_norm_tokens``."""
    group = np.concatenate(self.group) if self.group else np.zeros(0, int)
    cat, among = _cat(self.values), _cat(self.among_important)
    masks = {"all": np.ones_like(group, bool), "important": group == 1,
             "other": group == 0}
    out = {}
    for space, prefix in _SPACES:
      sharing, dim = cat[f"{prefix}_sharing"], cat[f"{prefix}_dim"]
      out[space] = {g: _group(sharing[m], dim[m]) for g, m in masks.items()}
      out[space]["important_among_important"] = _group(among[f"{prefix}_sharing"],
                                                       among[f"{prefix}_dim"])
    out["zero_norm_tokens"] = {space: int(np.isnan(cat[f"{prefix}_dim"]).sum())
                               for space, prefix in _SPACES}
    return out

  def overlap_summary(self) -> dict:
    """``neuron_overlap``: mean Jaccard per kind of pair, and active fractions."""
    group = np.concatenate(self.group) if self.group else np.zeros(0, int)
    active_fraction = _cat(self.values)["active_fraction"]
    pairs = _cat(self.pairs)
    overlap = {k: _mean(v) for k, v in pairs.items()}
    a, r = overlap["attention_pairs"], overlap["random_pairs"]
    overlap["attention_minus_random"] = None if a is None or r is None else a - r
    overlap["pair_counts"] = {k: int(v.size) for k, v in pairs.items()}
    overlap["active_fraction"] = {
        "all": _mean(active_fraction), "important": _mean(active_fraction[group == 1]),
        "other": _mean(active_fraction[group == 0])}
    overlap["active_threshold"] = self.threshold
    overlap["pairs_per_example"] = self.k
    return overlap


def _group(sharing: np.ndarray, dim: np.ndarray) -> dict:
  return {"sharing": _mean(sharing), "dimensionality": _mean(dim),
          "tokens": int(np.isfinite(dim).sum())}
