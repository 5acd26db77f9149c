"""The SAFR classifier, built as the authors built it, returning its insides.

token ids → embedding · sqrt(d) → VMASK → + sinusoidal positions → dropout →
N post-norm blocks (``x = LN(x + MHA(x)); x = LN(x + FFN(x))``, ReLU FFN,
key-padding mask filling masked scores with -1e9) → mean pooling → Dense.

``SafrClassifier.__call__`` returns ``(logits, Intermediates)``: everything the
regularizers and the interpretability tools need, not hidden in ``sow``
collections. Under ``jit`` whatever a caller ignores is pruned away.

``__call__`` is three methods run in turn, which other code may call on their
own (``model.apply(variables, ..., method=...)``) to run the model's own
computation in parts: ``embed`` (the embedding rows, the input of gradient ×
input), ``token_inputs`` (everything computed token by token, up to the first
block's query/key/value: ``TokenInputs``) and ``classify`` (where tokens meet:
attention, FFNs, pooling). ``interpret.forward`` computes ``TokenInputs`` once
per example and gathers their rows into many copies with tokens deleted.
The modules are ``setup``-style for that (as flax's ``wmt`` example's Transformer with
its ``encode``/``decode``), with the parameter names and RNG streams they had.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from safr_jax.initializers import INIT_MODES, dense_init, embed_init
from safr_jax.vmask import VMask, VMaskOutput

Array = jax.Array

__all__ = ["SafrClassifier", "Intermediates", "TokenInputs", "sinusoidal_positions",
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
    attention: per layer ``[batch, heads, length, length]`` attention weights
      (``[batch, heads, length, num_keys]`` with ``num_keys``).
    ffn_hidden: per layer ``[batch, length, d_ff]`` ReLU activations of the FFN
      (the neurons the paper draws).
  """
  token_mask: Array
  vmask_logits: Array | None
  keep_prob: Array | None
  masked_embeddings: Array
  attention: tuple[Array, ...]
  ffn_hidden: tuple[Array, ...]


class TokenInputs(NamedTuple):
  """What ``SafrClassifier.classify`` reads: the first block's inputs.

  Row j of each array depends only on token j and its position (its own
  positional encoding is already added), so rows may be gathered, dropped or
  reordered between ``token_inputs`` and ``classify``.

  Attributes:
    token_mask: ``[batch, length]`` bool, the keys attention may read (and,
      with ``pool="tokens"``, the rows pooled).
    x: ``[batch, length, d_model]`` gated embeddings plus positions, after
      dropout.
    qkv: the first block's ``(query, key, value)`` projections of ``x``, each
      ``[batch, length, d_model]``; None without blocks.
  """
  token_mask: Array
  x: Array
  qkv: tuple[Array, Array, Array] | None


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
  """Self-attention in two steps: ``project`` works token by token, ``attend``
  lets tokens meet and also returns the ``[batch, heads, q, k]`` weights."""
  d_model: int
  num_heads: int
  param_init: str = "flax"
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  def setup(self):
    if self.d_model % self.num_heads:
      raise ValueError(f"d_model={self.d_model} must be divisible by num_heads="
                       f"{self.num_heads}")
    dense = lambda: nn.Dense(self.d_model, dtype=self.dtype, param_dtype=self.param_dtype,
                             **dense_init(self.param_init, self.d_model))
    self.query, self.key, self.value, self.out = dense(), dense(), dense(), dense()

  def project(self, x: Array) -> tuple[Array, Array, Array]:
    """``(query, key, value)`` of ``x [batch, length, d_model]``, each that shape."""
    return self.query(x), self.key(x), self.value(x)

  def attend(self, query: Array, key: Array, value: Array, key_mask: Array,
             num_keys: int | None = None) -> tuple[Array, Array]:
    """``[batch, length, d_model]`` output and ``[batch, heads, length, length]``
    float32 weights; keys outside ``key_mask [batch, length]`` get none.

    ``num_keys`` (static): attend to the first ``num_keys`` keys only (weights
    ``[batch, heads, length, num_keys]``). Exact when every later key is
    masked out in every row and every row has a real key: such keys' weights
    are exactly 0 (``exp(-1e9 - max)`` underflows), so cutting them changes
    the output by float rounding at most.
    """
    b, l, d = query.shape
    head_dim = d // self.num_heads
    if num_keys is not None and num_keys < l:
      key, value, key_mask = key[:, :num_keys], value[:, :num_keys], key_mask[:, :num_keys]
    q = query.reshape(b, l, self.num_heads, head_dim)
    k, v = (t.reshape(b, key.shape[1], self.num_heads, head_dim) for t in (key, value))
    scores = jnp.einsum("bqhd,bkhd->bhqk", q, k) / math.sqrt(head_dim)
    # Softmax in float32 at least: bf16 attention weights would make the
    # regularizers noisy.
    scores = scores.astype(jnp.promote_types(scores.dtype, jnp.float32))
    scores = jnp.where(key_mask[:, None, None, :], scores, _MASKED_SCORE)
    weights = _softmax(scores)
    context = jnp.einsum("bhqk,bkhd->bqhd", weights.astype(v.dtype), v)
    return self.out(context.reshape(b, l, d)), weights

  def __call__(self, x: Array, key_mask: Array) -> tuple[Array, Array]:
    return self.attend(*self.project(x), key_mask)


