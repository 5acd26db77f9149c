"""The SAFR classifier, built as the authors built it, returning its insides.

token ids → embedding · sqrt(d) → VMASK → + sinusoidal positions → dropout →
N post-norm blocks (``x = LN(x + MHA(x)); x = LN(x + FFN(x))``, ReLU FFN,
key-padding mask filling masked scores with -1e9) → mean pooling → Dense.

``SafrClassifier.__call__`` returns ``(logits, Intermediates)``: everything the
regularizers and the interpretability tools need, not hidden in ``sow``
collections. Under ``jit`` whatever a caller ignores is pruned away.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from safr_jax.initializers import INIT_MODES, dense_init, embed_init
from safr_jax.vmask import VMask

Array = jax.Array

__all__ = ["SafrClassifier", "Intermediates", "sinusoidal_positions",
           "POOL_MODES", "INIT_MODES"]

POOL_MODES = ("all", "tokens")
_MASKED_SCORE = -1e9  # what the authors fill masked attention scores with


class Intermediates(NamedTuple):
  """Named insides of one forward pass (a pytree).

  Attributes:
    token_mask: ``[batch, length]`` bool, True for real tokens (id != 0).
    vmask_logits: ``[batch, length, 2]`` VMASK (drop, keep) logits, or None
      without VMASK.
    keep_prob: ``[batch, length]`` VMASK keep probability (token importance),
      or None without VMASK.
    masked_embeddings: ``[batch, length, d_model]`` embeddings after VMASK
      (what L_Imp regularizes); the plain scaled embeddings without VMASK.
    attention: per layer ``[batch, heads, length, length]`` attention weights.
    ffn_hidden: per layer ``[batch, length, d_ff]`` ReLU activations of the FFN
      (the neurons the paper draws).
  """
  token_mask: Array
  vmask_logits: Array | None
  keep_prob: Array | None
  masked_embeddings: Array
  attention: tuple[Array, ...]
  ffn_hidden: tuple[Array, ...]


def sinusoidal_positions(length: int, dim: int) -> np.ndarray:
  """The Transformer's ``[length, dim]`` sinusoidal table (sin even, cos odd)."""
  position = np.arange(length, dtype=np.float64)[:, None]
  div = np.exp(np.arange(0, dim, 2, dtype=np.float64) * (-math.log(10000.0) / dim))
  table = np.zeros((length, dim))
  table[:, 0::2] = np.sin(position * div)
  table[:, 1::2] = np.cos(position * div)[:, : dim // 2]
  return table


@jax.custom_jvp
def _softmax(scores: Array) -> Array:
  """``jax.nn.softmax`` over the last axis whose derivative needs only its
  output (the attention weights, which the regularizers keep anyway).

  The value is ``jax.nn.softmax``'s, bit for bit. The derivative is jax's own
  softmax rule ``y * (dx - Σ y dx)`` (what ``jax_softmax_custom_jvp=True``
  selects), equal to the default ``jax.nn.softmax`` derivative up to float
  rounding. The default differentiates through ``exp(x) / sum``, and XLA:CPU
  then keeps the exponentials and a ``[B, H, L, L]`` broadcast of the row sums
  for the backward pass: 1.6 GiB more at L = 2048, batch 8, and a 3-7 % slower
  step at L = 48-128 (docs/PERFORMANCE.md).
  """
  return jax.nn.softmax(scores, axis=-1)


@_softmax.defjvp
def _softmax_jvp(primals, tangents):
  (scores,), (scores_dot,) = primals, tangents
  y = _softmax(scores)
  return y, y * (scores_dot - jnp.sum(y * scores_dot, axis=-1, keepdims=True))


class MultiHeadAttention(nn.Module):
  """Self-attention that also returns its ``[batch, heads, q, k]`` weights."""
  num_heads: int
  param_init: str = "flax"
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: Array, key_mask: Array) -> tuple[Array, Array]:
    b, l, d = x.shape
    if d % self.num_heads:
      raise ValueError(f"d_model={d} must be divisible by num_heads="
                       f"{self.num_heads}")
    head_dim = d // self.num_heads
    dense = lambda name: nn.Dense(d, dtype=self.dtype, param_dtype=self.param_dtype,
                                  name=name, **dense_init(self.param_init, d))
    split = lambda t: t.reshape(b, l, self.num_heads, head_dim)
    q, k, v = (split(dense(n)(x)) for n in ("query", "key", "value"))
    scores = jnp.einsum("bqhd,bkhd->bhqk", q, k) / math.sqrt(head_dim)
    # Softmax in float32 at least: bf16 attention weights would make the
    # regularizers noisy.
    scores = scores.astype(jnp.promote_types(scores.dtype, jnp.float32))
    scores = jnp.where(key_mask[:, None, None, :], scores, _MASKED_SCORE)
    weights = _softmax(scores)
    context = jnp.einsum("bhqk,bkhd->bqhd", weights.astype(v.dtype), v)
    return dense("out")(context.reshape(b, l, d)), weights


