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
import functools
import math
from typing import Any, Callable, Mapping, Sequence

import jax
import jax.numpy as jnp

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
  ``_interaction_value_and_gradient``): ``grad``, ``value_and_grad``, ``vjp``,
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
    total = _interaction_sum(a, pair_weight)
  else:
    if keys < l:  # the blocked path wants the square array: zero keys back
      a = jnp.pad(a, [(0, 0)] * 3 + [(0, l - keys)])
      pair_weight = None if m is None else (m[:, :, None] & m[:, None, :])
    total = _blocked_interaction_sum(a, pair_weight, int(query_block_size))
  if pair_weight is None:
    count = b * h * l * l
  else:
    # Σ_ik m_i m_k = (Σ_i m_i)² per example: no [B, L, L] float temporary.
    tokens = jnp.sum(m.astype(a.dtype), axis=1)
    count = jnp.maximum(h * jnp.sum(tokens * tokens), 1.0)
  return total / count


# L_Inter's sum and its gradient in closed form. Per (batch, head), with
# A [L, K] (K <= L keys; the keys after K have weight 0), r = rowsum(A),
# C = A / r, G̃_ik = Σ_j A_ij A_kj for k < K with a zero diagonal (i = k), and
# P the pair mask (all ones without a token mask):
#
#   total = Σ_ik P_ik C_ik (1 − G̃_ik)
#
# With E = P ⊙ (1 − G̃) and F = −P ⊙ C (zero diagonal), dC gives
# (E − rowsum(E ⊙ C)) / r and dG̃ = dA A_Kᵀ + A dA_Kᵀ gives F A_K + Fᵀ A, so
#
#   ∂total/∂A = (E − rowsum(E ⊙ C)) / r + (F + Fᵀ) A        (K = L)
#
# one [L, L] × [L, L] product where autodiff of the formula takes two (F A and
# Fᵀ A). For K < L the second term is F A_K plus Fᵀ A added to the first K
# rows (two products, of L·K² multiply-adds each). rowsum(E ⊙ C) is the sum's
# own per-row partial sum, so the forward's reduction gives it for free.


def _interaction_rows(a: Array, pair_weight: Array | None):
  """``(rowsum(E ⊙ C) [B, H, L], E, 1 / r [B, H, L, 1])`` of the formula above."""
  l, keys = a.shape[2], a.shape[3]
  inverse_rowsum = 1.0 / jnp.sum(a, axis=-1, keepdims=True)
  gram = jnp.einsum("bhij,bhkj->bhik", a, a[:, :, :keys])
  diagonal = jnp.arange(l)[:, None] == jnp.arange(keys)[None, :]
  e = jnp.where(diagonal, 1.0, 1.0 - gram)
  if pair_weight is not None:
    e = jnp.where(pair_weight[:, None], e, 0.0)
  # Σ_k E_ik C_ik = (Σ_k E_ik A_ik) / r_i: no [B, H, L, K] C is formed.
  return jnp.sum(e * a, axis=-1) * inverse_rowsum[..., 0], e, inverse_rowsum


@jax.custom_jvp
def _interaction_sum(a: Array, pair_weight: Array | None) -> Array:
  """Σ_ik P_ik C_ik (1 − G̃_ik) over every (batch, head)."""
  return jnp.sum(_interaction_rows(a, pair_weight)[0])


def _interaction_value_and_gradient(a: Array, pair_weight: Array | None):
  """``(total, ∂total/∂a)`` in closed form (see above)."""
  l, keys = a.shape[2], a.shape[3]
  rows, e, inverse_rowsum = _interaction_rows(a, pair_weight)
  off_diagonal = jnp.arange(l)[:, None] != jnp.arange(keys)[None, :]
  keep = off_diagonal if pair_weight is None else off_diagonal & pair_weight[:, None]
  grad = (e - rows[..., None]) * inverse_rowsum
  if keys == l:
    # −(F + Fᵀ)_ik = P_ik (A_ik / r_i + A_ki / r_k) off the diagonal (P symmetric).
    s = jnp.where(keep, a * inverse_rowsum
                  + jnp.swapaxes(a * inverse_rowsum, -1, -2), 0.0)
    grad = grad - jnp.einsum("bhik,bhkj->bhij", s, a)
  else:
    f = jnp.where(keep, a * inverse_rowsum, 0.0)                   # −F, [B, H, L, K]
    grad = grad - jnp.einsum("bhik,bhkj->bhij", f, a[:, :, :keys])
    top = jnp.einsum("bhik,bhij->bhkj", f, a)                      # [B, H, K, K]
    grad = grad - jnp.pad(top, [(0, 0), (0, 0), (0, l - keys), (0, 0)])
  return jnp.sum(rows), grad


@_interaction_sum.defjvp
def _interaction_sum_jvp(primals, tangents):
  (a, pair_weight), (a_dot, _) = primals, tangents
  total, grad = _interaction_value_and_gradient(a, pair_weight)
  return total, jnp.sum(grad * a_dot)


