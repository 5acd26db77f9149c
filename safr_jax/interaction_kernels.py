"""L_Inter's sum with its exact gradient in closed form (``losses.interaction_loss``
calls these; pure ``jnp``, no Flax): the all-rows path as a custom JVP, the
long-sequence path a block of query rows at a time as a custom VJP."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

Array = jax.Array


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
def interaction_sum(a: Array, pair_weight: Array | None) -> Array:
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


@interaction_sum.defjvp
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
def blocked_interaction_sum(a: Array, pair_weight, q: int) -> Array:
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


blocked_interaction_sum.defvjp(_blocked_fwd, _blocked_bwd)