class TransformerBlock(nn.Module):
  """Post-norm block: ``LN1(x + MHA(x))`` then ``LN2(x + FFN(x))``."""
  num_heads: int
  d_ff: int
  dropout_rate: float
  param_init: str = "flax"
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: Array, key_mask: Array, *, deterministic: bool
               ) -> tuple[Array, Array, Array]:
    kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    drop = nn.Dropout(self.dropout_rate, deterministic=deterministic)
    d = x.shape[-1]
    attended, weights = MultiHeadAttention(self.num_heads, self.param_init,
                                           name="attention", **kw)(x, key_mask)
    x = nn.LayerNorm(epsilon=1e-5, name="norm1", **kw)(x + drop(attended))
    hidden = nn.relu(nn.Dense(self.d_ff, name="ffn_in", **kw,
                              **dense_init(self.param_init, d))(x))
    ffn_out = nn.Dense(d, name="ffn_out", **kw,
                       **dense_init(self.param_init, self.d_ff))(hidden)
    x = nn.LayerNorm(epsilon=1e-5, name="norm2", **kw)(x + drop(ffn_out))
    return x, weights, hidden


class SafrClassifier(nn.Module):
  """The SAFR text classifier (Chang et al. 2025), one class for all variants.

  Attributes:
    vocab_size: number of token ids (0 is padding).
    num_classes: number of labels.
    d_model, num_heads, num_layers, d_ff: Transformer sizes (authors: 256, 8,
      1, 1024).
    dropout_rate: dropout after the positional encoding and inside blocks.
    use_vmask: False gives the plain Transformer baseline.
    vmask_hidden_dim: VMASK hidden width (authors: 1024).
    vmask_temperature: Gumbel-softmax temperature in training.
    pool: "all" averages every position, padding included (the authors');
      "tokens" averages real tokens only (padding-aware).
    param_init: "flax" (Flax's default initialisers) or "torch" (PyTorch's defaults
      for the authors' modules: embedding N(0, 1), every Linear weight and bias
      U(±1/sqrt(fan_in)); LayerNorm 1/0 in both).
    dtype: activation dtype (e.g. ``jnp.bfloat16``); params stay float32 and
      attention softmax runs in float32.
  """
  vocab_size: int
  num_classes: int = 2
  d_model: int = 256
  num_heads: int = 8
  num_layers: int = 1
  d_ff: int = 1024
  dropout_rate: float = 0.1
  use_vmask: bool = True
  vmask_hidden_dim: int = 1024
  vmask_temperature: float = 1.0
  pool: str = "all"
  param_init: str = "flax"
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, ids: Array, *, deterministic: bool = True
               ) -> tuple[Array, Intermediates]:
    """Classifies ``ids [batch, length]`` (int, 0 = padding).

    Training (``deterministic=False``) needs the RNG streams ``"dropout"`` and
    (with VMASK) ``"gumbel"``.

    Returns:
      ``logits [batch, num_classes]`` (float32) and ``Intermediates``.
    """
    if ids.ndim != 2:
      raise ValueError(f"ids must have shape [batch, length], got shape "
                       f"{tuple(ids.shape)}")
    if self.pool not in POOL_MODES:
      raise ValueError(f"pool must be one of {POOL_MODES}, got {self.pool!r}")
    if self.param_init not in INIT_MODES:
      raise ValueError(f"init must be one of {INIT_MODES}, got {self.param_init!r}")
    kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    token_mask = ids != 0
    x = nn.Embed(self.vocab_size, self.d_model, name="embedding", **kw,
                 **embed_init(self.param_init))(ids)
    x = x * math.sqrt(self.d_model)
    if self.use_vmask:
      gated = VMask(self.vmask_hidden_dim, self.vmask_temperature, self.param_init,
                    name="vmask", **kw)(x, deterministic=deterministic)
      x, vmask_logits, keep_prob = gated.masked, gated.logits, gated.keep_prob
    else:
      vmask_logits = keep_prob = None
    masked_embeddings = x
    positions = sinusoidal_positions(ids.shape[1], self.d_model)
    x = x + jnp.asarray(positions, x.dtype)
    x = nn.Dropout(self.dropout_rate, deterministic=deterministic)(x)
    attention, ffn_hidden = [], []
    for i in range(self.num_layers):
      x, weights, hidden = TransformerBlock(
          self.num_heads, self.d_ff, self.dropout_rate, self.param_init,
          name=f"block_{i}", **kw)(x, token_mask, deterministic=deterministic)
      attention.append(weights)
      ffn_hidden.append(hidden)
    if self.pool == "all":
      pooled = jnp.mean(x, axis=1)
    else:
      weights = token_mask.astype(x.dtype)[..., None]
      pooled = jnp.sum(x * weights, axis=1) / jnp.maximum(
          jnp.sum(weights, axis=1), 1.0)
    logits = nn.Dense(self.num_classes, name="classifier", **kw,
                      **dense_init(self.param_init, self.d_model))(pooled)
    logits = logits.astype(jnp.promote_types(logits.dtype, jnp.float32))
    return logits, Intermediates(
        token_mask=token_mask, vmask_logits=vmask_logits, keep_prob=keep_prob,
        masked_embeddings=masked_embeddings, attention=tuple(attention),
        ffn_hidden=tuple(ffn_hidden))
