"""Batches: a checkpointable grain iterator for training, a plain one for eval.

Global batch, process share: every process builds the same global batch (same
seed, same order) and keeps rows ``[p*b, (p+1)*b)`` with ``b = batch_size //
process_count`` — the layout ``jax.make_array_from_process_local_data`` expects
for a batch axis sharded over processes in process order. With
``pad_to="batch"`` the width comes from the whole global batch, so all processes
agree on the shape.

Everything runs in-process (no grain worker processes): the data are in memory
and a batch is a numpy gather.
"""

from __future__ import annotations

from typing import Any, Iterator

import grain
import numpy as np

from safr_jax.data.dataset import EncodedSplit
from safr_jax.data.errors import DataError

PAD_MULTIPLE = 8
_STATE_VERSION = 1


def _check(split: EncodedSplit, batch_size: int, pad_to: str,
           process_index: int, process_count: int) -> int:
  """Validates the arguments; returns the per-process batch size."""
  if pad_to not in ("max_len", "batch"):
    raise DataError(f"pad_to must be 'max_len' or 'batch', got {pad_to!r}")
  if batch_size < 1:
    raise DataError(f"batch_size must be >= 1, got {batch_size}")
  if process_count < 1 or not 0 <= process_index < process_count:
    raise DataError(f"process_index {process_index} is not in "
                    f"[0, process_count={process_count})")
  if batch_size % process_count:
    raise DataError(f"the global batch_size {batch_size} is not divisible by "
                    f"process_count {process_count}")
  if len(split) == 0:
    raise DataError("the split has zero examples")
  return batch_size // process_count


