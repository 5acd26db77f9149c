"""The trained model run over many rows at fixed shapes (jit compiles once per
width), with everything the interpretability tools read from a forward pass.

Rows are sorted by length and cut into chunks of ``chunk_size`` (the last one
filled up with empty rows); a padding-aware run (``data.pad_to="batch"``) gives
each chunk the width of its longest row rounded up to 8, so few shapes are
compiled and short texts do not pay for ``max_len``. A reference-mode run
(``pad_to="max_len"``, where padding changes the result) always uses
``max_len``.

``collect`` is the one forward pass of ``explain`` and ``evaluate``: it gathers
the per-row arrays (probabilities, keep-probabilities, attention) and hands
each example's per-token activations to a callback, so neither caller keeps
every example's FFN activations in memory at once.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Iterator, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from safr_jax import data

__all__ = ["Predictor", "ForwardChunk", "ForwardPass", "TokenActivations", "collect",
           "last_token"]


class ForwardChunk(NamedTuple):
  """One chunk of a forward pass, as host arrays (B rows, width W), read off
  the model's ``Intermediates``.

  ``probs [B, C]``; ``keep_prob [B, W]`` (None without VMASK);
  ``embeddings [B, W, D]`` the VMASK-gated embeddings; ``attention [B, W, W]``
  mean over heads and layers; ``ffn [layers, B, W, d_ff]`` ReLU activations.
  """
  probs: np.ndarray
  keep_prob: np.ndarray | None
  embeddings: np.ndarray
  attention: np.ndarray
  ffn: np.ndarray


class Predictor:
  """A trained ``SafrClassifier`` with its params, run in eval mode.

  Args:
    model: the ``SafrClassifier``.
    params: its parameters.
    max_len: the run's ``data.max_len``.
    pad_to: the run's ``data.pad_to`` ("batch" or "max_len").
    chunk_size: rows per compiled batch for probabilities.
  """

  def __init__(self, model, params: Any, *, max_len: int, pad_to: str = "max_len",
               chunk_size: int = 256):
    self.model = model
    self.params = params
    self.max_len = int(max_len)
    self.pad_to = pad_to
    self.chunk_size = int(chunk_size)
    self.has_vmask = bool(model.use_vmask)

    def apply(params, ids):
      return model.apply({"params": params}, ids, deterministic=True)

    def probs(params, ids):
      return jax.nn.softmax(apply(params, ids)[0], axis=-1)

    def chunk(params, ids):
      logits, intermediates = apply(params, ids)
      return ForwardChunk(
          probs=jax.nn.softmax(logits, axis=-1), keep_prob=intermediates.keep_prob,
          embeddings=intermediates.masked_embeddings.astype(jnp.float32),
          attention=jnp.mean(jnp.stack(intermediates.attention), axis=(0, 2)),
          ffn=jnp.stack(intermediates.ffn_hidden).astype(jnp.float32))

    def grad_x_input(params, ids, target):
      # Gradient of log p(target) w.r.t. the embedding lookup, times it.
      def log_prob(delta):
        def add_delta(next_fun, args, kwargs, context):
          out = next_fun(*args, **kwargs)
          if isinstance(context.module, nn.Embed) and context.method_name == "__call__":
            return out + delta
          return out
        with nn.intercept_methods(add_delta):
          logits, _ = apply(params, ids)
        logp = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
        return jnp.sum(jnp.take_along_axis(logp, target[:, None], axis=-1))

      embed = params["embedding"]["embedding"][ids].astype(jnp.float32)
      grads = jax.grad(log_prob)(jnp.zeros_like(embed))
      return jnp.sum(grads * embed, axis=-1)

    self._probs = jax.jit(probs)
    self._chunk = jax.jit(chunk)
    self._grad_x_input = jax.jit(grad_x_input)

  @classmethod
  def for_run(cls, run, **kwargs) -> Predictor:
    """The predictor of a loaded ``runs.Run`` (its model, params, max_len, pad_to)."""
    return cls(run.model, run.params, max_len=run.config.data.max_len,
               pad_to=run.config.data.get("pad_to", "max_len"), **kwargs)

  # --------------------------------------------------------------------------

  def width(self, lengths: np.ndarray) -> int:
    return data.batch_width(np.asarray(lengths), self.max_len, self.pad_to)

  def _chunks(self, lengths: np.ndarray, size: int, sort: bool
              ) -> Iterator[tuple[np.ndarray, int]]:
    """(row indices, width) per chunk; rows sorted by length if ``sort``."""
    rows = np.argsort(lengths, kind="stable") if sort else np.arange(len(lengths))
    for start in range(0, len(rows), size):
      part = rows[start:start + size]
      yield part, self.width(lengths[part])

  @staticmethod
  def _fill(ids: np.ndarray, size: int, width: int) -> np.ndarray:
    out = np.zeros((size, width), np.int32)
    out[:len(ids)] = ids[:, :width]
    return out

  def probs(self, ids: np.ndarray, lengths: np.ndarray | None = None) -> np.ndarray:
    """Class probabilities ``[N, C]`` of ``ids [N, L]`` (0 = padding)."""
    ids = np.asarray(ids, np.int32)
    if lengths is None:
      lengths = last_token(ids)
    out = None
    for part, width in self._chunks(np.asarray(lengths), self.chunk_size, True):
      p = np.asarray(self._probs(self.params, self._fill(ids[part], self.chunk_size, width)))
      if out is None:
        out = np.zeros((len(ids), p.shape[-1]), np.float64)
      out[part] = p[:len(part)]
    return out if out is not None else np.zeros((0, self.model.num_classes))

  def chunks(self, ids: np.ndarray, lengths: np.ndarray, chunk_size: int = 64
             ) -> Iterator[tuple[np.ndarray, ForwardChunk]]:
    """``(row indices, ForwardChunk)`` per chunk, in the order of ``ids``; every
    chunk has the width of the whole set, so positions line up."""
    ids = np.asarray(ids, np.int32)
    width = self.width(lengths)
    for start in range(0, len(ids), chunk_size):
      part = np.arange(start, min(len(ids), start + chunk_size))
      out = self._chunk(self.params, self._fill(ids[part], chunk_size, width))
      out = jax.tree.map(lambda x: np.asarray(x), out)
      n = len(part)
      yield part, ForwardChunk(
          probs=out.probs[:n].astype(np.float64),
          keep_prob=None if out.keep_prob is None else out.keep_prob[:n].astype(np.float64),
          embeddings=out.embeddings[:n], attention=out.attention[:n].astype(np.float64),
          ffn=out.ffn[:, :n])

  def grad_x_input(self, ids: np.ndarray, lengths: np.ndarray, target: np.ndarray,
                   chunk_size: int = 64) -> np.ndarray:
    """Gradient × input of ``log p(target)`` per token, ``[N, L]`` (0 at padding)."""
    ids = np.asarray(ids, np.int32)
    out = np.zeros(ids.shape, np.float64)
    target = np.asarray(target, np.int32)
    for part, width in self._chunks(np.asarray(lengths), chunk_size, True):
      t = np.zeros((chunk_size,), np.int32)
      t[:len(part)] = target[part]
      g = np.asarray(self._grad_x_input(
          self.params, self._fill(ids[part], chunk_size, width), t))
      out[part, :width] = g[:len(part)]
    return np.where(ids != 0, out, 0.0)


def last_token(ids: np.ndarray) -> np.ndarray:
  """Per row, one past the last non-padding position (the width it needs)."""
  nonzero = np.asarray(ids) != 0
  any_ = nonzero.any(axis=1)
  last = nonzero.shape[1] - np.argmax(nonzero[:, ::-1], axis=1)
  return np.where(any_, last, 0).astype(np.int32)


@dataclasses.dataclass(frozen=True, eq=False)
class TokenActivations:
  """One example's real tokens (n of them) in a forward pass.

  ``embeddings [n, D]`` the VMASK-gated embeddings; ``ffn [layers, n, d_ff]``
  ReLU activations; ``keep_prob [n]`` (None without VMASK); ``attention
  [n, n]`` mean over heads and layers.
  """
  embeddings: np.ndarray
  ffn: np.ndarray
  keep_prob: np.ndarray | None
  attention: np.ndarray


@dataclasses.dataclass(frozen=True, eq=False)
class ForwardPass:
  """Per-row results of ``collect`` for N rows of width W: ``probs [N, C]``,
  ``keep_prob [N, W]`` (None without VMASK), ``attention [N, W, W]`` (mean over
  heads and layers)."""
  probs: np.ndarray
  keep_prob: np.ndarray | None
  attention: np.ndarray

  @property
  def width(self) -> int:
    return int(self.attention.shape[-1])


def collect(predictor: Predictor, ids: np.ndarray, lengths: np.ndarray,
            each_example: Callable[[int, TokenActivations], None] | None = None,
            ) -> ForwardPass:
  """Runs ``predictor`` over ``ids [N, ≥W]`` (W = ``predictor.width(lengths)``).

  Calls ``each_example(row, TokenActivations)`` for every row with at least one
  token, in row order, and returns the per-row arrays.
  """
  lengths = np.asarray(lengths)
  width = predictor.width(lengths)
  ids = np.asarray(ids)[:, :width]
  probs = np.zeros((len(ids), predictor.model.num_classes))
  keep = np.zeros(ids.shape) if predictor.has_vmask else None
  attention = np.zeros((len(ids), width, width))
  for rows, chunk in predictor.chunks(ids, lengths):
    probs[rows], attention[rows] = chunk.probs, chunk.attention
    if keep is not None:
      keep[rows] = chunk.keep_prob
    if each_example is None:
      continue
    for x, row in enumerate(rows):
      n = int(lengths[row])
      if n:
        each_example(int(row), TokenActivations(
            embeddings=chunk.embeddings[x, :n], ffn=chunk.ffn[:, x, :n],
            keep_prob=None if keep is None else keep[row, :n],
            attention=attention[row, :n, :n]))
  return ForwardPass(probs=probs, keep_prob=keep, attention=attention)
