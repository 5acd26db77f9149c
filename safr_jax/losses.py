r"""SAFR's regularizers as pure functions of arrays.

Nothing here imports Flax: every function takes arrays by keyword, works under
``jit``, ``grad`` and ``vmap``, and returns float32 (float64 under x64) even for
bfloat16 inputs, so its value can be added to any loss.

Equations (B batch, H heads, L length, E embedding size; ``m`` the token mask):

Importance loss ``L_Imp`` (Elhage et al. 2022's sharing measure in the norm
form of the SAFR authors' code), on the VMASK-gated embeddings ``x [B, L, E]``::

    x̂_i   = x_i / (eps + ‖x_i‖)
    I_ij  = x̂_i · x_j                      for j ≠ i   (I_ii = 0)
    P_i   = ‖I_i‖₂ / sqrt(E)                 polysemanticity of token i
    L_Imp = mean_i P_i

Only x_i is normalised, so shrinking every gated embedding (closing the VMASK
gate) lowers L_Imp. ``scale_invariant=True`` normalises both sides,
``Î_ij = x̂_i · x̂_j`` and ``P_i = ‖Î_i‖₂`` (the authors' value when every
‖x_j‖ = sqrt(E)): a token's scale then cannot change it, so L_Imp sends no
gradient into the gate, and a dropped (zero) token still counts for nothing.

Interaction loss ``L_Inter`` on attention weights ``A [B, H, L, L]``::

    G     = A Aᵀ  per head, diagonal set to 0   (G_ik = Σ_j A_ij A_kj)
    C     = A / rowsum(A)                       attention correlation
    L_Inter = mean_{i,k} C_ik (1 − G_ik)

``token_mask=None`` is the *reference semantics*: every position counts,
padding included, exactly as the authors' code computes it. With a boolean
``token_mask [B, L]`` (True = real token) only real tokens count -- as i and
as j (or k) -- and the means run over real tokens (pairs), so appending
padding changes neither loss.

VMASK KL (the information-bottleneck term of Chen & Ji 2020's VMASK, not used
by the SAFR authors' code, off by default)::

    q_i   = softmax(p_i)[1]                  keep probability of token i
    KL_i  = q log(q / π) + (1 − q) log((1 − q) / (1 − π))
    L_KL  = mean_i KL_i
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, Mapping, Sequence

import jax
import jax.numpy as jnp

from safr_jax import interaction_kernels

Array = jax.Array

__all__ = [
    "LossWeights",
    "REGULARIZERS",
    "term_names",
    "weight_names",
    "importance_loss",
    "interaction_loss",
    "vmask_kl_loss",
    "cross_entropy_loss",
    "safr_loss",
]


# ----------------------------------------------------------------------------
# Helpers.


def _check_rank(name: str, x: Any, rank: int, layout: str) -> Array:
  x = jnp.asarray(x)
  if x.ndim != rank:
    raise ValueError(
        f"{name} must have rank {rank} {layout}, got shape {tuple(x.shape)}")
  return x


def _float(x: Array) -> Array:
  """Computes in at least float32 (float64 stays float64)."""
  return x.astype(jnp.promote_types(x.dtype, jnp.float32))


def _check_mask(token_mask: Any, batch: int, length: int) -> Array | None:
  if token_mask is None:
    return None
  m = jnp.asarray(token_mask)
  if m.shape != (batch, length):
    raise ValueError(
        f"token_mask must have shape [batch, length] = {(batch, length)}, got "
        f"shape {tuple(m.shape)}")
  return m.astype(bool)


def safe_norm(x: Array, axis: int = -1, keepdims: bool = False) -> Array:
  """Euclidean norm whose gradient is 0 (not NaN) at the zero vector.

  ``jnp.linalg.norm`` differentiates to 0/0 at 0; VMASK zeroes whole rows, so
  the regularizers meet zero vectors all the time. PyTorch defines the
  subgradient there as 0, and so do we (the "double where" trick).
  """
  sq = jnp.sum(x * x, axis=axis, keepdims=keepdims)
  positive = sq > 0
  return jnp.where(positive, jnp.sqrt(jnp.where(positive, sq, 1.0)), 0.0)


def _masked_mean(values: Array, weights: Array | None) -> Array:
  if weights is None:
    return jnp.mean(values)
  weights = weights.astype(values.dtype)
  return jnp.sum(values * weights) / jnp.maximum(jnp.sum(weights), 1.0)


# ----------------------------------------------------------------------------
# The regularizers.


def importance_loss(*,
                    embeddings: Array,
                    token_mask: Array | None = None,
                    eps: float = 1e-5,
                    scale_invariant: bool = False) -> Array:
  """L_Imp: how much each token's representation interferes with the others.

  Args:
    embeddings: ``[batch, length, embed]`` token representations (in SAFR the
      VMASK-gated embeddings, so unimportant tokens are near zero).
    token_mask: optional ``[batch, length]`` bool, True for real tokens. None
      counts every position (the authors' semantics).
    eps: added to the norm before normalising, as in the authors' code.
    scale_invariant: normalise x_j too (see the module docstring).

  Returns:
    A scalar, float32 or wider.
  """
  x = _float(_check_rank("embeddings", embeddings, 3, "[batch, length, embed]"))
  b, l, e = x.shape
  m = _check_mask(token_mask, b, l)
  if m is not None:
    x = jnp.where(m[..., None], x, 0.0)  # masked tokens are never a j.
  x_hat = x / (eps + safe_norm(x, keepdims=True))
  interference = jnp.einsum("ble,bme->blm", x_hat, x_hat if scale_invariant else x)
  interference = jnp.where(jnp.eye(l, dtype=bool), 0.0, interference)
  polysemanticity = safe_norm(interference) / (1.0 if scale_invariant else math.sqrt(e))
  return _masked_mean(polysemanticity, m)


def interaction_loss(*,
                     attention_weights: Array,
                     token_mask: Array | None = None,
                     query_block_size: int | None = None) -> Array:
  """L_Inter: pull together the token pairs that attend to each other.

  Args:
    attention_weights: ``[batch, heads, length, length]`` (query, key) softmax
      attention weights of one layer. May also be ``[batch, heads, length,
      keys]`` with ``keys < length``: the weights of the first ``keys`` keys
      only, when every later key has weight exactly 0 (padding cut off; see
      ``SafrClassifier(num_keys=...)``). The value and gradient are then those
      of the square array with zero columns appended, and the means still run
      over ``length × length`` pairs (over real pairs with ``token_mask``,
      whose keys from ``keys`` on must then be padding).
    token_mask: optional ``[batch, length]`` bool, True for real tokens; only
      pairs of two real tokens count. None counts every pair (the authors').
    query_block_size: if set (and smaller than the length), computes ``G``,
      the mean and the gradient a block of ``query_block_size`` query rows at
      a time, so neither the value nor the gradient needs a ``[B, H, L, L]``
      array besides the attention and its gradient: temporaries are
      ``[B, H, query_block_size, L]``. Any block size works (the last block
      overlaps the one before). Same value, same gradient (to rounding), much
      less memory for long sequences; see ``docs/PERFORMANCE.md``. This path
      has a hand-written VJP: ``grad``/``vjp`` (to any order) work, ``jvp``
      does not.

  The all-rows path (``query_block_size`` None) has a hand-written JVP whose
  tangent is ``⟨∂L/∂A, dA⟩`` with the gradient in closed form (one
  ``[L, L] × [L, L]`` product per head instead of autodiff's two; see
  ``interaction_kernels``): ``grad``, ``value_and_grad``, ``vjp``,
  ``jvp``, ``vmap`` and higher orders (``jax.hessian``) all work.

  Returns:
    A scalar, float32 or wider.
  """
  a = _float(_check_rank("attention_weights", attention_weights, 4,
                         "[batch, heads, length, length]"))
  b, h, l, keys = a.shape
  if keys > l:
    raise ValueError("attention_weights must be square in its last two axes "
                     f"[batch, heads, length, length], got shape {a.shape}")
  m = _check_mask(token_mask, b, l)
  pair_weight = None if m is None else (m[:, :, None] & m[:, None, :keys])
  if query_block_size is not None and query_block_size < 1:
    raise ValueError(f"query_block_size must be None or >= 1, got {query_block_size}")
  if query_block_size is None or query_block_size >= l:
    total = interaction_kernels.interaction_sum(a, pair_weight)
  else:
    if keys < l:  # the blocked path wants the square array: zero keys back
      a = jnp.pad(a, [(0, 0)] * 3 + [(0, l - keys)])
      pair_weight = None if m is None else (m[:, :, None] & m[:, None, :])
    total = interaction_kernels.blocked_interaction_sum(a, pair_weight,
                                                        int(query_block_size))
  if pair_weight is None:
    count = b * h * l * l
  else:
    # Σ_ik m_i m_k = (Σ_i m_i)² per example: no [B, L, L] float temporary.
    tokens = jnp.sum(m.astype(a.dtype), axis=1)
    count = jnp.maximum(h * jnp.sum(tokens * tokens), 1.0)
  return total / count


def vmask_kl_loss(*,
                  mask_logits: Array,
                  token_mask: Array | None = None,
                  prior: float = 0.5) -> Array:
  """KL(Bernoulli(keep prob) ‖ Bernoulli(prior)) per token, averaged.

  Args:
    mask_logits: ``[batch, length, 2]`` VMASK logits (index 1 = keep).
    token_mask: optional ``[batch, length]`` bool; None averages every position.
    prior: the prior keep probability π, in (0, 1).

  Returns:
    A scalar, float32 or wider.
  """
  p = _float(_check_rank("mask_logits", mask_logits, 3, "[batch, length, 2]"))
  if p.shape[-1] != 2:
    raise ValueError(f"mask_logits must have shape [batch, length, 2], got "
                     f"shape {tuple(p.shape)}")
  if not 0.0 < prior < 1.0:
    raise ValueError(f"prior must be in (0, 1), got {prior}")
  m = _check_mask(token_mask, p.shape[0], p.shape[1])
  log_q = jax.nn.log_softmax(p, axis=-1)
  log_prior = jnp.log(jnp.asarray([1.0 - prior, prior], p.dtype))
  kl = jnp.sum(jnp.exp(log_q) * (log_q - log_prior), axis=-1)
  return _masked_mean(kl, m)


def cross_entropy_loss(*, logits: Array, labels: Array,
                       weights: Array | None = None) -> Array:
  """Mean softmax cross-entropy; ``logits [batch, classes]``, ``labels [batch]``.

  ``weights [batch]`` (e.g. 0 for the padding rows of a last eval batch) turn
  it into a weighted mean.
  """
  logits = _float(_check_rank("logits", logits, 2, "[batch, classes]"))
  labels = _check_rank("labels", labels, 1, "[batch]")
  if labels.shape[0] != logits.shape[0]:
    raise ValueError(f"labels must have shape [batch] = ({logits.shape[0]},), "
                     f"got shape {tuple(labels.shape)}")
  log_p = jax.nn.log_softmax(logits, axis=-1)
  nll = -jnp.take_along_axis(log_p, labels[:, None].astype(jnp.int32), -1)[:, 0]
  return _masked_mean(nll, None if weights is None else jnp.asarray(weights))


# ----------------------------------------------------------------------------
# Everything together.


@dataclasses.dataclass(frozen=True)
class LossWeights:
  """The λ of each regularizer (one field per ``REGULARIZERS`` entry, same
  name); the authors use importance = interaction = 1.

  A weight may be a (traced) array, e.g. an annealed β; a Python 0 drops its
  term from the total at trace time.
  """
  importance: float | Array = 1.0
  interaction: float | Array = 1.0
  vmask_kl: float | Array = 0.0
  scale_invariant_importance: float | Array = 0.0

  def __post_init__(self) -> None:
    for field in dataclasses.fields(self):
      value = getattr(self, field.name)
      if isinstance(value, (int, float)) and not value >= 0:  # also catches NaN
        raise ValueError(
            f"LossWeights.{field.name} must be >= 0, got {value}")


def _get(intermediates: Any, name: str) -> Any:
  if isinstance(intermediates, Mapping):
    return intermediates[name]
  return getattr(intermediates, name)


def _importance_term(*, intermediates: Any, token_mask: Array | None,
                     query_block_size: int | None) -> Array:
  del query_block_size
  return importance_loss(embeddings=_get(intermediates, "masked_embeddings"),
                         token_mask=token_mask)


def _scale_invariant_importance_term(*, intermediates: Any, token_mask: Array | None,
                                     query_block_size: int | None) -> Array:
  del query_block_size
  return importance_loss(embeddings=_get(intermediates, "masked_embeddings"),
                         token_mask=token_mask, scale_invariant=True)


def _interaction_term(*, intermediates: Any, token_mask: Array | None,
                      query_block_size: int | None) -> Array:
  """The mean over layers of each layer's ``L_Inter``."""
  attention: Sequence[Array] = _get(intermediates, "attention")
  if not attention:
    raise ValueError("intermediates.attention must hold at least one layer's "
                     "attention weights")
  return jnp.mean(jnp.stack([
      interaction_loss(attention_weights=a, token_mask=token_mask,
                       query_block_size=query_block_size) for a in attention]))


def _vmask_kl_term(*, intermediates: Any, token_mask: Array | None,
                   query_block_size: int | None) -> Array:
  """0 for a model without VMASK (``vmask_logits`` None)."""
  del query_block_size
  vmask_logits = _get(intermediates, "vmask_logits")
  if vmask_logits is None:
    return jnp.zeros((), jnp.result_type(float))
  return vmask_kl_loss(mask_logits=vmask_logits, token_mask=token_mask)


# The one list of loss terms: ``safr_loss`` adds each to the cross-entropy, in
# this order, weighted by the ``LossWeights`` field of the same name; the
# trainer's weights, config validation, metrics and divergence check all
# derive from it. A new regularizer is one function
# ``(*, intermediates, token_mask, query_block_size) -> scalar`` here plus one
# LossWeights field and its ``config.loss`` default (docs/API.md).
REGULARIZERS: dict[str, Callable[..., Array]] = {
    "importance": _importance_term,
    "interaction": _interaction_term,
    "vmask_kl": _vmask_kl_term,
    # L_Imp that closing the gate cannot lower (a candidate fix, off by default).
    "scale_invariant_importance": _scale_invariant_importance_term,
}


def weight_names() -> tuple[str, ...]:
  """The λ names: the ``LossWeights`` fields, one per regularizer."""
  return tuple(f.name for f in dataclasses.fields(LossWeights))


def term_names() -> tuple[str, ...]:
  """Every term ``safr_loss`` reports: "ce", then each regularizer."""
  return ("ce", *REGULARIZERS)


def safr_loss(*,
              logits: Array,
              labels: Array,
              intermediates: Any,
              token_mask: Array | None,
              weights: LossWeights | None = None,
              example_weights: Array | None = None,
              query_block_size: int | None = None,
              ) -> tuple[Array, dict[str, Array]]:
  """Cross-entropy plus the weighted SAFR regularizers.

  Args:
    logits: ``[batch, classes]``.
    labels: ``[batch]`` int class ids.
    intermediates: anything with fields (attributes or keys)
      ``masked_embeddings [batch, length, embed]``, ``attention`` (a sequence
      of ``[batch, heads, length, length]``, one per layer) and
      ``vmask_logits [batch, length, 2]`` (or None: no VMASK, ``vmask_kl``
      is then 0), e.g. the ``Intermediates`` that ``SafrClassifier`` returns.
    token_mask: ``[batch, length]`` bool for padding-aware losses, or None for
      the authors' semantics (padding counted).
    weights: the λ of each regularizer (default ``LossWeights()``). A term
      whose weight is 0 is still reported (so a baseline run logs what SAFR
      would penalise) but does not enter the total.
    example_weights: optional ``[batch]`` weights of the cross-entropy (0 for
      dummy rows that pad an eval batch).
    query_block_size: passed to ``interaction_loss``.

  Returns:
    ``(total, terms)``: ``terms`` maps each of ``term_names()`` ("ce",
    "importance", "interaction", "vmask_kl") to a scalar. With several
    layers the interaction term is the mean over layers.
  """
  weights = LossWeights() if weights is None else weights
  if set(REGULARIZERS) != set(weight_names()):
    raise ValueError(f"losses.REGULARIZERS {sorted(REGULARIZERS)} and the "
                     f"LossWeights fields {sorted(weight_names())} must name "
                     "the same terms")
  ce = cross_entropy_loss(logits=logits, labels=labels, weights=example_weights)
  terms = {"ce": ce}
  total = ce
  for name, term_fn in REGULARIZERS.items():
    value = term_fn(intermediates=intermediates, token_mask=token_mask,
                    query_block_size=query_block_size)
    terms[name] = value.astype(ce.dtype)
    weight = getattr(weights, name)
    if not (isinstance(weight, (int, float)) and weight == 0):
      total = total + weight * terms[name]
  return total, terms
