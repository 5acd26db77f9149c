r"""Token-importance explanations: one score per token, higher = more important.

* ``vmask``: VMASK keep-probability ``q_i = softmax(p_i)[1]`` (eval mode); the
  importance SAFR trains. Only for runs with VMASK.
* ``attention``: attention received, ``r_j = Σ_i Ā_ij`` with ``Ā`` the weights
  averaged over heads and layers (see ``attention``).
* ``gradient_x_input``: ``Σ_d ∂ log p(ŷ|x) / ∂e_jd · e_jd`` on the token
  embedding e_j (signed: positive = evidence for the predicted class ŷ).
* ``occlusion``: leave-one-out, ``p(ŷ|x) − p(ŷ|x with token j → <PAD>)``.
* ``random``: uniform random scores (several independent orders): the chance
  level every other method should beat.

Padding positions score ``-inf``, so they are never ranked.
"""

from __future__ import annotations

import functools

import numpy as np

from safr_jax.interpret import attention as attention_lib

__all__ = ["METHODS", "token_scores", "occlusion"]

METHODS = ("vmask", "attention", "gradient_x_input", "occlusion", "random")


def occlusion(prob_fn, ids: np.ndarray, full_probs: np.ndarray, *,
              deletion_fn=None) -> np.ndarray:
  """Leave-one-out scores ``[N, L]``: the drop of p(ŷ) when token j is <PAD>.

  ``prob_fn``: ``ids [R, L] -> probs [R, C]``; ``deletion_fn`` (optional,
  faster): ``(rows [R], keep [R, L]) -> probs`` of ``ids[rows]`` with the
  tokens outside ``keep`` deleted (``forward.Predictor.deletion_probs``).
  """
  ids = np.asarray(ids, np.int32)
  target = np.argmax(full_probs, axis=-1)
  where = np.argwhere(ids != 0)                      # (example, position)
  keep = ids[where[:, 0]] != 0
  keep[np.arange(len(where)), where[:, 1]] = False
  scores = np.zeros(ids.shape, np.float64)
  if len(where):
    if deletion_fn is None:
      probs = prob_fn(np.where(keep, ids[where[:, 0]], 0))
    else:
      probs = deletion_fn(where[:, 0], keep)
    p = probs[np.arange(len(where)), target[where[:, 0]]]
    scores[where[:, 0], where[:, 1]] = full_probs[where[:, 0], target[where[:, 0]]] - p
  return scores


def token_scores(predictor, ids: np.ndarray, lengths: np.ndarray, *,
                 full_probs: np.ndarray, keep_prob: np.ndarray | None,
                 mean_attention: np.ndarray, random_orders: int = 3,
                 seed: int = 0) -> dict[str, list[np.ndarray]]:
  """Every method's ``[N, L]`` scores (a list: ``random`` has several orders).

  Args:
    predictor: a ``forward.Predictor``.
    ids, lengths: ``[N, L]`` examples and their token counts.
    full_probs: ``[N, C]`` the predictor's probabilities of ``ids``.
    keep_prob: ``[N, L]`` VMASK keep-probabilities, or None (no ``vmask``).
    mean_attention: ``[N, L, L]`` attention averaged over heads and layers.
    random_orders: how many random rankings make up ``random``.
    seed: seed of the random rankings.
  """
  ids = np.asarray(ids, np.int32)
  mask = ids != 0
  out = {}
  if keep_prob is not None:
    out["vmask"] = [np.asarray(keep_prob, np.float64)]
  out["attention"] = [attention_lib.received(mean_attention, mask)]
  target = np.argmax(full_probs, axis=-1)
  out["gradient_x_input"] = [predictor.grad_x_input(ids, lengths, target)]
  out["occlusion"] = [occlusion(predictor.probs, ids, full_probs,
                                deletion_fn=functools.partial(predictor.deletion_probs, ids))]
  rng = np.random.default_rng(seed)
  out["random"] = [rng.random(ids.shape) for _ in range(random_orders)]
  return {k: [np.where(mask, s, -np.inf) for s in v] for k, v in out.items()}
