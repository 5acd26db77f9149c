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

``Predictor.deletion_probs`` runs the many perturbed copies of a few examples
that occlusion and the faithfulness metrics need (tokens replaced by ``<PAD>``,
positions kept) far faster than ``probs`` on the built rows, with the same
result up to float rounding:

* whatever the model computes token by token (``SafrClassifier.token_inputs``:
  embedding, VMASK, positional encoding, the first block's query/key/value) is
  computed once per example and position and its rows gathered into every
  perturbed copy, which runs only ``SafrClassifier.classify`` (attention, the
  FFNs, later layers: the model's own code, so the explanations show the
  trained model's computation);
* a padding-aware model (``pool="tokens"``: ``<PAD>`` is masked out of
  attention and pooling) gets each copy *compacted*: only its kept tokens, in
  order, each with its own position's values, in a row of their number rounded
  up to 8. A reference-mode model (``pool="all"``, where every ``<PAD>``
  position changes the pooled vector) keeps the full width of ``ids``;
* identical copies (e.g. two explanations deleting the same tokens) run once;
* rows go through at most ``chunk_tokens`` tokens per call (small batches keep
  the activations in cache: on 2 CPU cores 4-16 rows of 128-256 tokens run
  ~1.5-2x faster per token than 256 rows), one compiled shape per width.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Iterator, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from safr_jax import data
from safr_jax.model import TokenInputs

__all__ = ["Predictor", "ForwardChunk", "ForwardPass", "TokenActivations", "collect",
           "last_token"]


def _token_inputs(model, ids):
  """The model's ``TokenInputs`` of ``ids`` (a ``method`` for ``apply``)."""
  return model.token_inputs(model.embed(ids), ids != 0)[0]


def _logits_of_embedded(model, embedded, token_mask):
  """The model's logits from ``embed``'s rows (a ``method`` for ``apply``)."""
  return model.classify(model.token_inputs(embedded, token_mask)[0])[0]


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
    chunk_tokens: tokens per compiled batch of ``deletion_probs`` (rows per
      batch: ``chunk_tokens // width``, at least 1).
    table_tokens: real tokens per table of first-block inputs in
      ``deletion_probs`` (examples are processed in groups that fit).
  """

  def __init__(self, model, params: Any, *, max_len: int, pad_to: str = "max_len",
               chunk_size: int = 256, chunk_tokens: int = 512,
               table_tokens: int = 8192):
    self.model = model
    self.params = params
    self.max_len = int(max_len)
    self.pad_to = pad_to
    self.chunk_size = int(chunk_size)
    self.chunk_tokens = int(chunk_tokens)
    self.table_tokens = int(table_tokens)
    self.has_vmask = bool(model.use_vmask)
    # <PAD> changes nothing (masked out of attention and pooling): rows can be
    # trimmed and compacted. pool="all" averages every position in.
    self.padding_invariant = model.pool == "tokens"
    self._in_flight = 4  # chunks dispatched ahead of the one being read back

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
      # Gradient of log p(target) w.r.t. the embedding rows, times them.
      variables = {"params": params}
      embedded = model.apply(variables, ids, method=model.embed)

      def log_prob(embedded):
        logits = model.apply(variables, embedded, ids != 0, method=_logits_of_embedded)
        logp = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
        return jnp.sum(jnp.take_along_axis(logp, target[:, None], axis=-1))

      grads = jax.grad(log_prob)(embedded)
      return jnp.sum(grads.astype(jnp.float32) * embedded.astype(jnp.float32), axis=-1)

    def token_table(params, ids):
      # Per token: x and the first block's q, k, v ([B, W, 4 * d_model]).
      inputs = model.apply({"params": params}, ids, method=_token_inputs)
      return jnp.concatenate([inputs.x, *inputs.qkv], axis=-1)

    def deleted_probs(params, ids, src, table):
      # ``ids`` only masks (0 = <PAD>); token j's ``TokenInputs`` row is
      # ``table[src[:, j]]`` (from ``token_table``).
      x, *qkv = jnp.split(table[src], 4, axis=-1)
      inputs = TokenInputs(token_mask=ids != 0, x=x, qkv=tuple(qkv))
      logits, _, _ = model.apply({"params": params}, inputs, method=model.classify)
      return jax.nn.softmax(logits, axis=-1)

    self._probs = jax.jit(probs)
    self._chunk = jax.jit(chunk)
    self._grad_x_input = jax.jit(grad_x_input)
    self._token_table = jax.jit(token_table)
    self._deleted_probs = jax.jit(deleted_probs)

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

  def deletion_probs(self, ids: np.ndarray, rows: np.ndarray, keep: np.ndarray
                     ) -> np.ndarray:
    """Class probabilities ``[R, C]`` of the examples ``ids[rows]`` (``ids
    [N, L]``, 0 = padding) with every token outside ``keep [R, L]`` replaced by
    ``<PAD>``, positions kept: ``probs(np.where(keep, ids[rows], 0))`` up to
    float rounding, computed as the module docstring describes."""
    ids = np.asarray(ids, np.int32)
    rows = np.asarray(rows, np.int64).reshape(-1)
    keep = np.asarray(keep, bool)
    if keep.shape != (len(rows), ids.shape[1]):
      raise ValueError(f"keep has shape {keep.shape}, expected {(len(rows), ids.shape[1])}")
    keep = keep & (ids[rows] != 0)
    if not len(rows):
      return np.zeros((0, self.model.num_classes))
    if self.model.num_layers < 1:
      return self.probs(np.where(keep, ids[rows], 0))
    # Identical copies run once.
    key = np.concatenate([rows.astype("<i8").view(np.uint8).reshape(-1, 8),
                          np.packbits(keep, axis=1)], axis=1)
    _, first, inverse = np.unique(key, axis=0, return_index=True, return_inverse=True)
    rows, keep = rows[first], keep[first]
    out = np.zeros((len(rows), self.model.num_classes))
    for group in self._table_groups(ids, np.unique(rows)):
      self._deletion_group(ids, group, rows, keep, out)
    return out[np.asarray(inverse).reshape(-1)]

  def _table_groups(self, ids: np.ndarray, examples: np.ndarray) -> Iterator[np.ndarray]:
    """Consecutive runs of ``examples`` whose tokens fit one table."""
    n = (ids[examples] != 0).sum(axis=1)
    capacity = max(self.table_tokens, ids.shape[1])
    start, used = 0, 0
    for i, k in enumerate(n):
      if used + k > capacity:
        yield examples[start:i]
        start, used = i, 0
      used += int(k)
    if start < len(examples):
      yield examples[start:]

  def _examples_table(self, ids: np.ndarray, examples: np.ndarray
                      ) -> tuple[jax.Array, np.ndarray, int, int]:
    """The ``TokenInputs`` rows (x, q, k, v) of ``examples``' real tokens, then of
    ``<PAD>`` at each position 0..L-1, then one zero row (a fixed number of
    rows, so one compiled shape). Returns ``(table, entry [E, L] (row of each
    real token, -1 elsewhere), first <PAD> row, zero row)``."""
    width = ids.shape[1]
    capacity = max(self.table_tokens, width)
    size = max(1, self.chunk_tokens // width)
    real = ids[examples] != 0
    batches = [ids[examples[s:s + size]] for s in range(0, len(examples), size)]
    batches.append(np.zeros((1, width), np.int32))            # <PAD> everywhere
    parts = [np.asarray(self._token_table(self.params, self._fill(b, size, width)))
             [:len(b)] for b in batches]
    per_token = np.concatenate(parts[:-1])
    table = np.zeros((capacity + width + 1, per_token.shape[-1]), per_token.dtype)
    count = int(real.sum())
    table[:count] = per_token[real]
    table[capacity:capacity + width] = parts[-1][0]
    entry = np.full(real.shape, -1, np.int32)
    entry[real] = np.arange(count, dtype=np.int32)
    return jax.device_put(table), entry, capacity, capacity + width

  def _deletion_group(self, ids, examples, rows, keep, out) -> None:
    """``out[r]`` for every ``rows[r]`` in ``examples`` (sorted)."""
    table, entry, pad_row, zero_row = self._examples_table(ids, examples)
    width = ids.shape[1]
    sel = np.flatnonzero(np.isin(rows, examples))
    local = np.searchsorted(examples, rows[sel])
    if self.padding_invariant:
      count = keep[sel].sum(axis=1)
      widths = np.minimum(width, np.maximum(8, -(-count // 8) * 8))
    else:
      widths = np.full(len(sel), width)
    pending = []
    for w in (int(w) for w in np.unique(widths)):
      these = sel[widths == w]
      k, e = keep[these], local[widths == w]
      if self.padding_invariant:   # the kept tokens, in order, at the front
        order = np.argsort(~k, axis=1, kind="stable")[:, :w]
        valid = np.arange(w) < count[widths == w, None]
        row_ids = np.where(valid, np.take_along_axis(ids[rows[these]], order, 1), 0)
        src = np.where(valid, np.take_along_axis(entry[e], order, 1), zero_row)
      else:                        # full width; deleted positions are <PAD>
        row_ids = np.where(k, ids[rows[these]], 0)
        src = np.where(k, entry[e], pad_row + np.arange(width))
      size = max(1, self.chunk_tokens // w)
      for start in range(0, len(these), size):
        stop = min(len(these), start + size)
        fill_src = np.full((size, w), zero_row, np.int32)
        fill_src[:stop - start] = src[start:stop]
        pending.append((these[start:stop], self._deleted_probs(
            self.params, self._fill(row_ids[start:stop], size, w), fill_src, table)))
        if len(pending) > self._in_flight:
          done, p = pending.pop(0)
          out[done] = np.asarray(p)[:len(done)]
    for done, p in pending:
      out[done] = np.asarray(p)[:len(done)]

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
