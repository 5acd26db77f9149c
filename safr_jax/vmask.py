"""VMASK (Chen & Ji 2020): a per-token keep/drop gate learned end to end.

In training each token embedding is kept or dropped by a straight-through
hard Gumbel-softmax sample; in evaluation it is multiplied by its keep
probability. SAFR uses the keep probability as the token's importance.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from safr_jax import initializers

Array = jax.Array

__all__ = ["VMask", "VMaskOutput", "hard_gumbel_softmax"]


@jax.custom_vjp
def _project(x: Array, kernel: Array) -> Array:
  """``x [..., k] · kernel [k, n]``, as ``nn.Dense`` computes it, with the
  kernel's gradient computed as ``(gᵀ x)ᵀ``.

  Autodiff gives the kernel gradient as ``xᵀ g``, contracting both operands
  over their leading ``[batch·length]`` axis: XLA:CPU then copies a
  transposed ``[d, batch·length]`` operand and runs an Eigen dot that for
  VMASK's 2-output layer reached ~1 GFLOP/s. ``gᵀ x`` (output ``[n, k]``,
  transposed afterwards; tiny) is a plain YNNPACK matmul. The input gradient
  is autodiff's own. Values: the forward is ``nn.Dense``'s dot bit for bit;
  the gradients equal autodiff's to rounding (docs/PERFORMANCE.md).
  """
  return jax.lax.dot_general(x, kernel, (((x.ndim - 1,), (0,)), ((), ())))


def _project_fwd(x, kernel):
  return _project(x, kernel), (x, kernel)


def _project_bwd(residuals, g):
  x, kernel = residuals
  rows = g.reshape(-1, g.shape[-1])
  kernel_grad = jnp.einsum("mn,mk->nk", rows, x.reshape(-1, x.shape[-1])).T
  x_grad = jnp.einsum("...n,kn->...k", g, kernel)
  return x_grad.astype(x.dtype), kernel_grad.astype(kernel.dtype)


_project.defvjp(_project_fwd, _project_bwd)


def _dense_dot_general(lhs, rhs, dimension_numbers, precision=None,
                       preferred_element_type=None):
  """``nn.Dense``'s ``dot_general`` (``[..., k] · [k, n]``) through ``_project``."""
  (lhs_contract, rhs_contract), (lhs_batch, rhs_batch) = dimension_numbers
  if (tuple(lhs_contract) != (lhs.ndim - 1,) or tuple(rhs_contract) != (0,)
      or lhs_batch or rhs_batch or rhs.ndim != 2 or precision is not None
      or preferred_element_type is not None):
    return jax.lax.dot_general(lhs, rhs, dimension_numbers, precision=precision,
                               preferred_element_type=preferred_element_type)
  return _project(lhs, rhs)


class VMaskOutput(NamedTuple):
  masked: Array      # [batch, length, dim]: embeddings · gate
  keep_prob: Array   # [batch, length]: softmax(logits)[..., 1]
  gate: Array        # [batch, length]: what multiplied the embeddings
  logits: Array      # [batch, length, 2]: (drop, keep) logits


def hard_gumbel_softmax(rng: Array, logits: Array,
                        temperature: float = 1.0) -> Array:
  """A one-hot sample along the last axis with the soft sample's gradient.

  Args:
    rng: a PRNG key.
    logits: ``[..., classes]``.
    temperature: the Gumbel-softmax temperature τ.

  Returns:
    ``[..., classes]``: exactly one-hot in the forward pass; in the backward
    pass the gradient of ``softmax((logits + g) / τ)`` (straight through).
  """
  gumbel = jax.random.gumbel(rng, logits.shape, logits.dtype)
  soft = jax.nn.softmax((logits + gumbel) / temperature, axis=-1)
  hard = jax.nn.one_hot(jnp.argmax(soft, axis=-1), logits.shape[-1],
                        dtype=soft.dtype)
  return hard + soft - jax.lax.stop_gradient(soft)


class VMask(nn.Module):
  """Dense(hidden) → tanh → Dense(2) per token, then a keep/drop gate.

  Its two ``Dense`` layers take their kernel gradients from ``_project``'s
  hand-written VJP (faster on XLA:CPU): ``grad``/``vjp`` to any order work,
  forward mode (``jvp``, ``jax.hessian``) through the gate does not.

  Attributes:
    hidden_dim: width of the hidden layer (the authors' ``mask_hidden_dim``).
    temperature: Gumbel-softmax temperature in training.
    param_init: "flax" or "torch" initialisers (``safr_jax.model.dense_init``).
    dtype: computation dtype (parameters stay in ``param_dtype``).
  """
  hidden_dim: int = 1024
  temperature: float = 1.0
  param_init: str = "flax"
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, embeddings: Array, *, deterministic: bool) -> VMaskOutput:
    """Gates ``embeddings [batch, length, dim]``.

    With ``deterministic=False`` it draws from the ``"gumbel"`` RNG stream.
    """
    dense = lambda n, fan_in, name: nn.Dense(
        n, dtype=self.dtype, param_dtype=self.param_dtype, name=name,
        dot_general=_dense_dot_general, **initializers.dense_init(self.param_init, fan_in))
    hidden = jnp.tanh(dense(self.hidden_dim, embeddings.shape[-1], "hidden")(embeddings))
    logits = dense(2, self.hidden_dim, "logits")(hidden)
    # float32 at least, so bf16 activations still give smooth probabilities.
    logits = logits.astype(jnp.promote_types(logits.dtype, jnp.float32))
    keep_prob = jax.nn.softmax(logits, axis=-1)[..., 1]
    if deterministic:
      gate = keep_prob
    else:
      sample = hard_gumbel_softmax(self.make_rng("gumbel"), logits,
                                   self.temperature)
      gate = sample[..., 1]
    masked = embeddings * gate[..., None].astype(embeddings.dtype)
    return VMaskOutput(masked=masked, keep_prob=keep_prob, gate=gate,
                       logits=logits)