def batch_width(lengths: np.ndarray, max_len: int, pad_to: str) -> int:
  """Padded width of a batch with these row ``lengths``.

  ``max_len`` for ``pad_to="max_len"``; for ``"batch"`` the longest row rounded
  up to a multiple of 8 (at least 8), capped at ``max_len``.
  """
  if pad_to == "max_len":
    return max_len
  longest = int(np.max(lengths)) if len(lengths) else 0
  width = max(PAD_MULTIPLE, -(-longest // PAD_MULTIPLE) * PAD_MULTIPLE)
  return min(width, max_len)


def steps_per_epoch(split: EncodedSplit, batch_size: int) -> int:
  """Full global batches per epoch (the last partial batch is dropped)."""
  if batch_size < 1:
    raise DataError(f"batch_size must be >= 1, got {batch_size}")
  return len(split) // batch_size


def _shuffle_seed(seed: int) -> int:
  """Spreads user seeds apart: grain shuffles epoch e with ``seed + e``, so
  plain seeds 0, 1, 2 would give runs whose epoch orders are shifted copies."""
  return (seed * 0x9E3779B1 + 0x7F4A7C15) % 2**32


class TrainIterator(Iterator[dict[str, np.ndarray]]):
  """Infinite shuffled training batches, resumable from ``get_state()``.

  Yields ``dict(ids=int32 [b, L], labels=int32 [b])`` with ``b = batch_size //
  process_count`` and ``L`` from :func:`batch_width` of the global batch.
  Epoch ``e`` is a permutation seeded by ``mix(seed) + e`` (grain's index
  shuffle; ``mix`` keeps runs with seeds 0, 1, 2 … unrelated); an epoch's last
  partial batch is dropped.
  """

  def __init__(self, split: EncodedSplit, *, batch_size: int, seed: int,
               pad_to: str, process_index: int = 0, process_count: int = 1):
    self._local = _check(split, batch_size, pad_to, process_index,
                         process_count)
    if not 0 <= seed < 2**32:
      raise DataError(f"seed must be in [0, 2**32), got {seed}")
    if steps_per_epoch(split, batch_size) == 0:
      raise DataError(f"batch_size {batch_size} is larger than the split "
                      f"({len(split)} examples): no full batch per epoch")
    self._split = split
    self._batch_size = batch_size
    self._seed = int(seed)
    self._pad_to = pad_to
    self._process_index = process_index
    self._process_count = process_count
    dataset = (grain.MapDataset.range(len(split))
               .shuffle(seed=_shuffle_seed(self._seed))
               .batch(batch_size, drop_remainder=True)  # per epoch
               .repeat(None)
               .map(self._make_batch))
    self._iterator = dataset.to_iter_dataset(
        grain.ReadOptions(num_threads=0, prefetch_buffer_size=0)).__iter__()

  def _make_batch(self, rows: np.ndarray) -> dict[str, np.ndarray]:
    rows = np.asarray(rows, np.int64)
    width = batch_width(self._split.lengths[rows], self._split.max_len,
                        self._pad_to)
    mine = rows[self._process_index * self._local:
                (self._process_index + 1) * self._local]
    return {"ids": np.ascontiguousarray(self._split.ids[mine, :width]),
            "labels": self._split.labels[mine].astype(np.int32)}

  def __iter__(self) -> TrainIterator:
    return self

  def __next__(self) -> dict[str, np.ndarray]:
    return next(self._iterator)

  def get_state(self) -> dict[str, Any]:
    """A JSON-serialisable dict; the position plus what must match on restore."""
    return {"version": _STATE_VERSION, "grain": self._iterator.get_state(),
            "num_examples": len(self._split), "batch_size": self._batch_size,
            "seed": self._seed}

  def set_state(self, state: dict[str, Any]) -> None:
    """Restores ``get_state()``: the next batch is the one that would follow."""
    if not isinstance(state, dict) or state.get("version") != _STATE_VERSION:
      raise DataError(f"not a TrainIterator state: {state!r}")
    for key, mine in (("num_examples", len(self._split)),
                      ("batch_size", self._batch_size), ("seed", self._seed)):
      if int(state[key]) != mine:
        raise DataError(f"iterator state has {key}={state[key]} but this "
                        f"iterator has {key}={mine}; the checkpoint belongs to "
                        "a different data configuration")
    self._iterator.set_state(
        {k: int(v) for k, v in dict(state["grain"]).items()})


def train_iterator(split: EncodedSplit, *, batch_size: int, seed: int,
                   pad_to: str = "max_len", process_index: int = 0,
                   process_count: int = 1) -> TrainIterator:
  """Infinite training batches; see :class:`TrainIterator`.

  Args:
    split: the train :class:`EncodedSplit`.
    batch_size: the GLOBAL batch size (all processes together).
    seed: shuffle seed in [0, 2**32).
    pad_to: "max_len" (fixed width) or "batch" (longest row of the global
      batch, rounded up to a multiple of 8, capped at max_len).
    process_index, process_count: this process' share of the global batch.

  Returns:
    An iterator of dict(ids=int32 [b, L], labels=int32 [b]), b = batch_size //
    process_count, with ``get_state()`` / ``set_state()``.
  """
  return TrainIterator(split, batch_size=batch_size, seed=seed, pad_to=pad_to,
                       process_index=process_index, process_count=process_count)


def num_eval_batches(split: EncodedSplit, batch_size: int) -> int:
  """Batches :func:`eval_batches` yields: ceil(N / batch_size)."""
  return -(-len(split) // batch_size)


def eval_batches(split: EncodedSplit, *, batch_size: int, pad_to: str = "max_len",
                 process_index: int = 0, process_count: int = 1
                 ) -> Iterator[dict[str, np.ndarray]]:
  """Every example exactly once, in order; the last batch is filled up.

  Args:
    split: an :class:`EncodedSplit`.
    batch_size: GLOBAL batch size; every process yields the same number of
      batches, ceil(N / batch_size).
    pad_to, process_index, process_count: as in :func:`train_iterator`.

  Yields:
    dict(ids=int32 [b, L], labels=int32 [b], weights=float32 [b]) with b =
    batch_size // process_count; dummy rows (ids 0, label 0) have weight 0,
    real rows weight 1.
  """
  local = _check(split, batch_size, pad_to, process_index, process_count)
  n = len(split)
  lo_share = process_index * local
  for start in range(0, n, batch_size):
    rows = np.arange(start, min(n, start + batch_size))
    width = batch_width(split.lengths[rows], split.max_len, pad_to)
    ids = np.zeros((local, width), np.int32)
    labels = np.zeros((local,), np.int32)
    weights = np.zeros((local,), np.float32)
    mine = rows[lo_share:lo_share + local]
    ids[:len(mine)] = split.ids[mine, :width]
    labels[:len(mine)] = split.labels[mine]
    weights[:len(mine)] = 1.0
    yield {"ids": ids, "labels": labels, "weights": weights}