class TransformerBlock(nn.Module):
  """Post-norm block: ``LN1(x + MHA(x))`` then ``LN2(x + FFN(x))``."""
  d_model: int
  num_heads: int
  d_ff: int
  dropout_rate: float
  param_init: str = "flax"
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  def setup(self):
    kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    self.attention = MultiHeadAttention(self.d_model, self.num_heads, self.param_init, **kw)
    self.norm1 = nn.LayerNorm(epsilon=1e-5, **kw)
    self.ffn_in = nn.Dense(self.d_ff, **kw, **dense_init(self.param_init, self.d_model))
    self.ffn_out = nn.Dense(self.d_model, **kw, **dense_init(self.param_init, self.d_ff))
    self.norm2 = nn.LayerNorm(epsilon=1e-5, **kw)
    # The name seeds the dropout RNG stream: "Dropout_0" as the block has
    # always drawn from (runs resume with the same masks).
    self.dropout = nn.Dropout(self.dropout_rate, name="Dropout_0")

  def __call__(self, x: Array, key_mask: Array, *, deterministic: bool,
               qkv: tuple[Array, Array, Array] | None = None,
               num_keys: int | None = None) -> tuple[Array, Array, Array]:
    """``x [batch, length, d_model]`` → ``(x, attention weights, FFN ReLU
    activations [batch, length, d_ff])``. ``qkv``: ``attention.project(x)`` if
    already computed; ``num_keys``: see ``MultiHeadAttention.attend``."""
    attended, weights = self.attention.attend(
        *(self.attention.project(x) if qkv is None else qkv), key_mask, num_keys)
    x = self.norm1(x + self.dropout(attended, deterministic=deterministic))
    hidden = nn.relu(self.ffn_in(x))
    x = self.norm2(x + self.dropout(self.ffn_out(hidden), deterministic=deterministic))
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
      U(±1/sqrt(fan_in)); LayerNorm 1/0 in both); "torch_embedding" /
      "torch_dense": PyTorch's for that part only.
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

  def setup(self):
    if self.pool not in POOL_MODES:
      raise ValueError(f"pool must be one of {POOL_MODES}, got {self.pool!r}")
    if self.param_init not in INIT_MODES:
      raise ValueError(f"init must be one of {INIT_MODES}, got {self.param_init!r}")
    kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    self.embedding = nn.Embed(self.vocab_size, self.d_model, **kw,
                              **embed_init(self.param_init))
    self.vmask = (VMask(self.vmask_hidden_dim, self.vmask_temperature, self.param_init, **kw)
                  if self.use_vmask else None)
    self.dropout = nn.Dropout(self.dropout_rate, name="Dropout_0")  # see TransformerBlock
    self.blocks = [TransformerBlock(self.d_model, self.num_heads, self.d_ff,
                                    self.dropout_rate, self.param_init,
                                    name=f"block_{i}", **kw)
                   for i in range(self.num_layers)]
    self.classifier = nn.Dense(self.num_classes, **kw,
                               **dense_init(self.param_init, self.d_model))

  def __call__(self, ids: Array, *, deterministic: bool = True,
               num_keys: int | None = None) -> tuple[Array, Intermediates]:
    """Classifies ``ids [batch, length]`` (int, 0 = padding).

    Training (``deterministic=False``) needs the RNG streams ``"dropout"`` and
    (with VMASK) ``"gumbel"``.

    ``num_keys`` (a static int, or None for all): attention reads only the
    first ``num_keys`` positions as keys, and ``Intermediates.attention`` is
    ``[batch, heads, length, num_keys]``. The same result to float rounding
    when every position from ``num_keys`` on is padding in every row and no
    row is all padding (``steps.key_lengths``): rows padded to a fixed
    ``max_len`` (the authors' padded mode) then skip the padded keys. Queries,
    pooling and VMASK still see every position.

    Returns:
      ``logits [batch, num_classes]`` (float32) and ``Intermediates``.
    """
    if ids.ndim != 2:
      raise ValueError(f"ids must have shape [batch, length], got shape "
                       f"{tuple(ids.shape)}")
    token_mask = ids != 0
    inputs, masked_embeddings, gate = self.token_inputs(
        self.embed(ids), token_mask, deterministic=deterministic)
    logits, attention, ffn_hidden = self.classify(inputs, deterministic=deterministic,
                                                  num_keys=num_keys)
    return logits, Intermediates(
        token_mask=token_mask,
        vmask_logits=None if gate is None else gate.logits,
        keep_prob=None if gate is None else gate.keep_prob,
        masked_embeddings=masked_embeddings, attention=attention, ffn_hidden=ffn_hidden)

  def embed(self, ids: Array) -> Array:
    """The embedding rows of ``ids [batch, length]``, ``[batch, length,
    d_model]``, before any scaling."""
    return self.embedding(ids)

  def token_inputs(self, embedded: Array, token_mask: Array, *,
                   deterministic: bool = True
                   ) -> tuple[TokenInputs, Array, VMaskOutput | None]:
    """Everything computed token by token from ``embed``'s rows.

    Returns:
      ``TokenInputs``; the masked embeddings ``[batch, length, d_model]``
      (after VMASK; ``Intermediates.masked_embeddings``); VMASK's
      ``VMaskOutput``, or None without VMASK.
    """
    x = embedded * math.sqrt(self.d_model)
    gate = None if self.vmask is None else self.vmask(x, deterministic=deterministic)
    masked_embeddings = x if gate is None else gate.masked
    positions = sinusoidal_positions(x.shape[1], self.d_model)
    x = masked_embeddings + jnp.asarray(positions, x.dtype)
    x = self.dropout(x, deterministic=deterministic)
    qkv = self.blocks[0].attention.project(x) if self.blocks else None
    return TokenInputs(token_mask, x, qkv), masked_embeddings, gate

  def classify(self, inputs: TokenInputs, *, deterministic: bool = True,
               num_keys: int | None = None
               ) -> tuple[Array, tuple[Array, ...], tuple[Array, ...]]:
    """The blocks, pooling and classifier on ``inputs`` (``num_keys``: see
    ``__call__``).

    Returns:
      ``logits [batch, num_classes]`` (float32) and, per layer, the attention
      weights and FFN activations (``Intermediates.attention``/``ffn_hidden``).
    """
    x, token_mask = inputs.x, inputs.token_mask
    attention, ffn_hidden = [], []
    for i, block in enumerate(self.blocks):
      x, weights, hidden = block(x, token_mask, deterministic=deterministic,
                                 qkv=inputs.qkv if i == 0 else None, num_keys=num_keys)
      attention.append(weights)
      ffn_hidden.append(hidden)
    if self.pool == "all":
      pooled = jnp.mean(x, axis=1)
    else:
      weights = token_mask.astype(x.dtype)[..., None]
      pooled = jnp.sum(x * weights, axis=1) / jnp.maximum(
          jnp.sum(weights, axis=1), 1.0)
    logits = self.classifier(pooled)
    logits = logits.astype(jnp.promote_types(logits.dtype, jnp.float32))
    return logits, tuple(attention), tuple(ffn_hidden)