def _interaction_block_sum(rows: Array, a: Array, start, pair_weight,
                           row_weight: Array | None = None):
  """Σ C_ik (1 − G_ik) over query rows ``rows`` = a[:, :, start:start+q].

  ``pair_weight [B, q, L]`` masks pairs; ``row_weight [q]`` (bool) drops rows.
  """
  q, l = rows.shape[2], a.shape[2]
  correlation = rows / jnp.sum(rows, axis=-1, keepdims=True)
  gram = jnp.einsum("bhij,bhkj->bhik", rows, a)
  diagonal = (jnp.arange(q)[:, None] + start) == jnp.arange(l)[None, :]
  gram = jnp.where(diagonal, 0.0, gram)
  terms = correlation * (1.0 - gram)
  if pair_weight is not None:
    terms = jnp.where(pair_weight[:, None], terms, 0.0)
  if row_weight is not None:
    terms = jnp.where(row_weight[:, None], terms, 0.0)
  return jnp.sum(terms)


# Blockwise L_Inter with a hand-written gradient. Autodiff of a blocked sum
# would give each block a full [B, H, L, L] cotangent for ``a`` (every row of
# G_R = A_R Aᵀ touches all of A) and add them up; here the gradient is
# assembled by output rows instead, so only [B, H, q, L] slabs are live.
# Per (batch, head), with r = rowsum(A), C = A / r, P the pair mask and
# G̃ = A Aᵀ with a zero diagonal, total = Σ_ik P_ik C_ik (1 − G̃_ik) and
#
#   E = P ⊙ (1 − G̃),      F = −P ⊙ C with a zero diagonal,
#   ∂total/∂A = (E − rowsum(E ⊙ C)) / r + (F + Fᵀ) A,
#
# whose rows R need A_R, A[:, R] and all of A: two [q, L] x [L, L] products
# per block (G's rows again, and (F_R + F[:, R]ᵀ) A), one fewer than autodiff
# with rematerialisation would do.


def _row_block(length: int, q: int, block):
  """Start of query block ``block`` (the last one is moved back to fit) and
  which of its rows no earlier block covered."""
  nominal = block * q
  start = jnp.minimum(nominal, length - q)
  return start, (start + jnp.arange(q)) >= nominal


def _blocked_interaction_forward(a: Array, pair_weight, q: int) -> Array:
  length = a.shape[2]

  def body(block, total):
    start, fresh = _row_block(length, q, block)
    rows = jax.lax.dynamic_slice_in_dim(a, start, q, axis=2)
    pw = None if pair_weight is None else jax.lax.dynamic_slice_in_dim(
        pair_weight, start, q, axis=1)
    return total + _interaction_block_sum(rows, a, start, pw, fresh)

  return jax.lax.fori_loop(0, -(-length // q), body, jnp.zeros((), a.dtype))


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _blocked_interaction_sum(a: Array, pair_weight, q: int) -> Array:
  """Σ_ik P_ik C_ik (1 − G̃_ik) over all rows, ``q`` query rows at a time."""
  return _blocked_interaction_forward(a, pair_weight, q)


def _blocked_fwd(a, pair_weight, q):
  total = _blocked_interaction_forward(a, pair_weight, q)
  return total, (a, pair_weight, jnp.sum(a, axis=-1))


def _blocked_bwd(q, residuals, g):
  a, pair_weight, rowsum = residuals
  length = a.shape[2]
  keys = jnp.arange(length)

  def body(block, grad):
    start, _ = _row_block(length, q, block)
    block_ids = start + jnp.arange(q)
    rows = jax.lax.dynamic_slice_in_dim(a, start, q, axis=2)        # [B,H,q,L]
    cols = jax.lax.dynamic_slice_in_dim(a, start, q, axis=3)        # [B,H,L,q]
    r_rows = jax.lax.dynamic_slice_in_dim(rowsum, start, q, axis=2)[..., None]
    c_rows = rows / r_rows
    c_cols = cols / rowsum[..., None]
    diag_rows = block_ids[:, None] == keys[None, :]                  # [q, L]
    diag_cols = keys[:, None] == block_ids[None, :]                  # [L, q]
    gram = jnp.einsum("bhij,bhkj->bhik", rows, a)
    e = 1.0 - jnp.where(diag_rows, 0.0, gram)
    f_rows = jnp.where(diag_rows, 0.0, -c_rows)
    f_cols = jnp.where(diag_cols, 0.0, -c_cols)
    if pair_weight is not None:
      pw_rows = jax.lax.dynamic_slice_in_dim(pair_weight, start, q, axis=1)[:, None]
      pw_cols = jax.lax.dynamic_slice_in_dim(pair_weight, start, q, axis=2)[:, None]
      e = jnp.where(pw_rows, e, 0.0)
      f_rows = jnp.where(pw_rows, f_rows, 0.0)
      f_cols = jnp.where(pw_cols, f_cols, 0.0)
    d_rows = (e - jnp.sum(e * c_rows, axis=-1, keepdims=True)) / r_rows
    # (F A)_R + (Fᵀ A)_R = (F_R + F[:, R]ᵀ) A: one product.
    d_rows = d_rows + jnp.einsum("bhik,bhkj->bhij",
                                 f_rows + jnp.swapaxes(f_cols, -1, -2), a)
    # Rows a moved-back last block shares with the previous one get the same
    # (complete) gradient written again.
    return jax.lax.dynamic_update_slice_in_dim(grad, g * d_rows, start, axis=2)

  grad = jax.lax.fori_loop(0, -(-length // q), body, jnp.zeros_like(a))
  return grad, None  # the boolean pair mask has no gradient


_blocked_interaction_sum.defvjp(_blocked_fwd, _blocked_bwd)


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
