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
        **initializers.dense_init(self.param_init, fan_in))
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
